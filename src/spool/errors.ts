/**
 * The spool could not make a message durable. The listener answers 451 4.3.0 (the client keeps the
 * message and retries), never 250 and never 5xx.
 */
export class SpoolWriteError extends Error {
  override readonly name = 'SpoolWriteError';
  readonly code = 'ESPOOLWRITE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
