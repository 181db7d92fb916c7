import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../../lambdas/core/config/schema.ts';
import type { SqlClient, SqlParam } from '../../lambdas/core/sql/port.ts';
import { num, str, strOrNull } from '../../lambdas/core/sql/rows.ts';
import { rowTenant } from '../../lambdas/core/tenant/rules.ts';

/**
 * Writes to the demo legacy database as the AI-Shifu application does under load, one write after another on one
 * connection, deterministically: the same seed against the same database makes the same writes.
 */

/** What the application does, with how often it does it (weights out of 100). */
export const WRITE_KINDS = {
  /** A new user signs up: a user row and its credential. */
  signup: 10,
  /** A user registers again under the user_bid they had: a second user row with that key (newer). */
  reregister: 3,
  /** A user changes e-mail, which may move them to another tenant's domain. */
  emailChange: 2,
  /** An order, and its payment some of the time. */
  order: 12,
  /** A payment of an existing order: the payment row, and the order marked paid. */
  payment: 6,
  /** Learning: a progress row and the blocks the model generated for it. */
  progress: 14,
  /** Progress moves on: percentage and position updated. */
  progressUpdate: 14,
  /** A study record (an answer, a score). */
  study: 8,
  /** A course is edited: title and price, or an outline's content. */
  courseEdit: 8,
  /** A row is soft-deleted (`deleted = 1`). */
  softDelete: 10,
  /** A row is deleted for good. */
  hardDelete: 10,
  /** A setting changes. */
  configEdit: 3,
} as const;
export type WriteKind = keyof typeof WRITE_KINDS;

/** One write, as the log records it. */
export interface TrafficWrite {
  readonly seq: number;
  readonly kind: WriteKind;
  readonly table: string;
  /** What the write touched: the business id it wrote, or the row id it changed or deleted. */
  readonly key: string;
  /** Rows the statements changed, all tables together. */
  readonly rows: number;
  /** The side it went to: legacy, unless `routing` sent its tenant to the multi-tenant side. */
  readonly side: Side;
}

export interface TrafficOptions {
  /** Writes per second; the writer keeps to it as long as the server keeps up. */
  readonly rate: number;
  /** Stop after this many writes (the default: until `signal` or `durationMs`). */
  readonly writes?: number;
  /** Stop after this long. */
  readonly durationMs?: number;
  readonly seed: number;
  readonly signal?: AbortSignal;
  /** Each write as it is made (the CLI logs them as JSON lines). */
  readonly onWrite?: (write: TrafficWrite) => void;
  /**
   * The hybrid period: each write goes where the routing table sends its tenant (legacy without tenant_bid, the
   * multi-tenant target with it); a paused tenant's write waits until it is routed again. Each side allocates ids
   * from its own series (auto_increment_increment 2: legacy odd, target even), as their servers are set for it.
   * Both clients must hold one connection each (the series and LAST_INSERT_ID are per session).
   */
  readonly routing?: { readonly target: SqlClient; readonly config: Config };
}

/** Where one write went, as `routing` decided. */
export type Side = 'legacy' | 'saas';

/** What the simulator last wrote to a row, by `<table>:<id>`: the values it set, or that it deleted it. */
export type Journal = Map<
  string,
  { readonly deleted: boolean; readonly values: Record<string, string | null> }
>;

export interface TrafficResult {
  readonly writes: number;
  readonly kinds: Record<WriteKind, number>;
  /** Rows changed, all tables together (a write may change several, or none when its row is gone). */
  readonly rows: number;
  readonly seconds: number;
  /** Writes per second achieved. */
  readonly rate: number;
  /** Writes each side took (all legacy without `routing`), and writes that waited for a paused tenant. */
  readonly sides: Record<Side, number>;
  readonly held: number;
  /** With `routing`: every row the simulator wrote, as it last wrote it (the lost-writes check reads it). */
  readonly journal: Journal;
}

/** mulberry32: a small, fast PRNG; the same seed gives the same sequence on every machine. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DOMAINS = ['acme.com', 'Mail.Acme.com', 'globex.com', 'initech.cn', 'example.org', 'qq.com'];
const SOFT_DELETED = [
  'user_users',
  'shifu_outlines',
  'order_orders',
  'study_records',
  'learn_progress_records',
  'learn_generated_blocks',
] as const;
const HARD_DELETED = [
  'learn_generated_blocks',
  'study_records',
  'user_auth_credentials',
  'pay_payments',
] as const;

/**
 * Makes writes until told to stop (`writes`, `durationMs` or `signal`), at `rate` per second. Refuses nothing
 * itself: the CLI checks the database is a demo before calling this.
 */
export async function simulateTraffic(db: SqlClient, options: TrafficOptions): Promise<TrafficResult> {
  if (!(options.rate > 0)) throw new RangeError('rate must be above 0');
  // The choices follow from the seed and the database as it is now: the same seed against the same database makes
  // the same writes, and a second run against the database the first one changed makes new ones (no repeated ids).
  const [state] = await db.query(
    'SELECT (SELECT COALESCE(MAX(id), 0) FROM user_users) + (SELECT COALESCE(MAX(id), 0) FROM learn_generated_blocks) * 7919 AS n',
  );
  const rand = random(Math.imul(options.seed ^ 0x9e3779b9, 2654435761) ^ num(state ?? { n: 0 }, 'n'));
  const kinds = Object.fromEntries(Object.keys(WRITE_KINDS).map((k) => [k, 0])) as Record<WriteKind, number>;
  let writes = 0;
  let rows = 0;
  const int = (below: number) => Math.floor(rand() * below);
  const hex = () => {
    let out = '';
    for (let i = 0; i < 4; i += 1)
      out += int(2 ** 32)
        .toString(16)
        .padStart(8, '0');
    return out;
  };
  const total = Object.values(WRITE_KINDS).reduce((s, w) => s + w, 0);
  const kindOf = (): WriteKind => {
    let roll = int(total);
    for (const [kind, weight] of Object.entries(WRITE_KINDS) as [WriteKind, number][]) {
      if (roll < weight) return kind;
      roll -= weight;
    }
    return 'signup';
  };
  // Each table's id range, read again every 100 writes (inserts grow it): one query a write saved.
  const ranges = new Map<string, { lo: number; hi: number; at: number }>();
  const rangeOf = async (table: string) => {
    const known = ranges.get(table);
    if (known !== undefined && writes - known.at < 100) return known;
    const [bounds] = await db.query(`SELECT MIN(id) AS lo, MAX(id) AS hi FROM ${table}`);
    const range =
      bounds === undefined || strOrNull(bounds, 'lo') === null
        ? { lo: 0, hi: -1, at: writes }
        : { lo: num(bounds, 'lo'), hi: num(bounds, 'hi'), at: writes };
    ranges.set(table, range);
    return range;
  };
  /** A row of the table, picked by id: the first at or after a random point of its id range (or the first). */
  const rowOf = async (table: string, columns: string, where = '1 = 1') => {
    const { lo, hi } = await rangeOf(table);
    if (hi < lo) return undefined;
    const from = lo + int(hi - lo + 1);
    const [row] = await db.query(
      `SELECT ${columns} FROM ${table} WHERE id >= ? AND ${where} ORDER BY id LIMIT 1`,
      [from],
    );
    if (row !== undefined) return row;
    const [first] = await db.query(`SELECT ${columns} FROM ${table} WHERE ${where} ORDER BY id LIMIT 1`);
    return first;
  };
  const email = (local: string) => `${local}@${DOMAINS[int(DOMAINS.length)]}`;

  /** A write's rows: which tenant they belong to, where they go, what they were set to. */
  const routing = options.routing;
  const sides: Record<Side, number> = { legacy: 0, saas: 0 };
  let held = 0;
  const journal: Journal = new Map();
  let tenant: string | null = null;
  let side: Side = 'legacy';
  const sideDb = () => (side === 'saas' && routing !== undefined ? routing.target : db);

  /** Routed mode: the tenant of a row the target holds (by a column's value); null for a row not there yet. */
  const tenantOn = async (table: string, column: string, value: string): Promise<string | null> => {
    if (routing === undefined) return null;
    const [row] = await routing.target.query(
      `SELECT tenant_bid FROM ${table} WHERE ${column} = ? ORDER BY id DESC LIMIT 1`,
      [value],
    );
    return row === undefined ? null : str(row, 'tenant_bid');
  };
  /**
   * Routed mode: the side the write's tenant is routed to (a row no tenant owns yet, or one of a tenant legacy
   * owns, goes to legacy); a paused tenant's write waits, as the application holds it, until routed again.
   */
  const route = async (): Promise<void> => {
    if (routing === undefined) return;
    for (let waited = 0; ; waited += 1) {
      const [row] =
        tenant === null
          ? []
          : await routing.target.query(
              "SELECT target FROM traffic_routing WHERE scope = 'tenant' AND tenant_bid = ?",
              [tenant],
            );
      const to = row === undefined ? 'legacy' : str(row, 'target');
      if (to !== 'paused') {
        side = to === 'saas' ? 'saas' : 'legacy';
        // Each side's own id series: legacy odd, the multi-tenant side even (one connection each).
        await sideDb().execute('SET SESSION auto_increment_increment = 2, auto_increment_offset = ?', [
          side === 'saas' ? 2 : 1,
        ]);
        return;
      }
      if (waited === 0) held += 1;
      if (options.signal?.aborted === true && waited > 600) throw new Error(`tenant ${tenant} stayed paused`);
      await sleep(50);
    }
  };

  /**
   * A statement on the write's side: an INSERT there carries tenant_bid on the multi-tenant side. With `record`,
   * the row it wrote is journaled: its id (the statement's, or the insert's), the values it set, or its deletion.
   */
  const exec = async (
    sql: string,
    params: readonly SqlParam[],
    record?: {
      table: string;
      id?: string;
      values?: Record<string, string | null>;
      deleted?: boolean;
    },
  ): Promise<number> => {
    const on = sideDb();
    const inserting = sql.startsWith('INSERT INTO ');
    // A row in an open tenant conflict (the rules now give it another tenant than the target has): sync carries
    // nothing of it either way until a person settles it, so a write to it would stay on one side. The routed
    // simulator leaves such rows alone, as it leaves users moving between tenants to the sync tests.
    if (routing !== undefined && !inserting && record?.id !== undefined && /^\d+$/.test(record.id)) {
      const open = await routing.target.query(
        'SELECT 1 AS open FROM migration_sync_conflicts WHERE table_name = ? AND row_key = ? AND resolved_at IS NULL',
        [record.table, `[${record.id}]`],
      );
      if (open.length > 0) return 0;
    }
    const text =
      inserting && side === 'saas'
        ? sql.replace(/\) VALUES \((.*)\)$/s, ', tenant_bid) VALUES ($1, ?)')
        : sql;
    const values = inserting && side === 'saas' ? [...params, tenant] : params;
    const changed = (await on.execute(text, values)).affectedRows;
    if (routing !== undefined && record !== undefined && changed > 0) {
      const id =
        record.id ?? (await on.query('SELECT LAST_INSERT_ID() AS id')).map((r) => str(r, 'id'))[0] ?? '';
      const at = `${record.table}:${id}`;
      const before = journal.get(at);
      journal.set(
        at,
        record.deleted === true
          ? { deleted: true, values: {} }
          : {
              deleted: false,
              values: { ...(before?.deleted === false ? before.values : {}), ...(record.values ?? {}) },
            },
      );
    }
    return changed;
  };

  async function write(kind: WriteKind): Promise<Omit<TrafficWrite, 'seq' | 'kind' | 'side'>> {
    tenant = null;
    side = 'legacy';
    // In the hybrid period a user who moves to another tenant, or registers again under another one, would move
    // rows between the sides: the routed simulator leaves those two to the sync tests.
    const effective: WriteKind =
      routing !== undefined && (kind === 'reregister' || kind === 'emailChange') ? 'signup' : kind;
    switch (effective) {
      case 'signup': {
        const userBid = hex();
        const address = email(`sim.${userBid.slice(0, 8)}`);
        if (routing !== undefined)
          tenant =
            rowTenant(routing.config, 'user_users', { email: address, user_bid: userBid }, () => undefined) ??
            routing.config.defaultTenant;
        await route();
        const rows =
          (await exec(
            'INSERT INTO user_users (user_bid, username, nickname, email, user_state, language) VALUES (?, ?, ?, ?, 1, ?)',
            [userBid, `sim_${userBid.slice(0, 8)}`, `Sim ${userBid.slice(0, 4)}`, address, 'zh-CN'],
            { table: 'user_users', values: { user_bid: userBid, email: address } },
          )) +
          (await exec(
            'INSERT INTO user_auth_credentials (credential_bid, user_bid, provider, identifier, raw_profile) VALUES (?, ?, ?, ?, ?)',
            [
              hex(),
              userBid,
              'email',
              `sim.${userBid.slice(0, 8)}`,
              JSON.stringify({ source: 'simulate-traffic' }),
            ],
            { table: 'user_auth_credentials', values: { user_bid: userBid } },
          ));
        return { table: 'user_users', key: userBid, rows };
      }
      case 'reregister': {
        const user = await rowOf('user_users', 'user_bid, email');
        if (user === undefined) return { table: 'user_users', key: '', rows: 0 };
        const rows = await exec(
          'INSERT INTO user_users (user_bid, username, email, user_state, language) VALUES (?, ?, ?, 1, ?)',
          [
            str(user, 'user_bid'),
            `again_${str(user, 'user_bid').slice(0, 8)}`,
            strOrNull(user, 'email'),
            'en-US',
          ],
        );
        return { table: 'user_users', key: str(user, 'user_bid'), rows };
      }
      case 'emailChange': {
        const user = await rowOf('user_users', 'id', 'deleted = 0');
        if (user === undefined) return { table: 'user_users', key: '', rows: 0 };
        const rows = await exec('UPDATE user_users SET email = ? WHERE id = ?', [
          email(`moved.${str(user, 'id')}`),
          str(user, 'id'),
        ]);
        return { table: 'user_users', key: str(user, 'id'), rows };
      }
      case 'order': {
        const user = await rowOf('user_users', 'user_bid', 'deleted = 0');
        const course = await rowOf('shifu_shifus', 'shifu_bid, price', 'deleted = 0');
        if (user === undefined || course === undefined) return { table: 'order_orders', key: '', rows: 0 };
        tenant = await tenantOn('user_users', 'user_bid', str(user, 'user_bid'));
        await route();
        const orderBid = hex();
        let rows = await exec(
          'INSERT INTO order_orders (order_bid, user_bid, shifu_bid, payable_price, status, metadata) VALUES (?, ?, ?, ?, 0, ?)',
          [
            orderBid,
            str(user, 'user_bid'),
            str(course, 'shifu_bid'),
            str(course, 'price'),
            JSON.stringify({ via: 'web' }),
          ],
          { table: 'order_orders', values: { order_bid: orderBid, payable_price: str(course, 'price') } },
        );
        if (int(2) === 0) rows += await pay(orderBid, str(user, 'user_bid'), str(course, 'price'));
        return { table: 'order_orders', key: orderBid, rows };
      }
      case 'payment': {
        const order = await rowOf('order_orders', 'order_bid, user_bid, payable_price', 'status = 0');
        if (order === undefined) return { table: 'pay_payments', key: '', rows: 0 };
        tenant = await tenantOn('order_orders', 'order_bid', str(order, 'order_bid'));
        await route();
        const rows = await pay(str(order, 'order_bid'), str(order, 'user_bid'), str(order, 'payable_price'));
        return { table: 'pay_payments', key: str(order, 'order_bid'), rows };
      }
      case 'progress': {
        const user = await rowOf('user_users', 'user_bid', 'deleted = 0');
        const outline = await rowOf('shifu_outlines', 'outline_bid, shifu_bid', 'deleted = 0');
        if (user === undefined || outline === undefined)
          return { table: 'learn_progress_records', key: '', rows: 0 };
        // A learner's progress belongs to the course's tenant.
        tenant = await tenantOn('shifu_shifus', 'shifu_bid', str(outline, 'shifu_bid'));
        await route();
        const progressBid = hex();
        let rows = await exec(
          'INSERT INTO learn_progress_records (progress_bid, user_bid, shifu_bid, outline_bid, status, progress_pct, started_at) VALUES (?, ?, ?, ?, 1, 0.00, CURRENT_TIMESTAMP)',
          [progressBid, str(user, 'user_bid'), str(outline, 'shifu_bid'), str(outline, 'outline_bid')],
          { table: 'learn_progress_records', values: { progress_bid: progressBid, progress_pct: '0.00' } },
        );
        for (let i = 1 + int(3); i > 0; i -= 1) {
          const content = `生成的内容 ${hex()}`;
          rows += await exec(
            'INSERT INTO learn_generated_blocks (generated_block_bid, progress_bid, user_bid, role, generated_content, tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3))',
            [
              hex(),
              progressBid,
              str(user, 'user_bid'),
              i % 2 === 0 ? 'user' : 'assistant',
              content,
              int(2000),
            ],
            {
              table: 'learn_generated_blocks',
              values: { progress_bid: progressBid, generated_content: content },
            },
          );
        }
        return { table: 'learn_progress_records', key: progressBid, rows };
      }
      case 'progressUpdate': {
        const progress = await rowOf('learn_progress_records', 'id, progress_bid', 'deleted = 0');
        if (progress === undefined) return { table: 'learn_progress_records', key: '', rows: 0 };
        tenant = await tenantOn('learn_progress_records', 'id', str(progress, 'id'));
        // Not on the target: a row legacy made since the last pass, or one the target deleted: left alone.
        if (routing !== undefined && tenant === null)
          return { table: 'learn_progress_records', key: '', rows: 0 };
        await route();
        const pct = (int(10001) / 100).toFixed(2);
        const rows = await exec(
          'UPDATE learn_progress_records SET progress_pct = ?, block_position = block_position + 1, status = IF(? >= 100, 2, status) WHERE id = ?',
          [pct, int(101), str(progress, 'id')],
          { table: 'learn_progress_records', id: str(progress, 'id'), values: { progress_pct: pct } },
        );
        return { table: 'learn_progress_records', key: str(progress, 'id'), rows };
      }
      case 'study': {
        const progress = await rowOf(
          'learn_progress_records',
          'user_bid, shifu_bid, outline_bid',
          'deleted = 0',
        );
        if (progress === undefined) return { table: 'study_records', key: '', rows: 0 };
        tenant = await tenantOn('user_users', 'user_bid', str(progress, 'user_bid'));
        await route();
        const recordBid = hex();
        const content = `answer ${hex()}`;
        const rows = await exec(
          'INSERT INTO study_records (record_bid, user_bid, shifu_bid, outline_bid, record_type, content, score) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [
            recordBid,
            str(progress, 'user_bid'),
            str(progress, 'shifu_bid'),
            str(progress, 'outline_bid'),
            int(3),
            content,
            (int(10001) / 100).toFixed(2),
          ],
          { table: 'study_records', values: { record_bid: recordBid, content } },
        );
        return { table: 'study_records', key: recordBid, rows };
      }
      case 'courseEdit': {
        if (int(2) === 0) {
          const course = await rowOf('shifu_shifus', 'id', 'deleted = 0');
          if (course === undefined) return { table: 'shifu_shifus', key: '', rows: 0 };
          tenant = await tenantOn('shifu_shifus', 'id', str(course, 'id'));
          // Not on the target: a row legacy made since the last pass, or one the target deleted: left alone.
          if (routing !== undefined && tenant === null) return { table: 'shifu_shifus', key: '', rows: 0 };
          await route();
          const title = `Course ${hex().slice(0, 12)}`;
          const price = (int(100000) / 100).toFixed(2);
          const rows = await exec(
            'UPDATE shifu_shifus SET title = ?, price = ? WHERE id = ?',
            [title, price, str(course, 'id')],
            {
              table: 'shifu_shifus',
              id: str(course, 'id'),
              values: { title, price },
            },
          );
          return { table: 'shifu_shifus', key: str(course, 'id'), rows };
        }
        const outline = await rowOf('shifu_outlines', 'id', 'deleted = 0');
        if (outline === undefined) return { table: 'shifu_outlines', key: '', rows: 0 };
        tenant = await tenantOn('shifu_outlines', 'id', str(outline, 'id'));
        // Not on the target: a row legacy made since the last pass, or one the target deleted: left alone.
        if (routing !== undefined && tenant === null) return { table: 'shifu_outlines', key: '', rows: 0 };
        await route();
        const content = `# Lesson\n\n${hex()}`;
        const rows = await exec(
          'UPDATE shifu_outlines SET content = ? WHERE id = ?',
          [content, str(outline, 'id')],
          {
            table: 'shifu_outlines',
            id: str(outline, 'id'),
            values: { content },
          },
        );
        return { table: 'shifu_outlines', key: str(outline, 'id'), rows };
      }
      case 'softDelete': {
        const table = SOFT_DELETED[int(SOFT_DELETED.length)] as string;
        const row = await rowOf(table, 'id', 'deleted = 0');
        if (row === undefined) return { table, key: '', rows: 0 };
        tenant = await tenantOn(table, 'id', str(row, 'id'));
        // Not on the target: a row legacy made since the last pass, or one the target deleted: left alone.
        if (routing !== undefined && tenant === null) return { table: table, key: '', rows: 0 };
        await route();
        const rows = await exec(`UPDATE ${table} SET deleted = 1 WHERE id = ?`, [str(row, 'id')], {
          table,
          id: str(row, 'id'),
          values: { deleted: '1' },
        });
        return { table, key: str(row, 'id'), rows };
      }
      case 'hardDelete': {
        const table = HARD_DELETED[int(HARD_DELETED.length)] as string;
        const row = await rowOf(table, 'id');
        if (row === undefined) return { table, key: '', rows: 0 };
        tenant = await tenantOn(table, 'id', str(row, 'id'));
        // Not on the target: a row legacy made since the last pass, or one the target deleted: left alone.
        if (routing !== undefined && tenant === null) return { table: table, key: '', rows: 0 };
        await route();
        const rows = await exec(`DELETE FROM ${table} WHERE id = ?`, [str(row, 'id')], {
          table,
          id: str(row, 'id'),
          deleted: true,
        });
        return { table, key: str(row, 'id'), rows };
      }
      case 'configEdit': {
        // Settings are global: legacy owns them until go-live.
        const config = await rowOf('sys_configs', 'id');
        if (config === undefined) return { table: 'sys_configs', key: '', rows: 0 };
        await route();
        const value = `value-${hex().slice(0, 16)}`;
        const rows = await exec(
          'UPDATE sys_configs SET config_value = ? WHERE id = ?',
          [value, str(config, 'id')],
          {
            table: 'sys_configs',
            id: str(config, 'id'),
            values: { config_value: value },
          },
        );
        return { table: 'sys_configs', key: str(config, 'id'), rows };
      }
    }
  }

  async function pay(orderBid: string, userBid: string, amount: string): Promise<number> {
    const paymentBid = hex();
    return (
      (await exec(
        'INSERT INTO pay_payments (payment_bid, order_bid, user_bid, amount, channel, channel_trade_no, raw_response, status, paid_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, CURRENT_TIMESTAMP(6))',
        [
          paymentBid,
          orderBid,
          userBid,
          amount,
          ['alipay', 'wechat', 'stripe'][int(3)] as string,
          // Trade numbers beyond 2^53, as the payment channels issue them.
          (9_007_199_254_740_993n + BigInt(int(2 ** 30))).toString(),
          JSON.stringify({ code: 'SUCCESS' }),
        ],
        { table: 'pay_payments', values: { payment_bid: paymentBid, amount } },
      )) +
      (await exec(
        'UPDATE order_orders SET status = 1, paid_price = payable_price WHERE order_bid = ? AND status = 0',
        [orderBid],
      ))
    );
  }

  const started = performance.now();
  const done = () =>
    options.signal?.aborted === true ||
    (options.writes !== undefined && writes >= options.writes) ||
    (options.durationMs !== undefined && performance.now() - started >= options.durationMs);
  while (!done()) {
    // Each write at its time: `rate` per second from the start, without bursts to catch up when behind.
    const due = started + (writes * 1000) / options.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal: options.signal }).catch(() => undefined);
    if (done()) break;
    const kind = kindOf();
    const made = await write(kind);
    sides[side] += 1;
    writes += 1;
    kinds[kind] += 1;
    rows += made.rows;
    options.onWrite?.({ seq: writes, kind, ...made, side });
  }
  const seconds = (performance.now() - started) / 1000;
  return { writes, kinds, rows, seconds, rate: seconds > 0 ? writes / seconds : 0, sides, held, journal };
}
