import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambdas/core/config/load.ts';
import { InputError } from '../../lambdas/core/errors.ts';
import { main } from '../../local/cli/main.ts';
import { demoConfig } from '../../local/demo/config.ts';
import { generatedFiles } from '../../scripts/generated-files.ts';

const root = join(import.meta.dirname, '..', '..');

function workdir(config?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'smt-config-'));
  if (config !== undefined) {
    writeFileSync(
      join(dir, 'shifu-migrate.config.json'),
      typeof config === 'string' ? config : JSON.stringify(config),
    );
  }
  return dir;
}

function problems(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return [...(error as InputError).problems];
  }
  throw new Error('expected an InputError');
}

describe('config', () => {
  it('uses the demo config when there is no file, with defaults filled in', () => {
    const loaded = loadConfig({ defaults: demoConfig, cwd: workdir(), env: {} });
    expect(loaded.origin).toEqual({ kind: 'defaults' });
    expect(loaded.sourceUrl).toMatchObject({
      kind: 'mysql',
      host: '127.0.0.1',
      port: 3306,
      database: 'shifu_legacy',
    });
    expect(loaded.targetUrl).toMatchObject({ database: 'shifu_saas' });
    expect(loaded.config.tenants.map((t) => [t.bid, t.tier])).toEqual([
      ['default', 'enterprise'],
      ['acme', 'enterprise'],
      ['globex', 'standard'],
      ['initech', 'standard'],
    ]);
    expect(loaded.config.tables.user_users?.tenant).toEqual([
      expect.objectContaining({ by: 'emailDomain', subdomains: true }),
      expect.objectContaining({ by: 'keys', column: 'user_bid' }),
    ]);
  });

  it('keeps the generated JSON Schema and example config in step with the code (npm run generate)', () => {
    for (const [path, content] of Object.entries(generatedFiles())) {
      expect(readFileSync(join(root, path), 'utf8'), `${path} is stale: run npm run generate`).toBe(content);
    }
  });

  it('names the path of every wrong field and how to fix it', () => {
    const config = demoConfig() as Record<string, unknown> & ReturnType<typeof demoConfig>;
    const bad = {
      ...config,
      onUnmaped: 'quarantine',
      source: { url: 'postgres://root@127.0.0.1/shifu_legacy' },
      chunking: { rowsPerChunk: 10, maxConcurrency: 4 },
      tables: {
        ...config.tables,
        user_users: {
          tenant: [
            { by: 'emailDomain', column: 'email', domains: { 'acme.com': 'acmee' } },
            { by: 'emailDomian', column: 'email' },
          ],
        },
        order_orders: {
          tenant: {
            by: 'reference',
            column: 'user_bid',
            references: { table: 'user_user', column: 'user_bid' },
          },
        },
        sys_configs: { global: true, exclude: 'both' },
        'bad-table': { global: true },
      },
    };
    const lines = problems(() => loadConfig({ defaults: demoConfig, cwd: workdir(bad), env: {} }));
    expect(lines).toEqual(
      expect.arrayContaining([
        'onUnmaped: unknown field. Fix: remove it (did you mean "onUnmapped"?)',
        'source.url: not a database URL. Fix: use mysql://user:password@host:3306/database or rdsdata://<cluster-arn>/<database>?secret=<secret-arn>',
        expect.stringMatching(/^chunking\.rowsPerChunk: Too small: .*>=100.*Fix: change the value to fit$/),
        'tables.user_users.tenant[1].by: unknown rule kind. Fix: set "by" to one of "emailDomain", "value", "keys", "reference", "fixed"',
        expect.stringMatching(
          /^tables\.bad-table: "bad-table" is not a table name shifu-migrate can migrate .*exclude it with "exclude": "<reason>", or rename the table on the source/,
        ),
      ]),
    );
    // Cross-field checks run once the shapes are right: fix the shapes and they speak.
    const shaped = {
      ...config,
      tables: {
        ...config.tables,
        user_users: { tenant: { by: 'emailDomain', column: 'email', domains: { 'acme.com': 'acmee' } } },
        order_orders: {
          tenant: {
            by: 'reference',
            column: 'user_bid',
            references: { table: 'user_user', column: 'user_bid' },
          },
        },
        sys_configs: { global: true, exclude: 'both' },
      },
    };
    const crossField = problems(() => loadConfig({ defaults: demoConfig, cwd: workdir(shaped), env: {} }));
    expect(crossField).toEqual(
      expect.arrayContaining([
        'tables.user_users.tenant.domains.acme.com: unknown tenant "acmee": use one of default, acme, globex, initech',
        expect.stringMatching(
          /^tables\.order_orders\.tenant\.references\.table: user_user has no tenant rule in this config, .*reference one of user_users, /,
        ),
        'tables.sys_configs: sets global and exclude: keep exactly one of global, tenant or exclude',
      ]),
    );
  });

  it('finds tenant references that go round in a circle', () => {
    const config = demoConfig();
    const cyclic = {
      ...config,
      tables: {
        ...config.tables,
        user_users: {
          tenant: {
            by: 'reference',
            column: 'user_bid',
            references: { table: 'order_orders', column: 'user_bid' },
          },
        },
      },
    };
    expect(
      problems(() => loadConfig({ defaults: demoConfig, cwd: workdir(cyclic), env: {} })),
    ).toContainEqual(
      expect.stringMatching(
        /go round in a circle \((user_users → order_orders → user_users|order_orders → user_users → order_orders)\)/,
      ),
    );
  });

  it('lets the environment override URLs, and says so when an override is wrong', () => {
    const loaded = loadConfig({
      defaults: demoConfig,
      cwd: workdir(),
      env: {
        TARGET_DATABASE_URL: 'mysql://migrator:pw@10.0.0.5:3307/saas',
        ARCHIVE_URL: 's3://archive-bucket/shifu',
      },
    });
    expect(loaded.targetUrl).toMatchObject({
      host: '10.0.0.5',
      port: 3307,
      user: 'migrator',
      database: 'saas',
    });
    expect(loaded.config.archive.url).toBe('s3://archive-bucket/shifu');
    expect(
      problems(() =>
        loadConfig({
          defaults: demoConfig,
          cwd: workdir(),
          env: { SOURCE_DATABASE_URL: 'mysql://root@h/bad-name' },
        }),
      ),
    ).toEqual([
      expect.stringMatching(
        /^source\.url \(from SOURCE_DATABASE_URL\): database URL .* names database "bad-name"/,
      ),
    ]);
  });

  it('refuses a target that is the source database', () => {
    expect(
      problems(() =>
        loadConfig({
          defaults: demoConfig,
          cwd: workdir(),
          env: { TARGET_DATABASE_URL: 'mysql://root@127.0.0.1:3306/shifu_legacy' },
        }),
      ),
    ).toEqual([
      'target.url: names the same database as source.url (shifu_legacy): the target must be another database',
    ]);
  });

  it('points at the line and column of a JSON syntax error', () => {
    const cwd = workdir('{\n  "source": { "url": "mysql://root@h/db" },\n  "tenants": [,]\n}');
    expect(() => loadConfig({ defaults: demoConfig, cwd, env: {} })).toThrow(
      /not valid JSON at line 3, column \d+/,
    );
  });

  it('names --config and the fix when it names a directory', () => {
    const dir = workdir();
    expect(() => loadConfig({ file: '.', defaults: demoConfig, cwd: dir, env: {} })).toThrow(
      /--config \. is a directory .*: name the config file itself, e\.g\. --config shifu-migrate\.config\.json/,
    );
  });

  it('says so when the file named by --config is missing', () => {
    expect(() => loadConfig({ file: 'nope.json', defaults: demoConfig, cwd: workdir(), env: {} })).toThrow(
      /config file nope.json not found .*check the --config path/,
    );
  });
});

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { stream, text: () => text };
}

describe('CLI input errors', () => {
  it('exits 2 on a wrong config field, naming the path and the fix', async () => {
    const config = { ...demoConfig(), chunking: { rowsPerChunk: 'lots' } };
    const cwd = workdir(config);
    const stdout = capture();
    const stderr = capture();
    const code = await main(['seed-demo'], { cwd, env: {}, stdout: stdout.stream, stderr: stderr.stream });
    expect(code).toBe(2);
    expect(stderr.text()).toMatch(
      /shifu-migrate\.config\.json is not valid:\n\s+- chunking\.rowsPerChunk: .*expected number.*Fix: give a number/,
    );
    expect(stdout.text()).toBe('');
  });

  it('with --json prints exactly one JSON object naming the failure', async () => {
    const stdout = capture();
    const stderr = capture();
    const code = await main(['seed-demo', '--json', '--config', 'missing.json'], {
      cwd: workdir(),
      env: {},
      stdout: stdout.stream,
      stderr: stderr.stream,
    });
    expect(code).toBe(2);
    expect(JSON.parse(stdout.text())).toEqual({
      version: 1,
      tool: { name: 'shifu-migrate', version: expect.any(String) },
      command: 'seed-demo',
      status: 'REFUSED',
      exitCode: 2,
      startedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      endedAt: expect.stringMatching(/Z$/),
      durationSeconds: expect.any(Number),
      // It failed before a config was read.
      config: null,
      problems: [
        {
          severity: 'error',
          code: 'InputError',
          message: expect.stringMatching(/config file missing.json not found/),
        },
      ],
      outcome: 'INVALID_INPUT',
      error: 'InputError',
      message: expect.stringMatching(/config file missing.json not found/),
    });
  });

  it.each([
    [['migrate-everything'], /unknown command 'migrate-everything'/],
    [['statsu'], /unknown command 'statsu'\n\(Did you mean status\?\)/],
    [['run'], /missing required argument 'phase'/],
    [['run', 'data', '--phase', 'data'], /unknown option '--phase'/],
    [['status', '--users', '5'], /unknown option '--users'/],
    [['verify', '--reset'], /unknown option '--reset'/],
    [['alarm', 'raise'], /missing required argument 'name'/],
    [['seed-demo', '--users', 'many'], /--users must be a whole number from 1 to 2000000, got "many"/],
    [['seed-demo', '--users', '0'], /--users must be a whole number/],
    [['demo', '--fast'], /unknown option '--fast'/],
    [['demo', 'extra'], /too many arguments for 'demo'/],
  ])('exits 2 for %j', async (argv, message) => {
    const stderr = capture();
    const code = await main(argv, {
      cwd: workdir(),
      env: {},
      stdout: capture().stream,
      stderr: stderr.stream,
    });
    expect(code).toBe(2);
    expect(stderr.text()).toMatch(message);
  });

  it('prints its version, and help per command with examples, exit 0', async () => {
    const version = capture();
    expect(
      await main(['--version'], {
        cwd: workdir(),
        env: {},
        stdout: version.stream,
        stderr: capture().stream,
      }),
    ).toBe(0);
    expect(version.text().trim()).toBe(
      (
        JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
          version: string;
        }
      ).version,
    );
    for (const argv of [
      ['run', '--help'],
      ['help', 'run'],
    ]) {
      const help = capture();
      expect(
        await main(argv, { cwd: workdir(), env: {}, stdout: help.stream, stderr: capture().stream }),
      ).toBe(0);
      expect(help.text()).toMatch(/^Usage: shifu-migrate run \[options\] <phase>/);
      expect(help.text()).toMatch(/Examples:\n {2}\$ shifu-migrate run assess/);
      expect(help.text()).toMatch(/--config <file>/);
    }
    // A command group without its command shows its help, and exits 2.
    const alarm = capture();
    expect(
      await main(['alarm'], { cwd: workdir(), env: {}, stdout: capture().stream, stderr: alarm.stream }),
    ).toBe(2);
    expect(alarm.text()).toMatch(/Usage: shifu-migrate alarm/);
  });
});
