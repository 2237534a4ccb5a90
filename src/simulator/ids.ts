// Stable GUIDs for names, where Entra ID shows object ids (tenant id in issuers, user oid).
import { createHash } from 'node:crypto';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function guidFrom(text: string): string {
  const h = createHash('sha256').update(text.toLowerCase()).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A tenant GUID as given, or a stable GUID for a tenant name. */
export function tenantGuid(tenantId: string): string {
  return GUID.test(tenantId) ? tenantId.toLowerCase() : guidFrom(tenantId);
}

/** The user's object id (oid) for a mailbox address. */
export function userObjectId(address: string): string {
  return guidFrom(`user:${address.trim()}`);
}
