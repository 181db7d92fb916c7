import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FUNCTIONS, type FunctionKey, TABLES_AT_ONCE } from '../../lambdas/registry.ts';
import { loadDefinition, START_EXECUTION_SYNC, STATEMACHINES_DIR } from '../../local/engine/definition.ts';
import { localSubstitutions } from '../../local/engine/functions.ts';

const require = createRequire(import.meta.url);
const validate = require('asl-validator') as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText(separator?: string): string };

type State = {
  Type: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next: string }[];
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Retry?: { ErrorEquals: string[] }[];
  TimeoutSeconds?: number;
  ItemProcessor?: Machine;
  Iterator?: Machine;
};
type Machine = {
  StartAt: string;
  States: Record<string, State>;
  TimeoutSeconds?: number;
  ProcessorConfig?: { Mode?: string };
};

/**
 * How each machine handles failure (DESIGN.md §2): a phase that changes anything rolls back before it fails;
 * assess is read-only; rollback is itself the way back.
 */
const ROLE: Record<string, 'rolls back' | 'read-only' | 'is the rollback' | 'repairs in transactions'> = {
  assess: 'read-only',
  data: 'rolls back',
  foundation: 'rolls back',
  // Each repair is one transaction: a failed pass leaves the target as consistent as before it, nothing to undo.
  sync: 'repairs in transactions',
  application: 'rolls back',
  integration: 'rolls back',
  golive: 'rolls back',
  rollback: 'is the rollback',
};

/**
 * The one task of a machine that runs after its run succeeded and released the lock (go-live's final report): its
 * failure leaves the run succeeded, the execution too (`shifu-migrate report` writes the report again).
 */
const AFTER_THE_RUN: Record<string, string> = { golive: 'Final Report' };

const LAMBDA_ERRORS = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  // A function that timed out or ran out of memory, or stopped before its time ran out: every task is idempotent.
  'Lambda.Unknown',
  'Lambda.ClientExecutionTimeoutException',
  'TimeRunningOut',
];

const files = readdirSync(STATEMACHINES_DIR).filter((f) => f.endsWith('.asl.json'));
const machines = files.map((file) => {
  const name = file.replace(/\.asl\.json$/, '');
  const text = readFileSync(join(STATEMACHINES_DIR, file), 'utf8');
  // Substituted as CDK's definitionSubstitutions would, with valid ARNs.
  const substituted = text.replace(
    /\$\{([A-Za-z0-9]+)\}/g,
    (_, key: string) => localSubstitutions()[key] ?? `MISSING:${key}`,
  );
  return { name, file, definition: JSON.parse(substituted) as Machine };
});

/** States reachable from `from` within one machine, through Next, Choice branches and Catch. */
function reachable(machine: Machine, from: string): string[] {
  const seen: string[] = [];
  const stack = [from];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (seen.includes(name)) continue;
    seen.push(name);
    const state: State | undefined = machine.States[name];
    if (state === undefined) continue;
    const next = [
      state.Next,
      state.Default,
      ...(state.Choices ?? []).map((c) => c.Next),
      ...(state.Catch ?? []).map((c) => c.Next),
    ];
    for (const n of next) if (n !== undefined) stack.push(n);
  }
  return seen;
}

/** The states a caught error travels through, from the Catch target on, following only Next. */
function errorPath(machine: Machine, start: string): string[] {
  const path: string[] = [];
  let name: string | undefined = start;
  while (name !== undefined && !path.includes(name)) {
    path.push(name);
    const state: State | undefined = machine.States[name];
    // A Choice that loops (a rollback's further steps) leaves the loop by its Default.
    name = state?.Type === 'Choice' ? state.Default : state?.Next;
  }
  return path;
}

describe.each(machines)('state machine $name', ({ name, definition }) => {
  it('has a role in the failure table of this test', () => {
    expect(ROLE[name], `add ${name} to ROLE`).toBeDefined();
  });

  it('is valid Amazon States Language (asl-validator)', () => {
    const result = validate(structuredClone(definition), { checkPaths: true, checkArn: true });
    expect(result.isValid, result.errorsText()).toBe(true);
  });

  it('passes the local runtime preflight (nothing the local engine would ignore)', () => {
    expect(() => loadDefinition(name, localSubstitutions())).not.toThrow();
  });

  it('has an execution timeout and no unreachable state', () => {
    expect(definition.TimeoutSeconds).toBeGreaterThan(0);
    expect(reachable(definition, definition.StartAt).sort()).toEqual(Object.keys(definition.States).sort());
  });

  const tasks: { task: string; state: State; catchers: State['Catch'] }[] = [];
  /** Tasks that run another of our machines and wait for it (a sync pass the application phase drains with). */
  const nested: { task: string; state: State; catchers: State['Catch'] }[] = [];
  // An error inside an iteration fails its Map: the nearest Map with a Catch is the one that handles it.
  const collect = (states: Record<string, State>, enclosingCatch: State['Catch']): void => {
    for (const [stateName, state] of Object.entries(states)) {
      if (state.Type === 'Task')
        (JSON.stringify(state).includes(START_EXECUTION_SYNC) ? nested : tasks).push({
          task: stateName,
          state,
          catchers: state.Catch ?? enclosingCatch,
        });
      const inner = state.ItemProcessor ?? state.Iterator;
      // A failed child of a Distributed Map fails the map run (States.ExceedToleratedFailureThreshold); the map's
      // Catch hands that to a task that raises the child's own error again, for the Catch around the map.
      if (state.Type === 'Map' && inner?.ProcessorConfig?.Mode === 'DISTRIBUTED')
        collect(inner.States, enclosingCatch);
      else if (state.Type === 'Map' && inner !== undefined)
        collect(inner.States, state.Catch ?? enclosingCatch);
    }
  };
  collect(definition.States, undefined);

  const distributed: { map: string; state: State; states: Record<string, State> }[] = [];
  const findDistributed = (states: Record<string, State>): void => {
    for (const [stateName, state] of Object.entries(states)) {
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner === undefined) continue;
      if (inner.ProcessorConfig?.Mode === 'DISTRIBUTED') distributed.push({ map: stateName, state, states });
      findDistributed(inner.States);
    }
  };
  findDistributed(definition.States);
  it.each(distributed)('Distributed Map "$map" raises a failed child\'s own error again, through a task', ({
    state,
    states,
  }) => {
    const catchers = state.Catch ?? [];
    expect(catchers.map((c) => c.ErrorEquals)).toEqual([['States.ExceedToleratedFailureThreshold']]);
    const explain = states[catchers[0]?.Next ?? ''];
    expect(explain?.Type).toBe('Task');
    // It always ends in an error: nothing after it, and no Catch of its own to swallow the error it raises.
    expect(explain?.Catch).toBeUndefined();
    expect((explain as { End?: boolean } | undefined)?.End).toBe(true);
    expect(JSON.stringify((explain as { Parameters?: unknown }).Parameters)).toContain(
      'explain-copy-failure',
    );
  });

  it.each(nested)('Task "$task" runs a sync pass under the lock its run holds, and waits for it', ({
    state,
    task,
    catchers,
  }) => {
    const parameters = (
      state as { Parameters?: { StateMachineArn?: string; Input?: Record<string, unknown> } }
    ).Parameters;
    if (parameters?.StateMachineArn === localSubstitutions().ApplicationStateMachineArn) {
      // Go-live switches the tenants left with the application phase itself, before it takes the lock: that run takes
      // its own lock (no `under`), and its failure ends go-live before it changed anything.
      expect(task).toBe('Switch Remaining Tenants');
      expect(parameters?.Input?.under).toBeUndefined();
      const caught = (catchers ?? []).find((c) => c.ErrorEquals.includes('States.ALL'));
      expect(errorPath(definition, caught?.Next ?? '')).toEqual(['Golive Not Started']);
      return;
    }
    expect(parameters?.StateMachineArn).toBe(localSubstitutions().SyncStateMachineArn);
    // Drains compare every chunk; the pass a baking wave runs on the schedule's rate is an ordinary one.
    expect(parameters?.Input?.full).toBe(task !== 'Sync While Baking');
    expect(Object.keys((parameters?.Input?.under ?? {}) as object).sort()).toEqual([
      'execution.$',
      'runId.$',
    ]);
    expect(state.TimeoutSeconds).toBeGreaterThan(0);
    const all = (catchers ?? []).find((c) => c.ErrorEquals.includes('States.ALL'));
    expect(all, 'a Catch for States.ALL').toBeDefined();
    const path = errorPath(definition, all?.Next ?? '');
    expect(definition.States[path.at(-1) ?? '']?.Type, `${task}: ${path.join(' → ')}`).toBe('Fail');
  });

  it.each(tasks)('Task "$task" retries the Lambda service errors and sets its own timeout', ({ state }) => {
    const retried = (state.Retry ?? []).flatMap((r) => r.ErrorEquals);
    // Explain Copy Failure raises a failed child's error again, already retried in the child: not again here.
    if (JSON.stringify(state).includes('explain-copy-failure')) {
      expect(retried).not.toContain('TransientDatabaseError');
      expect(retried).not.toContain('Lambda.Unknown');
      return;
    }
    expect(retried).toEqual(expect.arrayContaining(LAMBDA_ERRORS));
    expect(retried).toContain('TransientDatabaseError');
    expect(state.TimeoutSeconds).toBeGreaterThan(0);
    expect(state.TimeoutSeconds).toBeLessThanOrEqual(900);
  });

  it.each(tasks)('Task "$task" names the config version its state machine was deployed with', ({ state }) => {
    const payload = (state as { Parameters?: { Payload?: Record<string, unknown> } }).Parameters?.Payload;
    // Substituted (locally "local"; on AWS the version's key), so an execution keeps its config whatever is deployed.
    expect(payload?.config).toBe(localSubstitutions().ConfigKey);
  });

  it.each(tasks)('Task "$task" times out exactly when its function does (registry)', ({ state }) => {
    const arn = (state as { Parameters?: { FunctionName?: string } }).Parameters?.FunctionName ?? '';
    const [key] = Object.entries(localSubstitutions()).find(([, value]) => value === arn) ?? [];
    const fn = FUNCTIONS[key as FunctionKey];
    expect(fn, `${arn} is one of our functions`).toBeDefined();
    expect(state.TimeoutSeconds).toBe((fn?.timeoutMinutes ?? 0) * 60);
  });

  it.each(tasks)('Task "$task" calls the one function whose registry entry runs its step', ({ state }) => {
    const parameters = (state as { Parameters?: { FunctionName?: string; Payload?: { step?: string } } })
      .Parameters;
    const [key] =
      Object.entries(localSubstitutions()).find(([, value]) => value === parameters?.FunctionName) ?? [];
    const step = parameters?.Payload?.step ?? '';
    expect(FUNCTIONS[key as FunctionKey]?.steps as readonly string[] | undefined).toContain(step);
    // No two functions of one module run the same step.
    const module = FUNCTIONS[key as FunctionKey]?.module;
    expect(
      Object.values(FUNCTIONS).filter(
        (f) => f.module === module && (f.steps as readonly string[]).includes(step),
      ),
    ).toHaveLength(1);
  });

  it.each(tasks)('Task "$task" catches every error into a path that ends in a Fail', ({ task, catchers }) => {
    const all = (catchers ?? []).find((c) => c.ErrorEquals.includes('States.ALL'));
    expect(all, 'a Catch for States.ALL').toBeDefined();
    const path = errorPath(definition, all?.Next ?? '');
    if (AFTER_THE_RUN[name] === task) {
      // It runs after its run succeeded: its failure changes nothing of the run, which stays succeeded.
      expect(path.map((s) => definition.States[s]?.Type)).toEqual(['Succeed']);
      return;
    }
    expect(definition.States[path.at(-1) ?? '']?.Type).toBe('Fail');
    const throughRollback = path.some((s) => /^Roll Back/.test(s));
    // The start refuses before it writes (and closes a run it recorded); leaving a run resumable undoes nothing; ending a
    // failed rollback only records it.
    const undoesNothing = /^(Start |Leave Run Resumable$|End Failed Rollback$)/.test(task);
    if (ROLE[name] === 'rolls back' && !/^Roll Back/.test(task) && !undoesNothing) {
      expect(throughRollback, `path ${path.join(' → ')} passes through the rollback`).toBe(true);
    } else {
      // Read-only machines, the rollback machine, a rollback step itself, a start and an interrupt fail straight away.
      expect(throughRollback, `path ${path.join(' → ')}`).toBe(false);
    }
  });
});

describe('phase machines: which failures roll back', () => {
  const phase = (name: string) => machines.find((m) => m.name === name)?.definition as Machine;
  it.each([
    'data',
    'foundation',
  ])('%s: a stopped run goes to the rollback that stopped it, a taken-over one ends, anything else rolls back', (name) => {
    const machine = phase(name);
    for (const state of Object.values(machine.States).filter((s) => s.Type !== 'Fail' && s.Catch)) {
      const targets = Object.fromEntries((state.Catch ?? []).map((c) => [c.ErrorEquals.join(','), c.Next]));
      // The start and the interrupt end straight away: they undo nothing, and close their run themselves.
      if (/ Not Started$| Interrupted$/.test(targets['States.ALL'] ?? '')) continue;
      expect(targets.RunStopped).toBe('Stopped By Rollback');
      expect(targets.LockLost).toBe('Taken Over');
    }
  });

  it('data: an error that may pass leaves the run resumable instead of undoing the copy', () => {
    const machine = phase('data');
    for (const name of ['Copy Levels', 'Finish Tables', 'Finish Data']) {
      const resumable = machine.States[name]?.Catch?.find((c) =>
        c.ErrorEquals.includes('TransientDatabaseError'),
      );
      expect(resumable?.ErrorEquals).toEqual(
        expect.arrayContaining(['DatabaseUnreachable', 'States.Timeout', 'Lambda.Unknown']),
      );
      expect(resumable?.Next).toBe('Leave Run Resumable');
      expect(errorPath(machine, 'Leave Run Resumable').at(-1)).toBe('Data Interrupted');
    }
  });
});

describe('the function registry', () => {
  const texts = machines.map((m) => readFileSync(join(STATEMACHINES_DIR, m.file), 'utf8')).join('\n');
  it('has every function called by some state machine, and every step of it', () => {
    for (const [key, spec] of Object.entries(FUNCTIONS)) {
      expect(texts, spec.name).toContain(`\${${key}}`);
      for (const step of spec.steps) expect(texts, `${spec.name} ${step}`).toContain(`"step": "${step}"`);
    }
  });

  it("bounds the copies' concurrency by the tables the data machine copies at once", () => {
    const data = machines.find((m) => m.name === 'data')?.definition as unknown as {
      States: Record<string, { ItemProcessor?: { States: Record<string, { MaxConcurrency?: number }> } }>;
    };
    const level = data.States['Copy Levels']?.ItemProcessor?.States['Copy Level'];
    expect(level?.MaxConcurrency).toBe(TABLES_AT_ONCE);
  });

  it('is what docs/deployment.md says, function by function', () => {
    const docs = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'deployment.md'), 'utf8');
    for (const spec of Object.values(FUNCTIONS)) {
      const row = docs.split('\n').find((line) => line.startsWith(`| \`${spec.name}\` |`));
      expect(row, spec.name).toBe(
        `| \`${spec.name}\` | ${spec.steps.join(', ')} | ${spec.memoryMb} MB | ${spec.timeoutMinutes} min | ${'reservedConcurrency' in spec ? '2 × `chunking.maxConcurrency`' : ''} | ${spec.reaches.join(', ')} |`,
      );
    }
  });
});
