import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { DEFAULT_CONFIG_FILE } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';

/** The tool's version, from its package.json. */
export const VERSION = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

/** What the command line asked for, in the shape the commands take. */
export interface ParsedCommand {
  /** The command, then its arguments (`run data`, `alarm raise api-5xx`). */
  readonly positionals: string[];
  readonly values: {
    config?: string;
    json: boolean;
    users?: string;
    reset: boolean;
    phase?: string;
    reason?: string;
    rate?: string;
    duration?: string;
    writes?: string;
    seed?: string;
    every?: string;
    passes?: string;
    tenant?: string;
    yes: boolean;
    /** `report --run <id>`: the golive run to report on. */
    run?: string;
    /** `report --open`: open the HTML report in a browser. */
    open: boolean;
    /** `restore-archive --into <url>`: the database restored into. */
    into?: string;
    /** `restore-archive --table <name>`: one table only. */
    table?: string;
    /** `cleanup-legacy --confirm`: drop, not only say what would be dropped. */
    confirm: boolean;
    /** `run <phase> --dry-run`: the plan only, as `plan <phase>` prints it. */
    dryRun: boolean;
  };
}

const EPILOG = `
Environment: SOURCE_DATABASE_URL, TARGET_DATABASE_URL and ARCHIVE_URL override the config;
SHIFU_MIGRATE_POLL_SECONDS is how often AWS mode reads the execution history (default 2).
With aws.stateMachines in the config (the stack's outputs), run and rollback start the deployed state machines and
follow their execution history; status and verify read the same ledger.
Exit codes: 0 success, 1 the work failed, 2 bad input or config.`;

const examples = (...lines: string[]) =>
  `\nExamples:\n${lines.map((l) => `  $ shifu-migrate ${l}`).join('\n')}\n`;

/**
 * The command line, parsed by commander: per-command help with examples, `--version`, suggestions for mistyped
 * commands and options, and options that do not belong to a command refused. Help and the version are printed
 * here (`exit` then says with which code); anything wrong is an {@link InputError} (exit 2).
 */
export function parseCommandLine(
  argv: readonly string[],
  io: { stdout: (text: string) => void; stderr: (text: string) => void },
): ParsedCommand | { exit: number } {
  let chosen: ParsedCommand | undefined;
  const program = new Command('shifu-migrate')
    .description(
      'Moves the single-tenant AI-Shifu MySQL database into a multi-tenant one, phase by phase, with a way back at every step.',
    )
    .version(VERSION, '-V, --version', 'the version of shifu-migrate')
    .helpOption('-h, --help', 'help for shifu-migrate, or for one command')
    .option(
      '--config <file>',
      `config file (default ${DEFAULT_CONFIG_FILE}; without one, the built-in demo config)`,
    )
    .option('--json', 'print exactly one JSON object on stdout; logs go to stderr')
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // Errors are reported once, by the caller (as JSON too with --json).
      outputError: () => {},
    })
    .addHelpText('after', EPILOG);

  const pick = (name: string, args: string[], command: Command) => {
    const opts = { ...program.opts(), ...command.opts() } as Record<string, unknown>;
    const text = (key: string) => (typeof opts[key] === 'string' ? (opts[key] as string) : undefined);
    const values: ParsedCommand['values'] = {
      json: opts.json === true,
      reset: opts.reset === true,
      yes: opts.yes === true,
      open: opts.open === true,
      confirm: opts.confirm === true,
      dryRun: opts.dryRun === true,
    };
    for (const key of [
      'config',
      'users',
      'phase',
      'reason',
      'rate',
      'duration',
      'writes',
      'seed',
      'every',
      'passes',
      'tenant',
      'run',
      'into',
      'table',
    ] as const) {
      const value = text(key);
      if (value !== undefined) values[key] = value;
    }
    chosen = { positionals: [name, ...args], values };
  };
  const users = '--users <n>';
  const usersHelp = 'demo size in users, about 50 rows each (default 2000)';

  program
    .command('demo')
    .description('make the demo legacy database (or reuse it) and run every phase locally')
    .option(users, usersHelp)
    .option(
      '--reset',
      'drop and recreate the demo database (only one seed-demo made), and undo the demo target',
    )
    .addHelpText('after', examples('demo', 'demo --users 200 --reset'))
    .action((_opts, command: Command) => pick('demo', [], command));
  program
    .command('seed-demo')
    .description('only create and fill the demo legacy database')
    .option(users, usersHelp)
    .option('--reset', 'drop and recreate the demo database (only one seed-demo made)')
    .addHelpText('after', examples('seed-demo --users 20000 --reset'))
    .action((_opts, command: Command) => pick('seed-demo', [], command));
  program
    .command('simulate-traffic')
    .description(
      'write to the demo legacy database as the application does under load, deterministically from the seed',
    )
    .option('--rate <n/s>', 'writes per second (default 50)')
    .option('--duration <time>', 'how long, as 90s, 5m or 1h (default: until Ctrl-C)')
    .option('--writes <n>', 'stop after n writes')
    .option('--seed <s>', 'the seed of its choices (default 1)')
    .addHelpText(
      'after',
      examples('simulate-traffic --rate 200/s --duration 5m', 'simulate-traffic --writes 1000 --seed 7'),
    )
    .action((_opts, command: Command) => pick('simulate-traffic', [], command));
  program
    .command('run')
    .description(
      'run a phase: assess, foundation, data, one sync pass, application (switch tenants wave by wave), integration, or golive (verify, health, archive legacy, end sync)',
    )
    .argument('<phase>', 'assess, foundation, data, sync, application, integration or golive')
    .option('--dry-run', 'print what the run would do (as plan <phase>), and do nothing')
    .addHelpText(
      'after',
      examples(
        'run assess',
        'run data --dry-run',
        'run data --json',
        'run sync',
        'run application',
        'run golive',
        'run foundation --config prod.json',
      ),
    )
    .action((phase: string, _opts, command: Command) => pick('run', [phase], command));
  program
    .command('plan')
    .description(
      'what a run of a phase would do, writing nothing: foundation’s DDL; data’s tables, rows, chunks and estimated time; the others’ steps',
    )
    .argument('<phase>', 'assess, foundation, data, sync, application, integration or golive')
    .addHelpText('after', examples('plan foundation', 'plan data', 'plan data --json'))
    .action((phase: string, _opts, command: Command) => pick('plan', [phase], command));
  program
    .command('sync')
    .description(
      'keep the target in step with the live legacy database: a sync pass, again and again, until Ctrl-C',
    )
    .option('--every <time>', 'time between passes, as 30s, 5m or 1h (default: the config’s sync.every)')
    .option('--passes <n>', 'stop after n passes')
    .addHelpText('after', examples('sync --every 5m', 'sync --every 30s --passes 3'))
    .action((_opts, command: Command) => pick('sync', [], command));
  program
    .command('rollback')
    .description(
      'stop and undo the phase in flight or failed half-way, or the phase named, by what the ledger recorded',
    )
    .option(
      '--phase <phase>',
      'the phase to undo whole: foundation, data or application (every switched tenant back to legacy; default: the one in flight); sync needs none',
    )
    .option('--tenant <bid>', 'one switched tenant back to legacy (its writes drained back first)')
    .option('--yes', 'do not ask (scripts); without it, a terminal shows what may be removed and asks')
    .addHelpText(
      'after',
      examples(
        'rollback',
        'rollback --phase data',
        'rollback --phase application --yes',
        'rollback --tenant acme --yes',
      ),
    )
    .action((_opts, command: Command) => pick('rollback', [], command));
  const alarm = program
    .command('alarm')
    .description(
      'raise or clear a local alarm: raising it starts the rollback, as a CloudWatch alarm does on AWS',
    );
  alarm
    .command('raise')
    .description('raise a local alarm: it starts the rollback; no phase starts until it is cleared')
    .argument('<name>', 'the alarm (letters, digits, . _ -)')
    .option('--reason <text>', 'why the alarm is raised (kept in the ledger)')
    .addHelpText('after', examples('alarm raise api-5xx --reason "error rate over 2%"'))
    .action((name: string, _opts, command: Command) => pick('alarm', ['raise', name], command));
  alarm
    .command('clear')
    .description('clear a raised alarm')
    .argument('<name>', 'the alarm')
    .addHelpText('after', examples('alarm clear api-5xx'))
    .action((name: string, _opts, command: Command) => pick('alarm', ['clear', name], command));
  program
    .command('status')
    .description('the ledger: runs, and per table rows, chunks, quarantine; or one tenant')
    .option('--tenant <bid>', 'one tenant: owner, route, rows per table, conflicts, providers, subscription')
    .addHelpText('after', examples('status', 'status --json', 'status --tenant acme'))
    .action((_opts, command: Command) => pick('status', [], command));
  program
    .command('verify')
    .description('read-only: rows, checksums and tenant isolation, source against target')
    .addHelpText('after', examples('verify', 'verify --json'))
    .action((_opts, command: Command) => pick('verify', [], command));
  program
    .command('report')
    .description(
      'write the migration’s report into the archive: JSON, Markdown and one offline HTML file with charts',
    )
    .argument('[run]', 'the run to report on, of any phase (status lists them); the same as --run')
    .option(
      '--run <id>',
      'the run to report on: a golive run (its final report), or a run of another phase (the migration as of its end); default: the latest golive run, or the migration so far',
    )
    .option('--open', 'open the HTML file in a browser when there is a display')
    .addHelpText(
      'after',
      examples('report', 'report data-20261201T133517Z-52903f --open', 'report --run golive-1 --json'),
    )
    .action((run: string | undefined, _opts, command: Command) =>
      pick('report', run === undefined ? [] : [run], command),
    );
  program
    .command('pause')
    .description(
      'no new chunk starts until resume (those in flight finish; nothing is rolled back), locally and on AWS',
    )
    .option('--reason <text>', 'why (kept in the ledger, shown by status)')
    .addHelpText('after', examples('pause --reason "peak hours"', 'resume'))
    .action((_opts, command: Command) => pick('pause', [], command));
  program
    .command('resume')
    .description('new chunks start again after pause')
    .addHelpText('after', examples('resume'))
    .action((_opts, command: Command) => pick('resume', [], command));
  program
    .command('restore-archive')
    .description(
      'load the legacy archive into a database of its own and prove it: every object’s SHA-256, every table’s checksum',
    )
    .argument('<archive>', 'a golive run id, legacy-archive/<run>, or latest')
    .option(
      '--into <database-url>',
      'the database to load into (created when missing; its tables must not exist)',
    )
    .option('--table <name>', 'only this table')
    .addHelpText(
      'after',
      examples(
        'restore-archive latest --into mysql://root@127.0.0.1:3306/shifu_restored',
        'restore-archive golive-20261201T120000Z-a1b2c3 --into mysql://root@127.0.0.1:3306/one --table user_users',
      ),
    )
    .action((archive: string, _opts, command: Command) => pick('restore-archive', [archive], command));
  program
    .command('cleanup-legacy')
    .description(
      'drop the legacy tables, once go-live archived them, a restore verified the archive and the retention passed',
    )
    .option('--confirm', 'drop them; without it, only say what would be dropped')
    .addHelpText('after', examples('cleanup-legacy', 'cleanup-legacy --confirm'))
    .action((_opts, command: Command) => pick('cleanup-legacy', [], command));
  program
    .command('follow')
    .description(
      'AWS mode: follow an execution already started (console, API, an alarm, a closed CLI) to its end',
    )
    .argument('<execution-arn>', 'arn:aws:states:<region>:<account>:execution:<machine>:<name>')
    .addHelpText('after', examples('follow arn:aws:states:eu-west-1:123456789012:execution:data:run-1'))
    .action((arn: string, _opts, command: Command) => pick('follow', [arn], command));
  program
    .command('redrive')
    .description(
      'AWS mode: redrive a failed, timed-out or aborted execution from where it stopped, then follow it',
    )
    .argument('<execution-arn>', 'arn:aws:states:<region>:<account>:execution:<machine>:<name>')
    .addHelpText('after', examples('redrive arn:aws:states:eu-west-1:123456789012:execution:data:run-1'))
    .action((arn: string, _opts, command: Command) => pick('redrive', [arn], command));

  if (argv.length === 0) {
    io.stdout(program.helpInformation());
    return { exit: 2 };
  }
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Help asked for (`--help`, `help run`) and the version exit 0; help shown because something was missing
    // (`alarm` without raise or clear) exits 2, as bad input does.
    if (['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(error.code))
      return { exit: error.exitCode === 0 ? 0 : 2 };
    throw new InputError(
      `${error.message.replace(/^error: /, '')}\n(see shifu-migrate --help, or shifu-migrate <command> --help)`,
    );
  }
  if (chosen === undefined) return { exit: 2 };
  return chosen;
}
