/**
 * Fault injection for the crash-safety tests: with M365_RELAY_CRASH_AT=<point>[:<n>] in the
 * environment the process kills itself with SIGKILL (no cleanup, like a power cut or kill -9) the
 * n-th time it reaches that point (default the first). Without the variable this is a no-op.
 */
export type CrashPoint =
  /** Data file written and fsynced; no metadata yet. */
  | 'after-data-fsync'
  /** Metadata renamed into queue/; directory not yet fsynced, client not yet answered. */
  | 'after-meta-rename'
  /** Fully queued, the 250 not yet sent. */
  | 'before-ack'
  /** Claimed for delivery; nothing sent upstream yet. */
  | 'after-claim'
  /** Exchange accepted the message; the spool does not know yet. */
  | 'after-upstream-accept'
  /** A deferral half written: new metadata in queue/, old one still in active/. */
  | 'between-defer-steps'
  /** Graph transport, large message: the draft exists in the mailbox, not yet sent. */
  | 'graph-after-draft'
  /** A split message: every part's metadata durable in tmp/, not yet committed (no part deliverable). */
  | 'split-before-commit'
  /** A split message committed (split/<parent>/), its parts not yet in queue/, no 250 yet. */
  | 'split-after-commit'
  /** A split message: some parts moved into queue/, others still in split/<parent>/. */
  | 'split-during-unpack';

const setting = process.env.M365_RELAY_CRASH_AT ?? '';
const [target, countText] = setting.split(':');
let remaining = Number(countText ?? '1') || 1;

export function crashPoint(point: CrashPoint): void {
  if (!setting || point !== target) return;
  remaining -= 1;
  if (remaining === 0) process.kill(process.pid, 'SIGKILL');
}
