import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chunksPerBatch, integerRanges, MAX_CHUNKS_PER_BATCH } from '../../lambdas/data/plan.ts';
import { ROLLBACK_STEP_MS } from '../../lambdas/data/rollback.ts';
import type { Chunk, PlannedTable } from '../../lambdas/data/schema.ts';
import { STATEMACHINES_DIR } from '../../local/engine/definition.ts';

/**
 * Step Functions' hard limits on a Standard execution: 25,000 events in its history (an execution that reaches it
 * fails, and no Catch can stop that) and 256 KiB for a state's input or output. This file works out, from the
 * ASL files and the chunk plan a 100M-row source gets, the most events any execution can have (every retry spent,
 * the longest path, failures included) and the largest payload, and checks both against the limits.
 */
const HISTORY_LIMIT = 25_000;
const PAYLOAD_LIMIT = 256 * 1024;

type State = {
  Type: string;
  Next?: string;
  Default?: string;
  Choices?: { Next: string }[];
  Catch?: { Next: string }[];
  Retry?: { MaxAttempts?: number }[];
  ItemsPath?: string;
  ItemProcessor?: Machine;
  ItemBatcher?: { MaxInputBytesPerBatch?: number };
};
type Machine = {
  StartAt: string;
  States: Record<string, State>;
  TimeoutSeconds?: number;
  ProcessorConfig?: { Mode?: string };
};

const load = (name: string): Machine =>
  JSON.parse(readFileSync(join(STATEMACHINES_DIR, `${name}.asl.json`), 'utf8')) as Machine;

/**
 * History events a state adds, as Step Functions writes them: a Task 5 (entered, scheduled, started, succeeded,
 * exited) and 3 per retry (failed, scheduled, started), counting every retry spent; a Pass, Choice, Wait or
 * Succeed 2; a Fail 1; an inline Map 4 plus 2 per iteration and the iteration's own; a Distributed Map 6 in its
 * parent (entered, started, map run started, map run ended, succeeded, exited): its children are executions of
 * their own, budgeted apart.
 */
function stateEvents(state: State, iterations: (state: State) => number): number {
  switch (state.Type) {
    case 'Task':
      return 5 + 3 * (state.Retry ?? []).reduce((n, r) => n + (r.MaxAttempts ?? 3), 0);
    case 'Fail':
      return 1;
    case 'Map': {
      const inner = state.ItemProcessor as Machine;
      if (inner.ProcessorConfig?.Mode === 'DISTRIBUTED') return 6;
      return 4 + iterations(state) * (2 + longestPath(inner, iterations));
    }
    default:
      return 2;
  }
}

/**
 * The most events a run of `machine` can write: the longest path from StartAt through Next, Choice branches and
 * Catch targets. A loop (a rollback's further steps) counts as many rounds as its execution's time allows.
 */
function longestPath(machine: Machine, iterations: (state: State) => number, loopRounds = 0): number {
  const walk = (name: string, stack: string[]): number => {
    const state = machine.States[name] as State;
    const here = stateEvents(state, iterations);
    const next = [
      state.Next,
      state.Default,
      ...(state.Choices ?? []).map((c) => c.Next),
      ...(state.Catch ?? []).map((c) => c.Next),
    ].filter((n): n is string => n !== undefined);
    let most = 0;
    for (const n of next) {
      const at = stack.indexOf(n);
      if (at === -1) most = Math.max(most, walk(n, [...stack, name]));
      else {
        // A loop back to `n`: its states, as many rounds as the execution's time allows.
        const body = [...stack.slice(at), name].reduce(
          (sum, s) => sum + stateEvents(machine.States[s] as State, iterations),
          0,
        );
        expect(loopRounds, `a loop back to "${n}" needs a bound`).toBeGreaterThan(0);
        most = Math.max(most, loopRounds * body);
      }
    }
    return here + most;
  };
  return 2 + walk(machine.StartAt, []);
}

/** A 100M-row AI-Shifu source over nine large tables, with single integer keys, in four reference levels. */
const SOURCE: { table: string; rows: number; level: number }[] = [
  { table: 'user_users', rows: 3_000_000, level: 0 },
  { table: 'shifu_shifus', rows: 500_000, level: 0 },
  { table: 'sys_configs', rows: 1_000_000, level: 0 },
  { table: 'user_auth_credentials', rows: 1_500_000, level: 1 },
  { table: 'shifu_outlines', rows: 2_000_000, level: 1 },
  { table: 'order_orders', rows: 8_000_000, level: 1 },
  { table: 'pay_payments', rows: 5_000_000, level: 2 },
  { table: 'study_records', rows: 25_000_000, level: 2 },
  { table: 'learn_generated_blocks', rows: 54_000_000, level: 3 },
];
const ROWS_PER_CHUNK = 5_000;
const MAX_CONCURRENCY = 64;

/** The chunk plan each table gets, by the planner's own function (ids 1…n, a few gaps). */
const plans = new Map<string, Chunk[]>(
  SOURCE.map((t) => [t.table, integerRanges(1n, BigInt(Math.round(t.rows * 1.1)), t.rows, ROWS_PER_CHUNK)]),
);

describe('Step Functions limits at 100M rows (nine tables)', () => {
  it('plans every row with no chunk cap: chunk sizes follow rowsPerChunk', () => {
    const chunks = [...plans.values()].reduce((n, p) => n + p.length, 0);
    expect(SOURCE.reduce((n, t) => n + t.rows, 0)).toBe(100_000_000);
    expect(chunks).toBeGreaterThanOrEqual(100_000_000 / ROWS_PER_CHUNK);
    expect(chunks).toBeLessThanOrEqual(100_000_000 / ROWS_PER_CHUNK + SOURCE.length);
    // The biggest table alone has more chunks than one inline Map's history could hold.
    expect(plans.get('learn_generated_blocks')?.length).toBeGreaterThan(HISTORY_LIMIT / 7);
  });

  it('keeps the data execution and every child execution of its copy under 25,000 history events', () => {
    const data = load('data');
    const levels = Math.max(...SOURCE.map((t) => t.level)) + 1;
    const widest = Math.max(
      ...Array.from({ length: levels }, (_, l) => SOURCE.filter((t) => t.level === l).length),
    );
    const rounds = Math.ceil((data.TimeoutSeconds ?? 0) / (ROLLBACK_STEP_MS / 1000)) + 1;
    const parent = longestPath(
      data,
      (state) =>
        ({ '$.run.levels': levels, '$.tables': widest, '$.run.tables': SOURCE.length })[
          state.ItemsPath ?? ''
        ] ?? expect.fail(`no iteration count for ItemsPath ${state.ItemsPath}`),
      rounds,
    );
    expect(parent).toBeLessThan(HISTORY_LIMIT);

    // The copy's children: one batch each, at most MAX_CHUNKS_PER_BATCH chunks, every retry spent on every one.
    const copy =
      data.States['Copy Levels']?.ItemProcessor?.States['Copy Level']?.ItemProcessor?.States['Copy Chunks'];
    const child = copy?.ItemProcessor as Machine;
    expect(child.ProcessorConfig?.Mode).toBe('DISTRIBUTED');
    const batch = Math.max(...[...plans.values()].map((p) => chunksPerBatch(p.length, MAX_CONCURRENCY)));
    expect(batch).toBeLessThanOrEqual(MAX_CHUNKS_PER_BATCH);
    const childEvents = longestPath(child, (state) =>
      state.ItemsPath === '$.Items'
        ? MAX_CHUNKS_PER_BATCH
        : expect.fail(`no iteration count for ${state.ItemsPath}`),
    );
    expect(childEvents).toBeLessThan(HISTORY_LIMIT);
    // How far from the limit, for the docs (docs/scale.md quotes these).
    expect({ parent, childEvents }).toMatchInlineSnapshot(`
      {
        "childEvents": 7406,
        "parent": 10267,
      }
    `);
  });

  it('keeps the data execution of a 60-table config (six levels of ten) under 25,000 events', () => {
    const data = load('data');
    const rounds = Math.ceil((data.TimeoutSeconds ?? 0) / (ROLLBACK_STEP_MS / 1000)) + 1;
    const events = longestPath(
      data,
      (state) =>
        ({ '$.run.levels': 6, '$.tables': 10, '$.run.tables': 60 })[state.ItemsPath ?? ''] ??
        expect.fail(`no iteration count for ItemsPath ${state.ItemsPath}`),
      rounds,
    );
    expect(events).toBeLessThan(HISTORY_LIMIT);
  });

  it('keeps the rollback execution under 25,000 events however many bounded steps its time allows', () => {
    const rollback = load('rollback');
    const rounds = Math.ceil((rollback.TimeoutSeconds ?? 0) / (ROLLBACK_STEP_MS / 1000)) + 1;
    expect(longestPath(rollback, () => expect.fail('the rollback has no Map'), rounds)).toBeLessThan(
      HISTORY_LIMIT,
    );
  });

  it('keeps every state payload under 256 KiB: no chunk list travels through state', () => {
    const longName = 'x'.repeat(64);
    const planned = (table: string): PlannedTable => ({ table, mode: 'tenant', referenced: true });
    // The largest parent state: the run as Start Data returns it, for a 60-table config with 64-character names.
    const tables = Array.from({ length: 60 }, (_, i) =>
      planned(`${longName.slice(0, 60)}${String(i).padStart(4, '0')}`),
    );
    const run = {
      runId: 'data-20261201T000000Z-abcdef',
      resumed: {
        chunksDone: 20_000,
        chunksTotal: 20_009,
        tablesPlanned: 60,
        rowsDone: 9_999_999_999,
        tookOverFrom: 'x'.repeat(300),
      },
      levels: [tables.slice(0, 20), tables.slice(20, 40), tables.slice(40)],
      tables,
      rowsEstimate: Object.fromEntries(tables.map((t) => [t.table, 9_999_999_999])),
      maxConcurrency: MAX_CONCURRENCY,
    };
    expect(Buffer.byteLength(JSON.stringify({ run }))).toBeLessThan(PAYLOAD_LIMIT / 8);
    // A child's input: its batch, bounded by the ASL's MaxInputBytesPerBatch, and the real largest batch of the plan.
    const copy = load('data').States['Copy Levels']?.ItemProcessor?.States['Copy Level']?.ItemProcessor
      ?.States['Copy Chunks'] as State;
    expect(copy.ItemBatcher?.MaxInputBytesPerBatch).toBeLessThanOrEqual(PAYLOAD_LIMIT / 2);
    const input = {
      BatchInput: { runId: run.runId, table: longName, mode: 'tenant', execution: 'x'.repeat(200) },
      Items: (plans.get('learn_generated_blocks') ?? []).slice(-MAX_CHUNKS_PER_BATCH),
    };
    expect(Buffer.byteLength(JSON.stringify(input))).toBeLessThan(
      copy.ItemBatcher?.MaxInputBytesPerBatch ?? 0,
    );
    // A child's output: per chunk of its batch, the iteration's state after Validate Chunk (the chunk, with the
    // copy's result and the comparison), at their largest.
    const output = input.Items.map((chunk) => ({
      ...input.BatchInput,
      chunk,
      copied: { table: longName, n: 9_999_999, rows: 1_000_000, quarantined: 1_000_000, skipped: false },
      validated: { equal: false },
    }));
    expect(Buffer.byteLength(JSON.stringify(output))).toBeLessThan(PAYLOAD_LIMIT / 2);
  });
});
