import { randomBytes } from 'node:crypto';

/**
 * Queue ids sort by arrival time and are unique without coordination:
 * milliseconds since the epoch in base 36, then 40 random bits. Only [0-9A-Z], safe as file names.
 */
export function newMessageId(now = Date.now()): string {
  return now.toString(36).toUpperCase().padStart(9, '0') + randomBytes(5).toString('hex').toUpperCase();
}

const ID_PATTERN = /^[0-9A-Z]{9}[0-9A-F]{10}$/;

export function isMessageId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** When the message with this id arrived (ms since the epoch), read from the id itself. */
export function receivedAtOf(id: string): number {
  return parseInt(id.slice(0, 9), 36);
}
