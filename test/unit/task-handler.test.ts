import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import {
  type TaskDeps,
  TIME_MARGIN_MS,
  TimeRunningOut,
  taskHandler,
  throwIfStopping,
} from '../../lambdas/core/task.ts';

/** What a Lambda invocation gets: its remaining time, from a deadline. */
function lambdaContext(remainingMs: number): Context {
  const deadline = Date.now() + remainingMs;
  return { getRemainingTimeInMillis: () => deadline - Date.now() } as unknown as Context;
}

const beats: string[] = [];
const target = {
  execute: async (sql: string) => {
    beats.push(sql);
    return { affectedRows: 0 };
  },
} as unknown as SqlClient;

function deps(onLambda: boolean): () => Promise<TaskDeps> {
  return async () =>
    ({ signal: new AbortController().signal, heartbeat: onLambda, target }) as unknown as TaskDeps;
}

/** A task that works until its signal says stop, then stops as the copy does. */
const patient = {
  name: 'patient',
  input: z.object({ execution: z.string() }),
  run: async (_input: { execution: string }, d: TaskDeps) => {
    await new Promise<void>((resolve) => d.signal.addEventListener('abort', () => resolve(), { once: true }));
    throwIfStopping(d.signal, () => new Error('stopped'));
    return 'never';
  },
};

describe('task handler on Lambda', () => {
  it('stops work a margin before the function times out, with TimeRunningOut (retried by every state)', async () => {
    const handler = taskHandler(patient, deps(true));
    const started = Date.now();
    const outcome = handler(
      { execution: 'arn:aws:states:eu-west-1:123456789012:execution:x:y' },
      lambdaContext(TIME_MARGIN_MS + 200),
    );
    await expect(outcome).rejects.toBeInstanceOf(TimeRunningOut);
    expect(Date.now() - started).toBeLessThan(2_000);
    // The lock's heartbeat was refreshed as the task began.
    expect(beats.some((sql) => /UPDATE migration_lock SET heartbeat_at/.test(sql))).toBe(true);
  });

  it('sets no deadline locally, where the runtime has none', async () => {
    const handler = taskHandler(
      {
        ...patient,
        run: async (_i: { execution: string }, d: TaskDeps) => (d.signal.aborted ? 'aborted' : 'running'),
      },
      deps(false),
    );
    expect(await handler({ execution: 'local:h:1:x' }, lambdaContext(1))).toBe('running');
  });
});

describe('task handler: the config version', () => {
  const echo = {
    name: 'echo',
    input: z.object({ step: z.string() }),
    run: async (input: { step: string }) => input,
  };
  it('builds its dependencies for the version the payload names, "local" meaning the runtime\'s own', async () => {
    const asked: (string | undefined)[] = [];
    const handler = taskHandler(echo, async (version) => {
      asked.push(version);
      return { signal: new AbortController().signal, target } as unknown as TaskDeps;
    });
    // The payload's `config` is transport, not the task's input.
    expect(
      await handler({ step: 'a', config: 'config/1111111111111111.json' }, lambdaContext(60_000)),
    ).toEqual({
      step: 'a',
    });
    await handler({ step: 'b', config: 'local' }, lambdaContext(60_000));
    await handler({ step: 'c' }, lambdaContext(60_000));
    expect(asked).toEqual(['config/1111111111111111.json', undefined, undefined]);
  });
});
