import { type LoadedConfig, loadConfig } from '../../lambdas/core/config/load.ts';
import { DatabaseUnreachable, InputError } from '../../lambdas/core/errors.ts';
import { redactUrl } from '../../lambdas/core/sql/url.ts';
import { DEFAULT_POLL_SECONDS, machineOf, runOnAws } from '../aws-run.ts';
import { demoConfig } from '../demo/config.ts';
import { MAX_DEMO_USERS } from '../demo/seed.ts';
import { parseAlarmName, runAlarmClear, runAlarmRaise } from './alarm.ts';
import { runCleanupLegacy, runRestoreArchive } from './archive-commands.ts';
import { parseCommandLine } from './commands.ts';
import { confirmRollback, type Terminal } from './confirm.ts';
import { runDemo } from './demo.ts';
import { resolveDemoServer } from './demo-server.ts';
import { runStatusCommand, runVerifyCommand } from './inspect.ts';
import { envelope } from './json-contract.ts';
import { createOutput, type Output } from './output.ts';
import { runPause } from './pause.ts';
import {
  isAwsMode,
  LOCAL_PHASES,
  type LocalPhase,
  parsePhase,
  ROLLBACK_PHASES,
  type Runner,
  runnerFor,
  runPhaseCommand,
  runRollbackCommand,
} from './phases.ts';
import { runPlanCommand } from './plan.ts';
import { targetDatabaseExists } from './preflight.ts';
import { leaveRunReport, runReportCommand } from './report.ts';
import { runSeedDemo } from './seed-demo.ts';
import { parseDuration, parseRate, runSimulateTraffic } from './simulate-traffic.ts';
import { parseEvery, runSyncLoop } from './sync-loop.ts';

export interface CliContext {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  /** Where a question is answered (a rollback's confirmation); a TTY only on a terminal. */
  readonly stdin?: Terminal;
}

const ALARM_ACTIONS = ['raise', 'clear'] as const;
const COMMANDS = [
  'demo',
  'seed-demo',
  'simulate-traffic',
  'run',
  'sync',
  'rollback',
  'alarm',
  'status',
  'verify',
  'follow',
  'redrive',
  'restore-archive',
  'cleanup-legacy',
  'report',
  'pause',
  'resume',
  'plan',
] as const;
type Command = (typeof COMMANDS)[number];

function pollSeconds(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_POLL_SECONDS;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 60)
    throw new InputError(
      `SHIFU_MIGRATE_POLL_SECONDS must be a number of seconds from 0 to 60, got ${JSON.stringify(raw)}`,
    );
  return seconds;
}

function wholeNumber(
  raw: string | undefined,
  option: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new InputError(
      `${option} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  return n;
}

function usersOption(raw: string | undefined): number {
  return wholeNumber(raw, '--users', 2000, 1, MAX_DEMO_USERS);
}

/** What the --json envelope says of the invocation, filled in as the command line and config are read. */
interface Invocation {
  command: string;
  config: Parameters<typeof envelope>[0]['config'];
}

/** Runs one CLI invocation and returns its exit code; with --json, prints its one object (docs/cli-json.md). */
export async function main(argv: readonly string[], context: CliContext = {}): Promise<number> {
  const startedAt = new Date();
  const jsonRequested = argv.includes('--json');
  const out: Output = createOutput({
    json: jsonRequested,
    deferJson: true,
    ...(context.stdout === undefined ? {} : { stdout: context.stdout }),
    ...(context.stderr === undefined ? {} : { stderr: context.stderr }),
  });
  // Until the command line is parsed: its first word, so even a bad command line's object says what was typed.
  const invocation: Invocation = { command: argv.find((a) => !a.startsWith('-')) ?? '', config: null };
  const code = await invoke(argv, context, out, invocation);
  const payload = out.takeJson();
  if (jsonRequested && payload !== undefined) {
    const exit = code === 0 || code === 1 || code === 2 ? code : 1;
    const printed = envelope({ ...invocation, startedAt, endedAt: new Date() }, payload, exit);
    (context.stdout ?? process.stdout).write(`${JSON.stringify(printed, null, 2)}\n`);
  }
  return code;
}

async function invoke(
  argv: readonly string[],
  context: CliContext,
  out: Output,
  invocation: Invocation,
): Promise<number> {
  try {
    const stdout = context.stdout ?? process.stdout;
    const stderr = context.stderr ?? process.stderr;
    const parsed = parseCommandLine(argv, {
      stdout: (text) => stdout.write(text),
      stderr: (text) => stderr.write(text),
    });
    if ('exit' in parsed) {
      // Help asked for is text, even with --json; a command line without a command is bad input, as an object too.
      if (parsed.exit !== 0 && out.json)
        out.resultJson({
          status: 'INVALID_INPUT',
          error: 'InputError',
          message:
            invocation.command === ''
              ? 'name a command: shifu-migrate --help lists them'
              : `${invocation.command} needs its subcommand or arguments: shifu-migrate ${invocation.command} --help`,
        });
      return parsed.exit;
    }
    const { values, positionals } = parsed;
    const [command, ...extra] = positionals as [Command, ...string[]];
    invocation.command = ['run', 'alarm', 'plan'].includes(command)
      ? `${command} ${extra[0] ?? ''}`.trim()
      : command;
    const phaseArgument = command === 'run' || command === 'plan' ? extra.shift() : undefined;
    const executionArn = command === 'follow' || command === 'redrive' ? extra.shift() : undefined;
    const archiveArgument = command === 'restore-archive' ? extra.shift() : undefined;
    const reportRun = command === 'report' ? extra.shift() : undefined;
    if (reportRun !== undefined && values.run !== undefined && reportRun !== values.run)
      throw new InputError(`report names two runs (${reportRun} and --run ${values.run}): name one`);
    if (reportRun !== undefined) values.run = reportRun;
    if ((values.into !== undefined || values.table !== undefined) && command !== 'restore-archive')
      throw new InputError(
        `--${values.into !== undefined ? 'into' : 'table'} goes with restore-archive, not ${command}`,
      );
    if (values.confirm && command !== 'cleanup-legacy')
      throw new InputError(`--confirm goes with cleanup-legacy, not ${command}`);
    if ((command === 'follow' || command === 'redrive') && executionArn === undefined)
      throw new InputError(
        `${command} needs the execution's ARN: ${command} arn:aws:states:<region>:<account>:execution:<machine>:<name>`,
      );
    const alarmAction =
      command === 'alarm' ? parsePhase(extra.shift(), ALARM_ACTIONS, 'alarm action') : undefined;
    const alarmName = command === 'alarm' ? parseAlarmName(extra.shift()) : undefined;
    if (values.reason !== undefined && alarmAction !== 'raise' && command !== 'pause')
      throw new InputError('--reason goes with alarm raise or pause');
    for (const option of ['rate', 'duration', 'writes', 'seed'] as const)
      if (values[option] !== undefined && command !== 'simulate-traffic')
        throw new InputError(`--${option} goes with simulate-traffic, not ${command}`);
    const traffic =
      command === 'simulate-traffic'
        ? {
            rate: parseRate(values.rate),
            seed: wholeNumber(values.seed, '--seed', 1, 0, 2 ** 32 - 1),
            ...(values.duration === undefined ? {} : { durationMs: parseDuration(values.duration) ?? 0 }),
            ...(values.writes === undefined
              ? {}
              : { writes: wholeNumber(values.writes, '--writes', 0, 1, 100_000_000) }),
          }
        : undefined;
    if (extra.length > 0)
      throw new InputError(`unexpected argument ${JSON.stringify(extra[0])} after ${command}`);
    for (const option of ['every', 'passes'] as const)
      if (values[option] !== undefined && command !== 'sync')
        throw new InputError(`--${option} goes with sync, not ${command}`);
    // Go-live is undone by the application phase's rollback: every tenant back to legacy, sync running again.
    if (command === 'rollback' && values.phase === 'golive') {
      out.info(
        'rollback --phase golive is rollback --phase application: every tenant back to legacy, go-live undone.',
      );
      values.phase = 'application';
    }
    if (command === 'rollback' && values.phase === 'sync') {
      // Nothing of a sync pass needs undoing: each repair is one transaction, and the next pass repairs the rest.
      const said =
        'rollback --phase sync is not needed: a sync pass only makes target rows equal to the source, each repair in one transaction, so a failed or stopped pass leaves the target as consistent as before it, and the next pass (npx shifu-migrate run sync) repairs what it did not reach. To take the migrated rows out of the target, sync included: npx shifu-migrate rollback --phase data.';
      out.info(said);
      if (out.json) out.resultJson({ status: 'NOT_NEEDED', phase: 'sync', message: said });
      else out.result('rollback sync: not needed');
      return 0;
    }
    const phase =
      command === 'run' || command === 'plan'
        ? parsePhase(phaseArgument, LOCAL_PHASES, command === 'plan' ? 'phase to plan' : 'phase to run')
        : command === 'rollback' && values.phase !== undefined
          ? parsePhase(values.phase, ROLLBACK_PHASES, 'phase to roll back (--phase)')
          : undefined;
    if (values.tenant !== undefined) {
      if (command !== 'rollback' && command !== 'status')
        throw new InputError(`--tenant goes with rollback or status, not ${command}`);
      if (values.phase !== undefined && values.phase !== 'application')
        throw new InputError(
          `--tenant rolls back one tenant of the application phase, not of ${values.phase}`,
        );
    }
    if (values.phase !== undefined && command !== 'rollback')
      throw new InputError(
        command === 'run'
          ? `--phase goes with rollback; for run, name the phase: run ${values.phase}`
          : `--phase goes with rollback, not ${command}`,
      );
    let loaded: LoadedConfig = loadConfig({
      file: values.config,
      defaults: demoConfig,
      ...(context.env === undefined ? {} : { env: context.env }),
      ...(context.cwd === undefined ? {} : { cwd: context.cwd }),
    });
    invocation.config = {
      origin: loaded.origin.kind === 'file' ? 'file' : 'built-in demo config',
      path: loaded.origin.kind === 'file' ? loaded.origin.path : null,
      source: redactUrl(loaded.sourceUrl.raw),
      target: redactUrl(loaded.targetUrl.raw),
    };
    // Which config and which databases, always: without a config file every command works on the demo databases.
    out.info(
      `Config: ${loaded.origin.kind === 'file' ? loaded.origin.path : `the built-in demo config (no ${values.config ?? 'shifu-migrate.config.json'} in ${context.cwd ?? process.cwd()})`}; source ${redactUrl(loaded.sourceUrl.raw)}, target ${redactUrl(loaded.targetUrl.raw)}`,
    );
    if (values.tenant !== undefined && !loaded.config.tenants.some((t) => t.bid === values.tenant))
      throw new InputError(
        `--tenant ${JSON.stringify(values.tenant)} is not a tenant of the config: use one of ${loaded.config.tenants.map((t) => t.bid).join(', ')}`,
      );
    const options = { users: usersOption(values.users), reset: values.reset };
    loaded = await resolveDemoServer(loaded, {
      env: context.env ?? process.env,
      cwd: context.cwd ?? process.cwd(),
      out,
      mayStart: command === 'demo',
    });

    if (command === 'seed-demo') {
      const result = await runSeedDemo(loaded, options, out);
      if (out.json) out.resultJson({ status: 'SUCCEEDED', ...result });
      else out.result(`seed-demo: ${result.totalRows} rows in ${result.database}`);
      return 0;
    }
    const cwd = context.cwd ?? process.cwd();
    const env = context.env ?? process.env;
    if (traffic !== undefined) {
      // Ctrl-C ends the write in flight, then the summary; a second Ctrl-C is Node's own.
      const stop = new AbortController();
      const onInterrupt = () => stop.abort();
      process.once('SIGINT', onInterrupt);
      try {
        const outcome = await runSimulateTraffic(loaded, traffic, out, cwd, stop.signal);
        if (out.json) out.resultJson(outcome.json);
        else out.result(`simulate-traffic: ${Number(outcome.json.writes)} writes`);
        return outcome.code;
      } finally {
        process.off('SIGINT', onInterrupt);
      }
    }
    const runner = runnerFor(loaded, pollSeconds(env.SHIFU_MIGRATE_POLL_SECONDS));
    if (command === 'status' || command === 'verify') {
      const outcome =
        command === 'status'
          ? await runStatusCommand(loaded, out, cwd, values.tenant)
          : await runVerifyCommand(loaded, out, cwd);
      if (out.json) out.resultJson(outcome.json);
      else
        out.result(
          `${command}: ${outcome.code === 0 ? 'ok' : outcome.json.status === 'NO_DATA' ? 'nothing to verify' : 'differences'}`,
        );
      return outcome.code;
    }
    if (command === 'follow' || command === 'redrive') {
      if (!isAwsMode(loaded))
        throw new InputError(
          `${command} works on AWS executions: set aws.stateMachines in the config (the stack's outputs); locally, run the phase again to resume it`,
        );
      const arn = executionArn ?? '';
      const machine = machineOf(loaded, arn);
      const redrive = command === 'redrive';
      const attach: Runner = (options) =>
        runOnAws({
          ...options,
          pollSeconds: pollSeconds(env.SHIFU_MIGRATE_POLL_SECONDS),
          attach: { executionArn: arn, redrive },
        });
      const said = `${redrive ? 'Redriving' : 'Following'} ${machine.name} on AWS (${arn})`;
      const outcome =
        machine.name === 'rollback'
          ? await runRollbackCommand(loaded, {}, out, cwd, attach, said)
          : await runPhaseCommand(loaded, machine.name as LocalPhase, out, cwd, attach, said);
      if (out.json) out.resultJson(outcome.json);
      else out.result(`${command} ${machine.name}: ${outcome.code === 0 ? 'done' : 'failed'}`);
      return outcome.code;
    }
    if (command === 'rollback') {
      const yes = await confirmRollback(loaded, values.tenant === undefined ? phase : 'application', {
        yes: values.yes,
        stdin: context.stdin ?? (context.stdout === undefined ? process.stdin : undefined),
        out,
        prompt: stderr,
      });
      if (!yes) {
        out.info('Not rolled back: nothing was changed.');
        if (out.json) out.resultJson({ status: 'DECLINED', phase: phase ?? null });
        else out.result('rollback: not confirmed');
        return 1;
      }
    }
    if (command === 'sync') {
      const outcome = await runSyncLoop(
        loaded,
        {
          everyMs:
            values.every === undefined
              ? parseEvery(loaded.config.sync.every, 'sync.every')
              : parseEvery(values.every),
          ...(values.passes === undefined
            ? {}
            : { passes: wholeNumber(values.passes, '--passes', 1, 1, 1_000_000) }),
        },
        out,
        cwd,
        runner,
      );
      if (out.json) out.resultJson(outcome.json);
      else
        out.result(
          `sync: ${Number(outcome.json.passes)} passes, ${outcome.code === 0 ? 'the last one done' : 'the last one failed'}`,
        );
      return outcome.code;
    }
    // What reads or writes the target's ledger needs the target database, which foundation makes.
    const needsTarget =
      command === 'pause' ||
      command === 'resume' ||
      command === 'report' ||
      (command === 'run' &&
        !isAwsMode(loaded) &&
        ['sync', 'application', 'integration', 'golive'].includes(phase ?? ''));
    if (needsTarget && !values.dryRun && !(await targetDatabaseExists(loaded, cwd))) {
      if (command === 'report') {
        out.info(
          `Nothing to report: the target database ${loaded.targetUrl.database} does not exist yet (run foundation first).`,
        );
        if (out.json) out.resultJson({ status: 'NO_DATA', runId: null });
        else out.result('report: nothing to report');
        return 1;
      }
      throw new InputError(
        `the target database ${loaded.targetUrl.database} does not exist yet: ${command === 'run' ? `run foundation (and data) before ${phase}` : `nothing runs there to ${command}`}`,
      );
    }
    if (command === 'plan' || (command === 'run' && values.dryRun)) {
      const outcome = await runPlanCommand(loaded, phase ?? '', out, cwd);
      if (out.json) out.resultJson(outcome.json);
      return outcome.code;
    }
    if (command === 'run' || command === 'rollback') {
      const outcome =
        command === 'run'
          ? await runPhaseCommand(loaded, phase as LocalPhase, out, cwd, runner)
          : await runRollbackCommand(
              loaded,
              {
                ...(phase === undefined ? {} : { phase }),
                ...(values.tenant === undefined ? {} : { tenant: values.tenant }),
              },
              out,
              cwd,
              runner,
            );
      // A rollback that recorded a run leaves its report too (a run's report is written by runPhaseCommand).
      const rollbackRun = outcome.json.rollbackRunId;
      if (command === 'rollback' && typeof rollbackRun === 'string' && !isAwsMode(loaded))
        out.info(await leaveRunReport(loaded, rollbackRun, cwd));
      if (out.json) out.resultJson(outcome.json);
      else
        out.result(
          `${command}${phase === undefined ? '' : ` ${phase}`}: ${outcome.code === 0 ? (outcome.json.nothingToDo === true ? 'nothing to roll back' : 'done') : outcome.json.error === 'Interrupted' ? 'interrupted (resumable)' : 'failed'}`,
        );
      return outcome.code;
    }
    if (command === 'pause' || command === 'resume') {
      const outcome = await runPause(loaded, command === 'pause', values.reason ?? '', out, cwd);
      if (out.json) out.resultJson(outcome.json);
      else out.result(`${command}: done`);
      return outcome.code;
    }
    if (command === 'report') {
      const outcome = await runReportCommand(
        loaded,
        { ...(values.run === undefined ? {} : { runId: values.run }), open: values.open, env },
        out,
        cwd,
      );
      if (out.json) out.resultJson(outcome.json);
      else out.result(outcome.html === null ? 'report: nothing to report' : `report: ${outcome.html}`);
      return outcome.code;
    }
    if (command === 'restore-archive' || command === 'cleanup-legacy') {
      const outcome =
        command === 'restore-archive'
          ? await runRestoreArchive(loaded, archiveArgument ?? 'latest', values.into, values.table, out, cwd)
          : await runCleanupLegacy(loaded, values.confirm, out, cwd);
      if (out.json) out.resultJson(outcome.json);
      else out.result(`${command}: ${String(outcome.json.status).toLowerCase().replaceAll('_', ' ')}`);
      return outcome.code;
    }
    if (command === 'alarm') {
      const name = alarmName ?? '';
      if (isAwsMode(loaded)) {
        throw new InputError(
          `alarm raise and clear are the local stand-in for CloudWatch alarms; on AWS set the alarm itself (aws cloudwatch set-alarm-state --alarm-name ${JSON.stringify(name)} --state-value ALARM --state-reason …): ` +
            'the stack’s rule then starts the rollback. Or run: npx shifu-migrate rollback',
        );
      }
      const outcome =
        alarmAction === 'raise'
          ? await runAlarmRaise(loaded, name, values.reason ?? '', out, cwd)
          : await runAlarmClear(loaded, name, out, cwd);
      if (out.json) out.resultJson(outcome.json);
      else
        out.result(
          `alarm ${alarmAction} ${JSON.stringify(name)}: ${outcome.code !== 0 ? 'failed' : outcome.json.state === 'NOT_RECORDED' ? 'not recorded' : 'done'}`,
        );
      return outcome.code;
    }
    const result = await runDemo(loaded, options, out, cwd);
    if (out.json) out.resultJson(result.json);
    else out.result(`demo: ${result.code === 0 ? 'done' : 'stopped'}`);
    return result.code;
  } catch (error) {
    return report(error, out);
  }
}

function report(error: unknown, out: Output): number {
  const code = error instanceof InputError ? 2 : 1;
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof DatabaseUnreachable && /@(127\.0\.0\.1|localhost|\[?::1\]?)[:/]/.test(error.url)) {
    message +=
      '\nStart a MySQL-compatible server there, for example:\n' +
      '  apt-get install mariadb-server && start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd\n' +
      '  docker run -d -p 3306:3306 -e MYSQL_ALLOW_EMPTY_PASSWORD=yes mysql:8\n' +
      'or point SOURCE_DATABASE_URL / TARGET_DATABASE_URL at one you have.';
  }
  if (out.json) {
    out.resultJson({
      status: code === 2 ? 'INVALID_INPUT' : 'FAILED',
      error: error instanceof Error ? error.name : 'Error',
      message,
    });
  }
  out.info(`error: ${message}`);
  return code;
}
