import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import {
  DescribeExecutionCommand,
  DescribeMapRunCommand,
  GetExecutionHistoryCommand,
  type GetExecutionHistoryCommandInput,
  type HistoryEvent,
  RedriveExecutionCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { progressPrinter } from '../../local/cli/progress.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { loadDefinition } from '../../local/engine/definition.ts';
import { localSubstitutions } from '../../local/engine/functions.ts';
import { runCli } from '../support/cli.ts';

const sfn = mockClient(SFNClient);
const rdsData = mockClient(RDSDataClient);
const account = '123456789012';
const machine = (name: string) => `arn:aws:states:eu-west-1:${account}:stateMachine:Phases${name}0A1B2C3D`;
const executionArn = (name: string) =>
  `arn:aws:states:eu-west-1:${account}:execution:Phases${name}0A1B2C3D:run`;
const cluster = `arn:aws:rds:eu-west-1:${account}:cluster:shifu`;
const secret = `arn:aws:secretsmanager:eu-west-1:${account}:secret:shifu-AbCdEf`;

/** A config naming the deployed stack: the CLI starts executions instead of running anything here. */
function workspace(aws: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'smt-aws-'));
  writeFileSync(
    join(dir, 'shifu-migrate.config.json'),
    JSON.stringify({
      ...demoConfig(),
      source: { url: `rdsdata://${cluster}/shifu_legacy?secret=${secret}` },
      target: { url: `rdsdata://${cluster}/shifu_saas?secret=${secret}` },
      archive: { url: join(dir, 'archive') },
      aws: {
        region: 'eu-west-1',
        stateMachines: Object.fromEntries(
          ['assess', 'foundation', 'data', 'rollback'].map((n) => [n, machine(n)]),
        ),
        ...aws,
      },
    }),
  );
  return dir;
}

const cli = (args: string[], dir: string) =>
  runCli(args, { cwd: dir, env: { SHIFU_MIGRATE_POLL_SECONDS: '0' } });

let nextId = 1;
const event = (type: string, details: Partial<HistoryEvent> = {}): HistoryEvent => ({
  id: nextId++,
  type: type as HistoryEvent['type'],
  timestamp: new Date('2026-11-24T10:00:00Z'),
  ...details,
});
const entered = (type: string, name: string, input: unknown = {}) =>
  event(`${type}StateEntered`, { stateEnteredEventDetails: { name, input: JSON.stringify(input) } });
const exited = (type: string, name: string, output: unknown = {}) =>
  event(`${type}StateExited`, { stateExitedEventDetails: { name, output: JSON.stringify(output) } });

/**
 * Step Functions' history as GetExecutionHistory gives it with reverseOrder: newest first, `pageSize` events a
 * page. Each poll sees the events written by then: `batches[n]` are added before poll n.
 */
function scriptHistory(batches: HistoryEvent[][], pageSize: number): void {
  const written: HistoryEvent[] = [];
  let polls = 0;
  const tokens = new Map<string, number>();
  sfn.on(GetExecutionHistoryCommand).callsFake((input: GetExecutionHistoryCommandInput) => {
    let start = 0;
    if (input.nextToken === undefined) {
      written.push(...(batches[polls] ?? []));
      polls += 1;
    } else start = tokens.get(input.nextToken) ?? 0;
    const newestFirst = [...written].reverse();
    const events = newestFirst.slice(start, start + pageSize);
    const more = start + pageSize < newestFirst.length;
    const token = more ? `token-${polls}-${start + pageSize}` : undefined;
    if (token !== undefined) tokens.set(token, start + pageSize);
    return { events, ...(token === undefined ? {} : { nextToken: token }) };
  });
}

beforeEach(() => {
  sfn.reset();
  rdsData.reset();
  nextId = 1;
});

/** DescribeExecution answering that the execution succeeded with `output`. */
function describesSucceeded(executionArn: string, output: unknown): void {
  sfn.on(DescribeExecutionCommand).resolves({
    executionArn,
    status: 'SUCCEEDED',
    output: JSON.stringify(output),
    startDate: new Date(),
    stopDate: new Date(),
  });
}
describe('the CLI on AWS', () => {
  it('starts the deployed phase, follows every page of its history, and exits 0 with its output', async () => {
    const dir = workspace();
    sfn
      .on(StartExecutionCommand)
      .resolves({ executionArn: executionArn('foundation'), startDate: new Date() });
    const tables = [{ table: 'shifu_users', mode: 'tenant' }];
    scriptHistory(
      [
        [
          event('ExecutionStarted'),
          entered('Pass', 'Prepare Run'),
          exited('Pass', 'Prepare Run'),
          entered('Task', 'Start Foundation'),
          exited('Task', 'Start Foundation', { run: { runId: 'r', tables } }),
        ],
        [
          entered('Map', 'Create Migrated Tables', { run: { tables } }),
          event('MapIterationStarted', {
            mapIterationStartedEventDetails: { name: 'Create Migrated Tables', index: 0 },
          }),
          entered('Task', 'Create Table', { table: 'shifu_users' }),
          exited('Task', 'Create Table'),
          event('MapIterationSucceeded', {
            mapIterationSucceededEventDetails: { name: 'Create Migrated Tables', index: 0 },
          }),
          exited('Map', 'Create Migrated Tables'),
        ],
        [entered('Succeed', 'Foundation Ready'), event('ExecutionSucceeded')],
      ],
      2,
    );
    const output = { runId: 'foundation-20261124T100000Z-abcdef', tables: 1, tenants: 3, created: 7 };
    describesSucceeded(executionArn('foundation'), output);

    const run = await cli(['run', 'foundation'], dir);
    expect(run.code, run.stderr).toBe(0);
    expect(run.json).toMatchObject({
      status: 'SUCCEEDED',
      executionId: executionArn('foundation'),
      ...output,
    });
    const start = sfn.commandCalls(StartExecutionCommand);
    expect(start).toHaveLength(1);
    expect(start[0]?.args[0].input).toEqual({
      stateMachineArn: machine('foundation'),
      name: expect.stringMatching(/^foundation-\d{8}T\d{9}Z-[0-9a-f]{6}$/),
      input: '{}',
    });
    // Every call reads newest first, and only back to the last event already seen.
    const reads = sfn.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input);
    expect(reads.every((r) => r.executionArn === executionArn('foundation') && r.reverseOrder === true)).toBe(
      true,
    );
    // Names and errors are all the display reads at each poll: no state's data comes with them.
    expect(reads.every((r) => r.includeExecutionData === false)).toBe(true);
    expect(reads.filter((r) => r.nextToken !== undefined).length).toBeGreaterThan(0);
    // All 13 events reached the event log once each, in order.
    const log = readFileSync(String(run.json.eventLog), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.map((e: HistoryEvent) => e.id)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    expect(run.stderr).toMatch(/▶ Start Foundation/);
    expect(run.stderr).toMatch(/✓ succeeded/);
  });

  it('exits 1 when the execution fails, saying that its rollback ran as the ledger records it', async () => {
    const dir = workspace();
    // The ledger, read through the Data API after the execution ended: the run's row says rolled_back.
    rdsData.on(ExecuteStatementCommand).callsFake((input: { sql?: string }) => {
      if (/information_schema\.TABLES/.test(input.sql ?? ''))
        return { records: [[{ longValue: 1 }]], columnMetadata: [{ label: 'found', typeName: 'BIGINT' }] };
      if (/FROM migration_runs WHERE execution_id = :p1 AND phase = :p2/.test(input.sql ?? '')) {
        const row: [string, string | null][] = [
          ['run_id', 'data-20261124T100000Z-abcdef'],
          ['phase', 'data'],
          ['status', 'rolled_back'],
          ['started_at', '2026-11-24 10:00:00.000'],
          ['finished_at', '2026-11-24 10:05:00.000'],
          ['execution_id', executionArn('data')],
          ['error_name', 'ChunkChecksumMismatch'],
          ['error_message', 'shifu_users chunk 3 differs'],
          ['more_errors', null],
        ];
        return {
          records: [row.map(([, v]) => (v === null ? { isNull: true } : { stringValue: v }))],
          columnMetadata: row.map(([label]) => ({ label, typeName: 'VARCHAR' })),
        };
      }
      throw new Error(`unexpected statement ${input.sql}`);
    });
    sfn.on(StartExecutionCommand).resolves({ executionArn: executionArn('data') });
    scriptHistory(
      [
        [
          event('ExecutionStarted'),
          entered('Task', 'Roll Back Data'),
          exited('Task', 'Roll Back Data'),
          entered('Fail', 'Data Failed'),
          event('ExecutionFailed', {
            executionFailedEventDetails: {
              error: 'ChunkChecksumMismatch',
              cause: 'shifu_users chunk 3 differs',
            },
          }),
        ],
      ],
      100,
    );
    sfn.on(DescribeExecutionCommand).resolves({
      status: 'FAILED',
      error: 'ChunkChecksumMismatch',
      cause: 'shifu_users chunk 3 differs',
      startDate: new Date(),
    });
    const run = await cli(['run', 'data'], dir);
    expect(run.code).toBe(1);
    expect(run.json).toMatchObject({
      status: 'FAILED',
      error: 'ChunkChecksumMismatch',
      cause: 'shifu_users chunk 3 differs',
      rolledBack: true,
      executionId: executionArn('data'),
      run: { runId: 'data-20261124T100000Z-abcdef', status: 'rolled_back' },
    });
    expect(run.stderr).toMatch(/Rolled back \(data-20261124T100000Z-abcdef\)/);
  });

  it('starts the rollback with the phase named, or with none to find the phase in flight', async () => {
    const dir = workspace();
    sfn.on(StartExecutionCommand).resolves({ executionArn: executionArn('rollback') });
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [event('ExecutionSucceeded')] });
    sfn
      .on(DescribeExecutionCommand)
      .resolvesOnce({
        status: 'SUCCEEDED',
        output: JSON.stringify({ phase: 'data', rollbackRunId: 'rollback-x', undone: 42, stoppedRuns: [] }),
      })
      .resolves({
        status: 'SUCCEEDED',
        output: JSON.stringify({ phase: null, runs: [], stoppedExecutions: [], alarm: null }),
      });
    const named = await cli(['rollback', '--yes', '--phase', 'data'], dir);
    expect(named.code, named.stderr).toBe(0);
    expect(named.json).toMatchObject({ phase: 'data', undone: 42 });
    const found = await cli(['rollback', '--yes'], dir);
    expect(found.code).toBe(0);
    expect(found.json).toMatchObject({ phase: null });
    expect(found.stderr).toMatch(/Nothing to roll back/);
    expect(
      sfn
        .commandCalls(StartExecutionCommand)
        .map((c) => [c.args[0].input.stateMachineArn, c.args[0].input.input]),
    ).toEqual([
      [machine('rollback'), '{"phase":"data"}'],
      [machine('rollback'), '{}'],
    ]);
  });

  it('refuses, with exit 2, a wrong state machine ARN and a local alarm', async () => {
    const bad = workspace({ stateMachines: { assess: 'arn:aws:lambda:eu-west-1:1:function:x' } });
    const invalid = await cli(['run', 'assess'], bad);
    expect(invalid.code).toBe(2);
    expect(String(invalid.json.message)).toMatch(/aws\.stateMachines\.assess.*state machine ARN/s);
    const alarm = await cli(['alarm', 'raise', 'api-5xx'], workspace());
    expect(alarm.code).toBe(2);
    expect(String(alarm.json.message)).toMatch(/set-alarm-state/);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('follows an execution already started, and redrives one, without starting another', async () => {
    const dir = workspace();
    const arn = executionArn('data');
    const mapRunArn = `arn:aws:states:eu-west-1:${account}:mapRun:Phasesdata0A1B2C3D/CopyChunks:1f2e3d4c`;
    scriptHistory(
      [
        [event('ExecutionStarted'), entered('Map', 'Copy Chunks')],
        [event('MapRunStarted', { mapRunStartedEventDetails: { mapRunArn } })],
        [event('MapRunSucceeded'), exited('Map', 'Copy Chunks'), event('ExecutionSucceeded')],
      ],
      50,
    );
    // The map run's counts, as DescribeMapRun gives them at each poll.
    sfn
      .on(DescribeMapRunCommand)
      .resolvesOnce({ status: 'RUNNING', itemCounts: { succeeded: 120, total: 480, failed: 0 } } as never)
      .resolves({ status: 'SUCCEEDED', itemCounts: { succeeded: 480, total: 480, failed: 0 } } as never);
    const output = {
      runId: 'data-20261201T000000Z-abcdef',
      tables: 1,
      chunks: 480,
      rows: 1,
      quarantined: 0,
      changing: 0,
    };
    describesSucceeded(arn, output);
    const followed = await cli(['follow', arn], dir);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stderr).toMatch(/Following data on AWS/);
    expect(followed.json).toMatchObject({ status: 'SUCCEEDED', executionId: arn, chunks: 480 });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    // The map run's counts were read while it ran, and no more once it had ended.
    const described = sfn.commandCalls(DescribeMapRunCommand).map((c) => c.args[0].input);
    expect(described).toEqual([{ mapRunArn }, { mapRunArn }]);
    // What the person watching sees of them.
    const lines: string[] = [];
    const status: { line: ((width: number) => string) | null } = { line: null };
    const printer = progressPrinter(
      {
        json: false,
        info: (l) => lines.push(l),
        progress: (l) => lines.push(l),
        status: (render) => {
          status.line = render;
        },
        result: () => {},
        resultJson: () => {},
        takeJson: () => undefined,
      },
      loadDefinition('data', localSubstitutions()),
    );
    printer({
      type: 'MapRunProgress',
      state: 'Copy Chunks',
      mapRun: mapRunArn,
      itemsDone: 120,
      itemsTotal: 480,
      itemsFailed: 0,
      executionId: arn,
    });
    // The status line counts the map run's items (the children's own events are not read on AWS).
    expect(status.line?.(200)).toMatch(/items 120\/480/);

    sfn.reset();
    nextId = 1;
    scriptHistory([[event('ExecutionStarted'), event('ExecutionRedriven'), event('ExecutionSucceeded')]], 50);
    sfn.on(RedriveExecutionCommand).resolves({ redriveDate: new Date() });
    describesSucceeded(arn, output);
    const redriven = await cli(['redrive', arn], dir);
    expect(redriven.code, redriven.stderr).toBe(0);
    expect(sfn.commandCalls(RedriveExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { executionArn: arn },
    ]);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it("refuses, with exit 2, an execution that is not one of the config's machines, or cannot be redriven", async () => {
    const dir = workspace();
    const other = `arn:aws:states:eu-west-1:${account}:execution:SomeoneElses:run`;
    const wrong = await cli(['follow', other], dir);
    expect(wrong.code).toBe(2);
    expect(String(wrong.json.message)).toMatch(
      /an execution of SomeoneElses, which is none of aws\.stateMachines/,
    );
    const notArn = await cli(['follow', 'data-20261201'], dir);
    expect(notArn.code).toBe(2);
    expect(String(notArn.json.message)).toMatch(/is not an execution ARN/);
    const missing = await cli(['redrive'], dir);
    expect(missing.code).toBe(2);
    const refused = Object.assign(new Error('Execution cannot be redriven: it succeeded'), {
      name: 'ExecutionNotRedrivable',
    });
    sfn.on(RedriveExecutionCommand).rejects(refused);
    const notRedrivable = await cli(['redrive', executionArn('data')], dir);
    expect(notRedrivable.code).toBe(2);
    expect(String(notRedrivable.json.message)).toMatch(/cannot be redriven \(ExecutionNotRedrivable\)/);
    // Locally there is nothing to follow: the phase resumes when run again.
    const local = mkdtempSync(join(tmpdir(), 'smt-aws-'));
    const localRun = await cli(['follow', executionArn('data')], local);
    expect(localRun.code).toBe(2);
    expect(String(localRun.json.message)).toMatch(/set aws\.stateMachines/);
  });
});

describe('calls to Step Functions', () => {
  it('back off and try again when throttled, and give up on other errors at once', async () => {
    const { sendWithBackoff } = await import('../../local/aws-run.ts');
    const waits: number[] = [];
    const sleep = async (ms: number) => {
      waits.push(ms);
    };
    let calls = 0;
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    const result = await sendWithBackoff(async () => {
      calls += 1;
      if (calls < 4) throw throttled;
      return 'ok';
    }, sleep);
    expect(result).toBe('ok');
    expect(waits).toHaveLength(3);
    expect(waits.every((w, i) => w >= 0 && w <= 500 * 2 ** i)).toBe(true);
    const denied = Object.assign(new Error('not allowed'), { name: 'AccessDeniedException' });
    let tries = 0;
    await expect(
      sendWithBackoff(async () => {
        tries += 1;
        throw denied;
      }, sleep),
    ).rejects.toThrow('not allowed');
    expect(tries).toBe(1);
    // Throttled for good: 8 attempts, then the error.
    let attempts = 0;
    await expect(
      sendWithBackoff(async () => {
        attempts += 1;
        throw throttled;
      }, sleep),
    ).rejects.toThrow('Rate exceeded');
    expect(attempts).toBe(8);
  });
});
