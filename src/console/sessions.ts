import { randomBytes, timingSafeEqual } from 'node:crypto';

/** A session ends after this long without a request... */
export const SESSION_IDLE_MS = 30 * 60_000;
/** ...and in any case this long after the login. */
export const SESSION_MAX_MS = 12 * 3_600_000;
/** Bounded memory: the oldest sessions are dropped beyond this many. */
const MAX_SESSIONS = 1000;

export interface Session {
  readonly id: string;
  readonly username: string;
  /** Sent back in every form; a state-changing request without it is refused. */
  readonly csrf: string;
  readonly createdAt: number;
  lastSeen: number;
}

/**
 * The console's logins, in memory (one relay process; a restart logs everyone out). The clock is
 * injectable for the expiry tests.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly now: () => number = Date.now) {}

  create(username: string): Session {
    const now = this.now();
    const session: Session = { id: token(), username, csrf: token(), createdAt: now, lastSeen: now };
    this.sessions.set(session.id, session);
    if (this.sessions.size > MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    return session;
  }

  /** The live session with this id (its idle time restarts), or null; expired ones are forgotten. */
  touch(id: string | undefined): Session | null {
    if (!id) return null;
    const session = this.sessions.get(id);
    if (!session) return null;
    const now = this.now();
    if (now - session.lastSeen > SESSION_IDLE_MS || now - session.createdAt > SESSION_MAX_MS) {
      this.sessions.delete(id);
      return null;
    }
    session.lastSeen = now;
    return session;
  }

  end(id: string): void {
    this.sessions.delete(id);
  }
}

/** Compares a submitted CSRF token with the session's in constant time. */
export function csrfMatches(session: Session, submitted: unknown): boolean {
  if (typeof submitted !== 'string') return false;
  const a = Buffer.from(submitted);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

function token(): string {
  return randomBytes(32).toString('base64url');
}
