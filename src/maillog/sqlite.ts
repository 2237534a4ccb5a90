// The SQLite engine under the mail log: Node's own node:sqlite where this Node has it (22.13 and
// later, so Node 24), better-sqlite3 (12.x, a native addon) on older ones (Node 20).
// Why two: better-sqlite3 12 wraps its objects in node::ObjectWrap, which on Node 24 asserts in
// RemoveEnvironmentCleanupHook when a statement is garbage-collected at the wrong moment or at
// exit (SIGABRT; WiseLibs/better-sqlite3#1515, closed without a fix for 12.x), and better-sqlite3
// 13 (Node-API) needs Node 22. The mail log uses the small common part below.
import { createRequire } from 'node:module';

export type SqlValue = string | number | bigint | null | Uint8Array;
export type SqlParams = SqlValue[] | [Record<string, SqlValue>];

export interface SqlStatement {
  run(...params: SqlParams): { changes: number | bigint };
  all(...params: SqlParams): unknown[];
  get(...params: SqlParams): unknown;
}

export interface SqlDatabase {
  /** Which engine: for messages and tests. */
  readonly engine: 'node:sqlite' | 'better-sqlite3';
  prepare(sql: string): SqlStatement;
  exec(sql: string): void;
  /** Runs `PRAGMA text`; returns the first column of the first row (undefined when none). */
  pragma(text: string): unknown;
  /** `fn` in one transaction (rolled back when it throws), as a function to call. */
  transaction<T>(fn: () => T): () => T;
  /** A deterministic SQL function of one argument. */
  defineFunction(name: string, fn: (value: unknown) => SqlValue): void;
  close(): void;
}

export interface OpenOptions {
  readOnly?: boolean;
  /** How long a statement waits for another connection's lock; 0: fail at once. */
  busyTimeoutMs: number;
}

interface NodeSqliteModule {
  DatabaseSync: new (path: string, options?: { readOnly?: boolean; timeout?: number }) => {
    prepare(sql: string): SqlStatement;
    exec(sql: string): void;
    function(name: string, options: { deterministic?: boolean }, fn: (value: unknown) => SqlValue): void;
    close(): void;
  };
}

function nodeSqlite(): NodeSqliteModule | null {
  try {
    return (process.getBuiltinModule?.('node:sqlite') as NodeSqliteModule | undefined) ?? null;
  } catch {
    return null; // a Node that knows the module only behind a flag
  }
}

/** Opens (or, unless readOnly, creates) a database file. Throws the engine's error when it cannot. */
export function openSqlite(path: string, options: OpenOptions): SqlDatabase {
  const builtin = nodeSqlite();
  return builtin ? openBuiltin(builtin, path, options) : openBetterSqlite(path, options);
}

function openBuiltin(sqlite: NodeSqliteModule, path: string, options: OpenOptions): SqlDatabase {
  const db = new sqlite.DatabaseSync(path, { readOnly: options.readOnly ?? false, timeout: options.busyTimeoutMs });
  return {
    engine: 'node:sqlite',
    prepare: (sql) => db.prepare(sql),
    exec: (sql) => db.exec(sql),
    pragma: (text) => firstColumn(db.prepare(`PRAGMA ${text}`).get()),
    transaction: (fn) => () => {
      db.exec('BEGIN');
      try {
        const result = fn();
        db.exec('COMMIT');
        return result;
      } catch (err) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // SQLite already rolled back (a full disk, an I/O error): the first error is the one to tell
        }
        throw err;
      }
    },
    defineFunction: (name, fn) => db.function(name, { deterministic: true }, fn),
    close: () => db.close(),
  };
}

interface BetterSqliteDatabase {
  prepare(sql: string): SqlStatement;
  exec(sql: string): void;
  pragma(text: string, options: { simple: true }): unknown;
  transaction<T>(fn: () => T): () => T;
  function(name: string, options: { deterministic: boolean }, fn: (value: unknown) => SqlValue): void;
  close(): void;
}

function openBetterSqlite(path: string, options: OpenOptions): SqlDatabase {
  // Loaded only where it is used: Node 24 never loads the addon.
  const Database = loadBetterSqlite() as new (path: string, options: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => BetterSqliteDatabase;
  const db = new Database(path, { readonly: options.readOnly ?? false, fileMustExist: options.readOnly ?? false, timeout: options.busyTimeoutMs });
  return {
    engine: 'better-sqlite3',
    prepare: (sql) => db.prepare(sql),
    exec: (sql) => db.exec(sql),
    pragma: (text) => db.pragma(text, { simple: true }),
    transaction: (fn) => db.transaction(fn),
    defineFunction: (name, fn) => db.function(name, { deterministic: true }, fn),
    close: () => db.close(),
  };
}

/** better-sqlite3 is an optional dependency (a native build that needs a compiler where no prebuilt binary fits). */
function loadBetterSqlite(): unknown {
  try {
    return createRequire(import.meta.url)('better-sqlite3');
  } catch (err) {
    throw new Error(
      `the mail log needs better-sqlite3 on Node.js ${process.versions.node} (Node 22.13 and later have SQLite built in): install python3, make and g++ and run npm ci again, or run the relay on Node 24`,
      { cause: err },
    );
  }
}

function firstColumn(row: unknown): unknown {
  return row && typeof row === 'object' ? Object.values(row)[0] : undefined;
}

/** SQLite's primary result codes by number, for node:sqlite's errors (errcode), which better-sqlite3 names itself. */
const RESULT_CODES: Record<number, string> = { 5: 'SQLITE_BUSY', 6: 'SQLITE_LOCKED', 8: 'SQLITE_READONLY', 10: 'SQLITE_IOERR', 11: 'SQLITE_CORRUPT', 13: 'SQLITE_FULL', 14: 'SQLITE_CANTOPEN', 26: 'SQLITE_NOTADB' };

/** The error's SQLite code (SQLITE_FULL, SQLITE_NOTADB, ...) whichever engine threw it; '' when it has none. */
export function sqliteCode(err: unknown): string {
  const { code, errcode } = (err ?? {}) as { code?: unknown; errcode?: unknown };
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return code.replace(/^(SQLITE_[A-Z]+).*$/, '$1');
  if (typeof errcode === 'number') return RESULT_CODES[errcode & 0xff] ?? `SQLITE_${errcode}`;
  return typeof code === 'string' ? code : '';
}
