// The simulated tenant's directory: app registrations (Entra ID) and mailboxes (Exchange Online).
import type { X509Certificate } from 'node:crypto';
import { parseCertificate, thumbprints } from './certs.js';
import type { SimulatorApp, SimulatorHveAccount, SimulatorMailbox } from './types.js';

export const DEFAULT_CLIENT_ID = '11111111-2222-3333-4444-555555555555';
export const DEFAULT_CLIENT_SECRET = 'sim-secret';
export const DEFAULT_MAILBOX = 'relay@contoso.com';

export interface AppEntry {
  clientId: string;
  clientSecret: string | undefined;
  secretExpired: boolean;
  certificate: { cert: X509Certificate; sha1: Buffer; sha256: Buffer } | undefined;
  /** "Allow public client flows": may redeem device codes and refresh tokens without a credential. */
  publicClient: boolean;
  /** The secret's end as the registration records it. */
  secretExpiresAt: string;
  applicationReadAll: boolean;
}

export interface MailboxEntry {
  /** As configured. */
  address: string;
  /** Lowercased. */
  key: string;
  apps: Set<string>;
  /** Lowercased addresses and "@domain" suffixes. */
  sendAs: string[];
  smtpAuthEnabled: boolean;
}

export class Directory {
  private readonly apps = new Map<string, AppEntry>();
  private readonly mailboxes = new Map<string, MailboxEntry>();
  /** High Volume Email accounts: mail users, not mailboxes; only the HVE endpoint knows them. */
  private readonly hveAccounts = new Map<string, MailboxEntry>();

  constructor(apps: SimulatorApp[], mailboxes: SimulatorMailbox[], hveAccounts: SimulatorHveAccount[] = []) {
    for (const account of hveAccounts) {
      const key = account.address.toLowerCase();
      this.hveAccounts.set(key, { address: account.address, key, apps: new Set(account.apps.map((id) => id.toLowerCase())), sendAs: (account.sendAs ?? []).map((a) => a.trim().toLowerCase()), smtpAuthEnabled: true });
    }
    for (const app of apps) {
      let certificate: AppEntry['certificate'];
      if (app.certificatePem) {
        const cert = parseCertificate(app.certificatePem);
        certificate = { cert, ...thumbprints(cert) };
      }
      // Entra ID client ids are GUIDs and compared case-insensitively.
      this.apps.set(app.clientId.toLowerCase(), {
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        secretExpired: app.secretExpired ?? false,
        certificate,
        // An app without any credential can only be a public client.
        publicClient: app.publicClient ?? (app.clientSecret === undefined && !app.certificatePem),
        secretExpiresAt: app.secretExpiresAt ?? new Date(Date.now() + 365 * 86_400_000).toISOString(),
        applicationReadAll: app.applicationReadAll ?? false,
      });
    }
    for (const mailbox of mailboxes) {
      const key = mailbox.address.toLowerCase();
      this.mailboxes.set(key, {
        address: mailbox.address,
        key,
        apps: new Set(mailbox.apps.map((id) => id.toLowerCase())),
        sendAs: (mailbox.sendAs ?? []).map((s) => s.trim().toLowerCase()),
        smtpAuthEnabled: mailbox.smtpAuthEnabled ?? true,
      });
    }
  }

  app(clientId: string): AppEntry | undefined {
    return this.apps.get(clientId.toLowerCase());
  }

  /** Every registered app (for the app-registration reads of Graph). */
  appEntries(): AppEntry[] {
    return [...this.apps.values()];
  }

  mailbox(address: string): MailboxEntry | undefined {
    return this.mailboxes.get(address.trim().toLowerCase());
  }

  hveAccount(address: string): MailboxEntry | undefined {
    return this.hveAccounts.get(address.trim().toLowerCase());
  }

  /** The domains of every mailbox and HVE account: the tenant's accepted domains unless configured. */
  domains(): Set<string> {
    return new Set([...this.mailboxes.keys(), ...this.hveAccounts.keys()].map((key) => key.slice(key.lastIndexOf('@') + 1)));
  }
}

/** The mailbox itself, an exact sendAs address, or an "@domain" sendAs suffix; case-insensitive. */
export function maySendAs(mailbox: MailboxEntry, address: string): boolean {
  const a = address.trim().toLowerCase();
  if (!a) return false;
  if (a === mailbox.key) return true;
  return mailbox.sendAs.some((entry) => (entry.startsWith('@') ? a.endsWith(entry) : a === entry));
}
