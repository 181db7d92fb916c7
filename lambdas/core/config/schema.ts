import { z } from 'zod';
import { isSafeIdentifier } from '../identifiers.ts';
import { bindTenant, codeOutsideQuotes } from '../sql/quoted.ts';

/**
 * The shape of `shifu-migrate.config.json`. The JSON Schema in `schema/` is generated from this file
 * (`npm run schema`); a test fails when the two differ.
 */

const identifier = (what: string) =>
  z
    .string()
    .refine(isSafeIdentifier, {
      error: `not a usable ${what} name: use 1 to 64 characters of A-Z, a-z, 0-9, _ or $`,
    })
    .meta({ description: `A ${what} name: 1 to 64 characters of A-Z, a-z, 0-9, _ or $.` });

export const tenantBid = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, {
    error: 'a tenant bid is 1 to 32 characters of a-z, 0-9, _ or -, starting with a letter or digit',
  })
  .meta({ description: 'A tenant business id, stored in every row as `tenant_bid` (VARCHAR(32)).' });

const databaseUrl = z
  .string()
  .regex(/^(mysql|rdsdata):\/\//, {
    error:
      'not a database URL. Fix: use mysql://user:password@host:3306/database or rdsdata://<cluster-arn>/<database>?secret=<secret-arn>',
  })
  .meta({
    description:
      'mysql://user:password@host:port/database (mysql2) or rdsdata://<cluster-arn>/<database>?secret=<secret-arn> (RDS Data API).',
  });

export const Tenant = z
  .strictObject({
    bid: tenantBid,
    name: z.string().min(1).max(100),
    domain: z
      .string()
      .max(100)
      .optional()
      .meta({ description: 'The tenant’s own domain, unique among tenants.' }),
    tier: z.enum(['free', 'standard', 'enterprise']).default('standard'),
    subscriptionPlan: z.string().max(50).optional(),
  })
  .meta({ description: 'A tenant of the SaaS database, created by the foundation phase.' });

const domainName = z.string().regex(/^(?!-)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+$/, {
  error: 'not a domain name such as acme.com',
});

export const EmailDomainRule = z
  .strictObject({
    by: z.literal('emailDomain'),
    column: identifier('column'),
    domains: z.record(domainName, tenantBid).meta({
      description: 'E-mail domain → tenant bid. Matched case-insensitively on the part after the last @.',
    }),
    subdomains: z
      .boolean()
      .default(true)
      .meta({ description: 'Whether cn.acme.com also matches acme.com (the longest listed domain wins).' }),
  })
  .meta({
    description: 'The tenant of the row follows the domain of an e-mail address in one of its columns.',
  });

export const ValueRule = z
  .strictObject({
    by: z.literal('value'),
    column: identifier('column'),
    values: z
      .record(z.string(), tenantBid)
      .meta({ description: 'Column value → tenant bid (e.g. organisation).' }),
    caseSensitive: z.boolean().default(false),
  })
  .meta({ description: 'The tenant of the row follows the value of one of its columns.' });

export const KeysRule = z
  .strictObject({
    by: z.literal('keys'),
    column: identifier('column'),
    tenants: z
      .record(tenantBid, z.array(z.string()).min(1))
      .meta({ description: 'Tenant bid → the exact column values (keys) whose rows belong to it.' }),
  })
  .meta({ description: 'Explicit lists of keys per tenant.' });

export const WhenNotUnique = z
  .union([
    z.enum(['highestKey', 'lowestKey']),
    z.strictObject({ newest: identifier('column') }),
    z.strictObject({ oldest: identifier('column') }),
  ])
  .meta({
    description:
      'Which row gives the tenant when several rows of the referenced table share the key (AI-Shifu re-registers users under an existing user_bid): { "newest": "<column>" } the largest value of that column (ties: the highest primary key), { "oldest": "<column>" } the smallest (ties: the lowest primary key), "highestKey" or "lowestKey" by primary key. Rows whose column is NULL come last. Default: { "newest": "updated_at" } when the referenced table has updated_at, else "highestKey".',
  });

export const ReferenceRule = z
  .strictObject({
    by: z.literal('reference'),
    column: identifier('column'),
    references: z.strictObject({ table: identifier('table'), column: identifier('column') }),
    whenNotUnique: WhenNotUnique.optional(),
  })
  .meta({
    description:
      'The row takes the tenant of the row it points to (order_orders.user_bid → user_users.user_bid), as already resolved for that table.',
  });

export const FixedRule = z
  .strictObject({ by: z.literal('fixed'), tenant: tenantBid })
  .meta({ description: 'Every row of the table goes to one tenant.' });

export const TenantRule = z.discriminatedUnion('by', [
  EmailDomainRule,
  ValueRule,
  KeysRule,
  ReferenceRule,
  FixedRule,
]);

export const OnUnmapped = z.enum(['default', 'quarantine', 'fail']).meta({
  description:
    'What happens to a row no rule maps: default = the default tenant; quarantine = copied to the quarantine table with the reason; fail = the phase fails.',
});

export const TableRules = z
  .strictObject({
    global: z.literal(true).optional().meta({
      description: 'A table without an owner (configuration, catalogue): copied as it is, no tenant_bid.',
    }),
    tenant: z
      .union([TenantRule, z.array(TenantRule).min(1)])
      .optional()
      .meta({
        description: 'How each row gets its tenant; with a list, the first rule that maps the row wins.',
      }),
    onUnmapped: OnUnmapped.optional().meta({
      description: 'Overrides the top-level onUnmapped for this table.',
    }),
    exclude: z.string().min(1).optional().meta({
      description: 'Leave this table out of the migration; the text says why (it goes into the reports).',
    }),
    changeColumn: identifier('column').optional().meta({
      description:
        'The DATETIME or TIMESTAMP column the application sets on every insert and update: sync catches up on rows changed since its last pass by it. Default: the table’s column declared ON UPDATE CURRENT_TIMESTAMP, if any (the assessment names it). Without one, only checksum reconciliation keeps the table in step.',
    }),
  })
  .meta({ description: 'Exactly one of global, tenant or exclude.' });

const loadRules = z.string().regex(/^[A-Za-z_]{1,64}=\d{1,9}(,[A-Za-z_]{1,64}=\d{1,9}){0,9}$/, {
  error:
    'server status variables and their bounds, e.g. "Threads_running=25" or "Threads_running=25,Threads_connected=400"',
});

export const Chunking = z.strictObject({
  rowsPerChunk: z
    .int()
    .min(100)
    .max(1_000_000)
    .default(5_000)
    .meta({ description: 'Rows per copy chunk when no time target is set.' }),
  targetChunkSeconds: z
    .number()
    .positive()
    .max(600)
    .optional()
    .meta({ description: 'Size chunks to take about this long each (measured on the first chunks).' }),
  maxConcurrency: z
    .int()
    .min(1)
    .max(64)
    .default(4)
    .meta({ description: 'Chunks copied at the same time (the Map state’s MaxConcurrency).' }),
  recheckDelaySeconds: z.number().min(0).max(600).default(5).meta({
    description:
      'A chunk that still differs after a re-copy (its source rows are being written) is looked at again after this long: rows that changed in between are left to the sync phase; rows that did not change and still differ fail the phase.',
  }),
  maxLoad: loadRules.optional().meta({
    description:
      'New chunks wait while either database is busier than this: server status variables and their bounds, e.g. "Threads_running=25" (as pt-online-schema-change and gh-ost do). Chunks in flight finish.',
  }),
  criticalLoad: loadRules.optional().meta({
    description:
      'Over this, the run stops before its next chunk, resumable, nothing undone (e.g. "Threads_running=60").',
  }),
  copyPath: z.enum(['auto', 'server', 'client']).default('auto').meta({
    description:
      'How chunks are copied: server = INSERT … SELECT on the server (source and target on one server); client = rows read in keyset pages and written with multi-row upserts; auto = server when it can, else client.',
  }),
});

export const Sync = z.strictObject({
  every: z
    .string()
    .regex(/^([1-9]\d{0,3}m|([1-9]|1\d|2[0-4])h)$/, {
      error:
        'a whole number of minutes or hours from 1m to 24h, such as 5m or 1h (the schedule has no finer unit)',
    })
    .refine((every) => !every.endsWith('m') || Number(every.slice(0, -1)) <= 1_440, {
      error: 'at most 24h (1440m): passes further apart leave the target a day behind',
    })
    .default('5m')
    .meta({
      description:
        'How often a sync pass starts: the EventBridge Scheduler rate on AWS, and the default of `sync --every` locally.',
    }),
  overlapSeconds: z.int().min(1).max(86_400).default(120).meta({
    description:
      'Catch-up reads rows changed since the last pass’s watermark minus this much: a transaction that committed after the watermark was read, with a change time before it, is still seen. Longer than the application’s longest write transaction.',
  }),
  slices: z.int().min(1).max(1_000).default(1).meta({
    description:
      'Checksum reconciliation covers 1/slices of each table’s chunks per pass, in rotation: 1 compares every chunk every pass; 12 compares each chunk every 12th pass.',
  }),
  onTenantChange: z.enum(['report', 'fail']).default('report').meta({
    description:
      'A source row whose tenant would change under the rules (a user’s e-mail moved to another tenant’s domain) is never moved silently: report = recorded in migration_sync_conflicts and left as the target has it; fail = the pass fails naming it.',
  }),
  lagStartsRollback: z.boolean().default(false).meta({
    description:
      'On AWS, the lag alarm (a table’s lag over maxLagSeconds) also starts the rollback state machine, as a failed phase does; by default it only notifies.',
  }),
  maxLagSeconds: z.int().min(1).max(604_800).default(900).meta({
    description:
      'The bound on a table’s sync lag: above it the lag alarm enters ALARM (on AWS), and status marks the table.',
  }),
});

const Probe = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, { error: 'a short name: letters, digits, space . _ -' })
    .meta({ description: 'What the probe checks, as gates and status name it (e.g. "legacy api").' }),
  url: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .meta({ description: 'Requested with GET; no credentials in it (they would be logged).' }),
  expectStatus: z
    .int()
    .min(100)
    .max(599)
    .default(200)
    .meta({ description: 'The HTTP status it must answer.' }),
  bodyIncludes: z
    .string()
    .max(200)
    .optional()
    .meta({ description: 'Text the body must contain (e.g. ""status":"ok"").' }),
  timeoutMs: z.int().min(100).max(30_000).default(3_000).meta({
    description: 'The latency bound: a probe slower than this fails the gate.',
  }),
});

const listenerArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:listener\/app\/[A-Za-z0-9-]+\/[0-9a-f]+\/[0-9a-f]+$/,
    {
      error:
        'must be an ALB listener ARN: arn:aws:elasticloadbalancing:<region>:<account>:listener/app/<lb>/<id>/<id>',
    },
  );
const targetGroupArn = z
  .string()
  .regex(/^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup\/[A-Za-z0-9-]+\/[0-9a-f]+$/, {
    error:
      'must be a target group ARN: arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>',
  });

/**
 * Where a secret is, never what it is: a Secrets Manager ARN (on AWS the phase checks it exists with DescribeSecret,
 * which returns no value) or the name of an environment variable (locally: it must be set). The value is never read
 * into a log, a report or the ledger.
 */
export const SecretRef = z.union([
  z.strictObject({
    secretArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/, {
        error:
          'must be a Secrets Manager secret ARN: arn:aws:secretsmanager:<region>:<account>:secret:<name>',
      }),
  }),
  z.strictObject({
    env: z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/, {
      error: 'must be an environment variable name such as ACME_GOOGLE_SECRET',
    }),
  }),
]);

export const OAuthProvider = z.strictObject({
  provider: z.enum(['google', 'github', 'microsoft', 'apple', 'wechat', 'oidc']),
  clientId: z.string().min(1).max(255),
  clientSecret: SecretRef.meta({
    description: 'A reference to the client secret: { "secretArn": … } or { "env": … }.',
  }),
  redirectUris: z
    .array(z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }))
    .min(1)
    .max(20)
    .meta({ description: 'On the tenant’s own domain (or a subdomain of it): checked.' }),
  allowedEmailDomains: z.array(domainName).max(50).default([]),
});

const Plan = z.strictObject({
  name: z.string().min(1).max(100),
  price: z
    .string()
    .regex(/^\d{1,10}(\.\d{1,2})?$/, { error: 'a price as text, such as "49.00" (money stays exact)' }),
  currency: z.string().regex(/^[A-Z]{3}$/, { error: 'an ISO 4217 code such as USD or CNY' }),
  period: z.enum(['month', 'year']).default('month'),
  seats: z.int().min(1).max(1_000_000).optional(),
});

const sqlName = z.string().refine(isSafeIdentifier, {
  error: 'a table or column name of 1 to 64 characters of A-Z, a-z, 0-9, _ or $',
});

export const LegacyLogin = z.strictObject({
  table: sqlName.meta({ description: 'The legacy table of global settings, e.g. sys_configs.' }),
  keyColumn: sqlName.meta({ description: 'Its key column, e.g. config_key.' }),
  valueColumn: sqlName.meta({ description: 'Its value column, e.g. config_value.' }),
  providers: z
    .array(
      z.strictObject({
        provider: OAuthProvider.shape.provider,
        clientIdKey: z
          .string()
          .min(1)
          .max(255)
          .meta({ description: 'The key whose value is the client id (read from legacy at the run).' }),
        clientSecret: SecretRef.meta({
          description:
            'A reference to the client secret (the legacy table may hold the value: it is never copied; store it in Secrets Manager or the environment and reference it).',
        }),
        redirectUris: OAuthProvider.shape.redirectUris,
        allowedEmailDomains: OAuthProvider.shape.allowedEmailDomains,
      }),
    )
    .min(1)
    .max(10),
});

export const Integration = z.strictObject({
  oauth: z
    .record(tenantBid, z.array(OAuthProvider).max(10))
    .default({})
    .meta({ description: 'Per tenant, its identity providers: into tenant_oauth_providers.' }),
  billing: z
    .array(
      z.strictObject({
        table: sqlName.meta({ description: 'A legacy table of per-owner payment settings or billing rows.' }),
        keyColumn: sqlName.meta({ description: 'Its key column (one setting per key).' }),
        ownerColumn: sqlName.meta({
          description:
            'The column holding the owner’s user bid (creator_bid): the setting goes to that user’s tenant.',
        }),
      }),
    )
    .max(20)
    .default([])
    .meta({
      description:
        'Legacy per-owner payment settings assigned to the tenant of their owner (the tenant data gave that user): into tenant_payment_settings.',
    }),
  legacyLogin: LegacyLogin.optional().meta({
    description:
      'The legacy system’s global login settings, which become the default tenant’s identity providers: the client id read from a legacy settings table by key.',
  }),
  plans: z
    .strictObject({ free: Plan, standard: Plan, enterprise: Plan })
    .default({
      free: { name: 'Free', price: '0.00', currency: 'USD', period: 'month' },
      standard: { name: 'Standard', price: '49.00', currency: 'USD', period: 'month' },
      enterprise: { name: 'Enterprise', price: '499.00', currency: 'USD', period: 'month' },
    })
    .meta({
      description:
        'The subscription plan of each tier (tenant_subscription_plans); every tenant gets one active subscription to its tier’s plan.',
    }),
});

export const Application = z.strictObject({
  waves: z
    .array(z.array(tenantBid).min(1, { error: 'a wave lists at least one tenant' }))
    .min(1)
    .optional()
    .meta({
      description:
        'The tenants switched together, wave after wave, e.g. [["acme"], ["globex"], ["default"]]. Default: one tenant per wave, the smallest first, the default tenant last. A tenant left out stays on legacy until golive.',
    }),
  bakeMinutes: z.number().min(0).max(1_440).default(10).meta({
    description:
      'How long each wave bakes after its switch, alarms and probes checked every 30 s, before the next wave (locally scaled down like every Wait).',
  }),
  maxLagSeconds: z.int().min(0).max(86_400).default(60).meta({
    description:
      'Gate: the last sync pass must have succeeded with every table’s lag (both directions) at most this.',
  }),
  settleSeconds: z.number().min(0).max(240).default(5).meta({
    description:
      'After a tenant is paused, how long before its drain begins: longer than the application’s longest write request, so a write that read the route just before the pause has committed when the drain reads.',
  }),
  idSeries: z.enum(['servers', 'sessions']).default('servers').meta({
    description:
      'How the two sides keep their AUTO_INCREMENT ids apart while both take writes: servers = each server’s auto_increment_increment (2) and auto_increment_offset (1 legacy, 2 multi-tenant), checked by a gate; sessions = the application sets them on its own sessions (not checkable).',
  }),
  probes: z
    .array(Probe)
    .max(20)
    .default([])
    .refine((probes) => new Set(probes.map((p) => p.name)).size === probes.length, {
      error: 'two probes have the same name: gates report each by its name',
    })
    .meta({
      description:
        'Health probes every gate and bake round requests: the legacy and multi-tenant APIs’ health endpoints.',
    }),
  loadBalancer: z
    .strictObject({
      listenerArn,
      targetGroupArn: targetGroupArn.meta({
        description: 'The multi-tenant application’s target group: switched tenants’ hosts forward there.',
      }),
      priorities: z
        .strictObject({ from: z.int().min(1).max(50_000), to: z.int().min(1).max(50_000) })
        .refine((p) => p.from <= p.to, { error: 'from must be at most to' })
        .default({ from: 40_000, to: 40_999 })
        .meta({
          description:
            'The listener rule priorities the tool may use for its rules (one per switched tenant); rules it did not create are never touched.',
        }),
    })
    .optional()
    .meta({
      description:
        'An Application Load Balancer to switch too: per switched tenant, a listener rule (host-header of the tenant’s domain) forwarding to the multi-tenant target group, removed on rollback.',
    }),
});

const SmokeQuery = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, { error: 'a short name: letters, digits, space . _ -' })
    .meta({ description: 'What the query checks, as the health report names it (e.g. "own courses").' }),
  sql: z
    .string()
    .max(4_000)
    .refine((sql) => /^\s*(SELECT|WITH)\b[^;]*$/i.test(codeOutsideQuotes(sql)), {
      error: 'must be one SELECT (or WITH … SELECT) statement, without ; (outside quotes)',
    })
    .refine((sql) => bindTenant(sql).uses > 0, {
      error: 'must use :tenant (outside quotes) where the tenant id goes (it is sent as a parameter)',
    })
    .refine((sql) => !/\bINTO\s+(OUTFILE|DUMPFILE|@)/i.test(codeOutsideQuotes(sql)), {
      error: 'must not write anywhere (INTO OUTFILE, INTO DUMPFILE, INTO @variable)',
    })
    .meta({
      description:
        'Run on the multi-tenant database once per tenant, in a read-only transaction, with :tenant bound to the tenant id, e.g. "SELECT tenant_bid FROM shifu_published_shifus WHERE tenant_bid = :tenant".',
    }),
  minRows: z.int().min(0).default(1).meta({ description: 'The fewest rows each tenant must see.' }),
  tenantColumn: identifier('column').optional().meta({
    description:
      'A column of the result that must equal the tenant in every row: the tenant sees its own rows and only those.',
  }),
});

export const GoLive = z.strictObject({
  probes: z
    .array(Probe)
    .max(20)
    .optional()
    .meta({ description: 'HTTP probes of the health verification. Default: application.probes.' }),
  smokeQueries: z
    .array(SmokeQuery)
    .max(50)
    .default([])
    .refine((queries) => new Set(queries.map((q) => q.name)).size === queries.length, {
      error: 'two smoke queries have the same name: the health report names each by its name',
    })
    .meta({ description: 'Per-tenant smoke queries of the health verification.' }),
  alarmsQuietMinutes: z.number().min(0).max(1_440).default(15).meta({
    description:
      'Health: none of the ledger’s alarms in ALARM or raised within this many minutes before go-live archives; on AWS also none of the stack’s or aws.rollbackOnAlarms in ALARM at the check (CloudWatch’s history is not read).',
  }),
  maxConnectionsUsed: z.number().gt(0).max(1).default(0.9).meta({
    description:
      'Health: each database’s connections in use (Threads_connected) at most this share of max_connections.',
  }),
  maxReplicaLagSeconds: z.int().min(0).max(86_400).default(30).meta({
    description:
      'Health: replicas of the multi-tenant database (when the server is one) at most this far behind.',
  }),
  accept: z
    .strictObject({
      quarantined: z.boolean().default(false).meta({
        description:
          'Go live even though rows are quarantined (they stay in migration_quarantine and the archive).',
      }),
      conflicts: z.boolean().default(false).meta({
        description: 'Go live even though tenant conflicts are open (migration_sync_conflicts).',
      }),
    })
    .default({ quarantined: false, conflicts: false })
    .meta({
      description: 'Go-live refuses while rows are quarantined or conflicts open, unless accepted here.',
    }),
  archive: z
    .strictObject({
      partRows: z.int().min(1_000).max(10_000_000).default(100_000).meta({
        description:
          'Rows per archive object at most (fewer for wide rows: about 64 MiB before compression).',
      }),
      maxConcurrency: z.int().min(1).max(40).default(2).meta({
        description: 'Archive objects written at once (Lambda functions on AWS).',
      }),
      retentionDays: z.int().min(0).max(3_650).default(30).meta({
        description:
          'cleanup-legacy drops the legacy tables only this long after their archive (and only once it was restored and verified). On AWS the archive objects are kept under S3 Object Lock for this long.',
      }),
    })
    .default({ partRows: 100_000, maxConcurrency: 2, retentionDays: 30 }),
});

/** A Step Functions state machine ARN (also what the control function's environment must hold). */
export const STATE_MACHINE_ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;
const stateMachineArn = z.string().regex(STATE_MACHINE_ARN, {
  error:
    'must be a state machine ARN: arn:aws:states:<region>:<account>:stateMachine:<name> (the stack prints them as outputs)',
});
const alarmArn = z.string().regex(/^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.{1,255}$/, {
  error: 'must be a CloudWatch alarm ARN: arn:aws:cloudwatch:<region>:<account>:alarm:<name>',
});

export const Aws = z.strictObject({
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { error: 'must be an AWS region such as us-east-1' })
    .optional()
    .meta({ description: 'The region of the deployed stack (default: the AWS SDK’s, e.g. AWS_REGION).' }),
  stateMachines: z
    .strictObject({
      assess: stateMachineArn,
      foundation: stateMachineArn,
      data: stateMachineArn,
      sync: stateMachineArn.optional(),
      application: stateMachineArn.optional(),
      integration: stateMachineArn.optional(),
      golive: stateMachineArn.optional(),
      rollback: stateMachineArn,
    })
    .optional()
    .meta({
      description:
        'The deployed state machines (the stack’s outputs). With these, `run` and `rollback` start executions on AWS instead of running locally.',
    }),
  trialCluster: z.boolean().default(false).meta({
    description:
      'cdk deploy creates an Aurora Serverless v2 MySQL cluster with the Data API and uses it for both databases (their names come from source.url and target.url). For a trial; load the legacy database into it yourself.',
  }),
  rollbackOnAlarms: z.array(alarmArn).max(20).default([]).meta({
    description:
      'Your own CloudWatch alarms (error rates, latency of the application) that start the rollback state machine when they enter ALARM.',
  }),
  alarmEmails: z
    .array(z.email({ error: 'must be an e-mail address, such as oncall@example.com' }))
    .max(10)
    .default([])
    .meta({
      description:
        'Who is told when an alarm of the stack enters ALARM or returns to OK (a failed phase, a rollback that failed, a checksum mismatch, an alarm event that could not start the rollback): each address gets an SNS subscription to confirm.',
    }),
});

export const ConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    source: z
      .strictObject({
        url: databaseUrl,
        writeUrl: databaseUrl.optional().meta({
          description:
            'Reverse sync writes the rows of switched tenants back to legacy through this URL (a user that may write the migrated tables). Default: url.',
        }),
      })
      .meta({ description: 'The legacy single-tenant database (read only, but for reverse sync).' }),
    target: z.strictObject({ url: databaseUrl }).meta({ description: 'The multi-tenant SaaS database.' }),
    archive: z
      .strictObject({
        url: z.string().min(1).meta({
          description:
            'Where reports and archived legacy data go: a folder path, file://…, or s3://bucket/prefix.',
        }),
      })
      .meta({ description: 'The archive store.' }),
    tenants: z.array(Tenant).min(1, { error: 'list at least one tenant' }),
    defaultTenant: tenantBid.meta({ description: 'The tenant that rows go to when onUnmapped is default.' }),
    onUnmapped: OnUnmapped.default('default'),
    tables: z
      // Any table name the server allows: one we cannot quote may still be named, to exclude it.
      .record(
        z.string().min(1).max(64).meta({ description: 'A table of the source, by its name.' }),
        TableRules,
      )
      .superRefine(
        (tables, ctx) => {
          for (const [table, rules] of Object.entries(tables ?? {})) {
            const excluded = typeof rules === 'object' && rules !== null && 'exclude' in rules;
            if (isSafeIdentifier(table) || excluded) continue;
            ctx.addIssue({
              code: 'custom',
              path: [table],
              message: `${JSON.stringify(table)} is not a table name shifu-migrate can migrate (1 to 64 characters of A-Z, a-z, 0-9, _ or $, not only digits): exclude it with "exclude": "<reason>", or rename the table on the source`,
            });
          }
        },
        // Said with the config's other problems, not only once they are fixed.
        { when: () => true },
      )
      .meta({ description: 'Per table of the source: global, tenant rules, or exclude.' }),
    chunking: Chunking.default({
      rowsPerChunk: 5_000,
      maxConcurrency: 4,
      recheckDelaySeconds: 5,
      copyPath: 'auto',
    }),
    sync: Sync.default({
      every: '5m',
      overlapSeconds: 120,
      slices: 1,
      onTenantChange: 'report',
      lagStartsRollback: false,
      maxLagSeconds: 900,
    }).meta({ description: 'The sync phase: keeping the target in step with the live legacy database.' }),
    integration: Integration.default({
      oauth: {},
      billing: [],
      plans: {
        free: { name: 'Free', price: '0.00', currency: 'USD', period: 'month' },
        standard: { name: 'Standard', price: '49.00', currency: 'USD', period: 'month' },
        enterprise: { name: 'Enterprise', price: '499.00', currency: 'USD', period: 'month' },
      },
    }).meta({ description: 'The integration phase: per-tenant OAuth providers, plans and subscriptions.' }),
    application: Application.default({
      bakeMinutes: 10,
      maxLagSeconds: 60,
      settleSeconds: 5,
      idSeries: 'servers',
      probes: [],
    }).meta({
      description: 'The application phase: switching tenants to the multi-tenant side, wave by wave.',
    }),
    golive: GoLive.default({
      smokeQueries: [],
      alarmsQuietMinutes: 15,
      maxConnectionsUsed: 0.9,
      maxReplicaLagSeconds: 30,
      accept: { quarantined: false, conflicts: false },
      archive: { partRows: 100_000, maxConcurrency: 2, retentionDays: 30 },
    }).meta({
      description:
        'The golive phase: final drain and verify, health verification, the archive of the legacy tables, the end of sync.',
    }),
    aws: Aws.optional().meta({
      description: 'The deployed stack: AWS mode of the CLI, and alarms that roll back.',
    }),
  })
  .superRefine((config, ctx) => {
    const bids = config.tenants.map((t) => t.bid);
    const known = new Set(bids);
    const list = bids.join(', ');
    config.tenants.forEach((t, i) => {
      if (bids.indexOf(t.bid) !== i) {
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', i, 'bid'],
          message: `tenant ${t.bid} is listed twice`,
        });
      }
    });
    const domains = config.tenants.map((t) => t.domain?.toLowerCase()).filter((d) => d !== undefined);
    domains.forEach((d, i) => {
      if (domains.indexOf(d) !== i) {
        ctx.addIssue({ code: 'custom', path: ['tenants'], message: `domain ${d} belongs to two tenants` });
      }
    });
    const needTenant = (bid: string, path: (string | number)[]): void => {
      if (!known.has(bid)) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `unknown tenant ${JSON.stringify(bid)}: use one of ${list}`,
        });
      }
    };
    needTenant(config.defaultTenant, ['defaultTenant']);
    // OAuth: known tenants, and every redirect URI on its tenant's own domain (the legacy login's: the default
    // tenant's).
    const login = config.integration.legacyLogin;
    const providerLists: [string, { provider: string; redirectUris: string[] }[], (string | number)[]][] = [
      ...Object.entries(config.integration.oauth).map(
        ([bid, list]) =>
          [bid, list, ['integration', 'oauth', bid]] as [string, typeof list, (string | number)[]],
      ),
      ...(login === undefined
        ? []
        : [
            [config.defaultTenant, login.providers, ['integration', 'legacyLogin', 'providers']] as [
              string,
              typeof login.providers,
              (string | number)[],
            ],
          ]),
    ];
    for (const [bid, providers, at] of providerLists) {
      const t = config.tenants.find((x) => x.bid === bid);
      if (t === undefined) {
        needTenant(bid, at);
        continue;
      }
      for (const [i, p] of providers.entries())
        for (const [j, uri] of p.redirectUris.entries()) {
          const host = new URL(uri).hostname.toLowerCase();
          const domain = t.domain?.toLowerCase();
          if (domain === undefined || (host !== domain && !host.endsWith(`.${domain}`)))
            ctx.addIssue({
              code: 'custom',
              path: [...at, i, 'redirectUris', j],
              message:
                domain === undefined
                  ? `tenant ${bid} has no domain, so no redirect URI can be checked as its own: give tenants[].domain`
                  : `${host} is not on tenant ${bid}'s domain ${domain}: a redirect URI must be on the tenant's own domain (or a subdomain of it)`,
            });
        }
      const kinds = providers.map((p) => p.provider);
      kinds.forEach((k, i) => {
        if (kinds.indexOf(k) !== i)
          ctx.addIssue({
            code: 'custom',
            path: [...at, i, 'provider'],
            message: `tenant ${bid} lists ${k} twice`,
          });
      });
    }
    if (login !== undefined) {
      const own = (config.integration.oauth[config.defaultTenant] ?? []).map((p) => p.provider);
      for (const [i, p] of login.providers.entries())
        if (own.includes(p.provider))
          ctx.addIssue({
            code: 'custom',
            path: ['integration', 'legacyLogin', 'providers', i, 'provider'],
            message: `the default tenant ${config.defaultTenant} lists ${p.provider} in integration.oauth too: keep one`,
          });
    }
    const waved = new Set<string>();
    for (const [w, wave] of (config.application.waves ?? []).entries())
      for (const [i, bid] of wave.entries()) {
        needTenant(bid, ['application', 'waves', w, i]);
        if (waved.has(bid))
          ctx.addIssue({
            code: 'custom',
            path: ['application', 'waves', w, i],
            message: `tenant ${bid} is in two waves: a tenant switches once`,
          });
        waved.add(bid);
      }

    for (const [table, rules] of Object.entries(config.tables)) {
      const path = ['tables', table];
      const modes = (['global', 'tenant', 'exclude'] as const).filter((k) => rules[k] !== undefined);
      if (modes.length !== 1) {
        ctx.addIssue({
          code: 'custom',
          path,
          message:
            modes.length === 0
              ? 'says nothing about the table: set "global": true, a "tenant" rule, or "exclude": "<reason>"'
              : `sets ${modes.join(' and ')}: keep exactly one of global, tenant or exclude`,
        });
      }
      const ruleList =
        rules.tenant === undefined ? [] : Array.isArray(rules.tenant) ? rules.tenant : [rules.tenant];
      ruleList.forEach((rule, i) => {
        const rulePath = [...path, 'tenant', ...(Array.isArray(rules.tenant) ? [i] : [])];
        if (rule.by === 'emailDomain') {
          for (const [domain, bid] of Object.entries(rule.domains))
            needTenant(bid, [...rulePath, 'domains', domain]);
        } else if (rule.by === 'value') {
          for (const [value, bid] of Object.entries(rule.values))
            needTenant(bid, [...rulePath, 'values', value]);
        } else if (rule.by === 'keys') {
          for (const bid of Object.keys(rule.tenants)) needTenant(bid, [...rulePath, 'tenants', bid]);
        } else if (rule.by === 'fixed') {
          needTenant(rule.tenant, [...rulePath, 'tenant']);
        } else {
          const to = config.tables[rule.references.table];
          if (to === undefined || to.tenant === undefined) {
            const candidates = Object.entries(config.tables)
              .filter(([, r]) => r.tenant !== undefined)
              .map(([name]) => name);
            ctx.addIssue({
              code: 'custom',
              path: [...rulePath, 'references', 'table'],
              message: `${rule.references.table} has no tenant rule in this config, so its rows have no tenant to follow: reference one of ${candidates.join(', ') || '(no table has a tenant rule yet)'}`,
            });
          }
        }
      });
    }
    for (const cycle of referenceCycles(config.tables)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tables', cycle[0] ?? ''],
        message: `tenant references go round in a circle (${cycle.join(' → ')}): break it with a rule that does not follow a reference`,
      });
    }
  });

/** The config as written (before defaults). */
export type ConfigInput = z.input<typeof ConfigSchema>;
/** The config after validation, defaults filled in. */
export type Config = z.output<typeof ConfigSchema>;
export type TenantRuleConfig = z.output<typeof TenantRule>;
export type ReferenceRuleConfig = z.output<typeof ReferenceRule>;
export type WhenNotUniqueConfig = z.output<typeof WhenNotUnique>;
export type TableRulesConfig = z.output<typeof TableRules>;
export type SyncConfig = z.output<typeof Sync>;
export type ApplicationConfig = z.output<typeof Application>;
export type IntegrationConfig = z.output<typeof Integration>;
export type SecretRefConfig = z.output<typeof SecretRef>;

/** The tenant rules of a table as a list (a single rule is a list of one). */
export function tenantRules(rules: TableRulesConfig): TenantRuleConfig[] {
  if (rules.tenant === undefined) return [];
  return Array.isArray(rules.tenant) ? rules.tenant : [rules.tenant];
}

/** Tables whose tenant, followed through references, leads back to themselves. */
function referenceCycles(tables: Record<string, TableRulesConfig>): string[][] {
  const edges = new Map<string, string[]>();
  for (const [table, rules] of Object.entries(tables)) {
    edges.set(
      table,
      tenantRules(rules)
        .filter((r) => r.by === 'reference')
        .map((r) => r.references.table),
    );
  }
  const cycles: string[][] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (table: string, trail: string[]): void => {
    if (state.get(table) === 'done') return;
    if (state.get(table) === 'visiting') {
      cycles.push([...trail.slice(trail.indexOf(table)), table]);
      return;
    }
    state.set(table, 'visiting');
    for (const next of edges.get(table) ?? []) visit(next, [...trail, table]);
    state.set(table, 'done');
  };
  for (const table of edges.keys()) visit(table, []);
  return cycles;
}
