import { DatabaseError, StatementStillRunning } from '../errors.ts';
import { throwIfStopping } from '../task.ts';
import type { SqlClient } from './port.ts';
import { scalarNumber } from './rows.ts';

/** How often a DDL statement that outlived its call is looked for on the server. */
export const DDL_POLL_MS = 5_000;

/** Whether a statement with exactly this text runs on the server now (this user's sessions). */
async function isRunning(client: SqlClient, sql: string): Promise<boolean> {
  return (
    scalarNumber(
      await client.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = ?', [sql]),
    ) > 0
  );
}

/**
 * Runs a DDL statement that may take longer than one call allows (an index build on a large table through the
 * Data API, which waits 45 s and leaves it running), until `done()` says its effect is there: the statement is
 * submitted, and while it (or the same statement left running by an earlier, interrupted call) runs on the server,
 * it is polled every `pollMs`. When the function's time runs short the task stops with `TimeRunningOut` and,
 * retried, finds the statement still running and waits again: it is never submitted twice at once.
 */
export async function runLongDdl(
  client: SqlClient,
  sql: string,
  done: () => Promise<boolean>,
  options: { signal: AbortSignal; stopped: () => Error; pollMs?: number; attempts?: number },
): Promise<void> {
  const pollMs = options.pollMs ?? DDL_POLL_MS;
  for (let attempt = 1; ; attempt += 1) {
    if (await done()) return;
    if (attempt > (options.attempts ?? 3))
      throw new DatabaseError(
        `the statement ran ${attempt - 1} times without its effect appearing: ${sql.slice(0, 200)}`,
      );
    if (!(await isRunning(client, sql))) {
      try {
        await client.execute(sql);
        continue;
      } catch (error) {
        if (!(error instanceof StatementStillRunning)) throw error;
      }
    }
    while (await isRunning(client, sql)) {
      throwIfStopping(options.signal, options.stopped);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }
}
