import { setTimeout as sleep } from 'node:timers/promises';
import type { SqlClient, SqlParam } from '../../lambdas/core/sql/port.ts';
import { num, str, strOrNull } from '../../lambdas/core/sql/rows.ts';

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
}

export interface TrafficResult {
  readonly writes: number;
  readonly kinds: Record<WriteKind, number>;
  /** Rows changed, all tables together (a write may change several, or none when its row is gone). */
  readonly rows: number;
  readonly seconds: number;
  /** Writes per second achieved. */
  readonly rate: number;
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
  const exec = async (sql: string, params: readonly SqlParam[]) =>
    (await db.execute(sql, params)).affectedRows;
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

  async function write(kind: WriteKind): Promise<Omit<TrafficWrite, 'seq' | 'kind'>> {
    switch (kind) {
      case 'signup': {
        const userBid = hex();
        const rows =
          (await exec(
            'INSERT INTO user_users (user_bid, username, nickname, email, user_state, language) VALUES (?, ?, ?, ?, 1, ?)',
            [
              userBid,
              `sim_${userBid.slice(0, 8)}`,
              `Sim ${userBid.slice(0, 4)}`,
              email(`sim.${userBid.slice(0, 8)}`),
              'zh-CN',
            ],
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
        );
        if (int(2) === 0) rows += await pay(orderBid, str(user, 'user_bid'), str(course, 'price'));
        return { table: 'order_orders', key: orderBid, rows };
      }
      case 'payment': {
        const order = await rowOf('order_orders', 'order_bid, user_bid, payable_price', 'status = 0');
        if (order === undefined) return { table: 'pay_payments', key: '', rows: 0 };
        const rows = await pay(str(order, 'order_bid'), str(order, 'user_bid'), str(order, 'payable_price'));
        return { table: 'pay_payments', key: str(order, 'order_bid'), rows };
      }
      case 'progress': {
        const user = await rowOf('user_users', 'user_bid', 'deleted = 0');
        const outline = await rowOf('shifu_outlines', 'outline_bid, shifu_bid', 'deleted = 0');
        if (user === undefined || outline === undefined)
          return { table: 'learn_progress_records', key: '', rows: 0 };
        const progressBid = hex();
        let rows = await exec(
          'INSERT INTO learn_progress_records (progress_bid, user_bid, shifu_bid, outline_bid, status, progress_pct, started_at) VALUES (?, ?, ?, ?, 1, 0.00, CURRENT_TIMESTAMP)',
          [progressBid, str(user, 'user_bid'), str(outline, 'shifu_bid'), str(outline, 'outline_bid')],
        );
        for (let i = 1 + int(3); i > 0; i -= 1)
          rows += await exec(
            'INSERT INTO learn_generated_blocks (generated_block_bid, progress_bid, user_bid, role, generated_content, tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3))',
            [
              hex(),
              progressBid,
              str(user, 'user_bid'),
              i % 2 === 0 ? 'user' : 'assistant',
              `生成的内容 ${hex()}`,
              int(2000),
            ],
          );
        return { table: 'learn_progress_records', key: progressBid, rows };
      }
      case 'progressUpdate': {
        const progress = await rowOf('learn_progress_records', 'id', 'deleted = 0');
        if (progress === undefined) return { table: 'learn_progress_records', key: '', rows: 0 };
        const rows = await exec(
          'UPDATE learn_progress_records SET progress_pct = ?, block_position = block_position + 1, status = IF(? >= 100, 2, status) WHERE id = ?',
          [(int(10001) / 100).toFixed(2), int(101), str(progress, 'id')],
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
        const recordBid = hex();
        const rows = await exec(
          'INSERT INTO study_records (record_bid, user_bid, shifu_bid, outline_bid, record_type, content, score) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [
            recordBid,
            str(progress, 'user_bid'),
            str(progress, 'shifu_bid'),
            str(progress, 'outline_bid'),
            int(3),
            `answer ${hex()}`,
            (int(10001) / 100).toFixed(2),
          ],
        );
        return { table: 'study_records', key: recordBid, rows };
      }
      case 'courseEdit': {
        if (int(2) === 0) {
          const course = await rowOf('shifu_shifus', 'id', 'deleted = 0');
          if (course === undefined) return { table: 'shifu_shifus', key: '', rows: 0 };
          const rows = await exec('UPDATE shifu_shifus SET title = ?, price = ? WHERE id = ?', [
            `Course ${hex().slice(0, 12)}`,
            (int(100000) / 100).toFixed(2),
            str(course, 'id'),
          ]);
          return { table: 'shifu_shifus', key: str(course, 'id'), rows };
        }
        const outline = await rowOf('shifu_outlines', 'id', 'deleted = 0');
        if (outline === undefined) return { table: 'shifu_outlines', key: '', rows: 0 };
        const rows = await exec('UPDATE shifu_outlines SET content = ? WHERE id = ?', [
          `# Lesson\n\n${hex()}`,
          str(outline, 'id'),
        ]);
        return { table: 'shifu_outlines', key: str(outline, 'id'), rows };
      }
      case 'softDelete': {
        const table = SOFT_DELETED[int(SOFT_DELETED.length)] as string;
        const row = await rowOf(table, 'id', 'deleted = 0');
        if (row === undefined) return { table, key: '', rows: 0 };
        const rows = await exec(`UPDATE ${table} SET deleted = 1 WHERE id = ?`, [str(row, 'id')]);
        return { table, key: str(row, 'id'), rows };
      }
      case 'hardDelete': {
        const table = HARD_DELETED[int(HARD_DELETED.length)] as string;
        const row = await rowOf(table, 'id');
        if (row === undefined) return { table, key: '', rows: 0 };
        const rows = await exec(`DELETE FROM ${table} WHERE id = ?`, [str(row, 'id')]);
        return { table, key: str(row, 'id'), rows };
      }
      case 'configEdit': {
        const config = await rowOf('sys_configs', 'id');
        if (config === undefined) return { table: 'sys_configs', key: '', rows: 0 };
        const rows = await exec('UPDATE sys_configs SET config_value = ? WHERE id = ?', [
          `value-${hex().slice(0, 16)}`,
          str(config, 'id'),
        ]);
        return { table: 'sys_configs', key: str(config, 'id'), rows };
      }
    }
  }

  async function pay(orderBid: string, userBid: string, amount: string): Promise<number> {
    return (
      (await exec(
        'INSERT INTO pay_payments (payment_bid, order_bid, user_bid, amount, channel, channel_trade_no, raw_response, status, paid_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, CURRENT_TIMESTAMP(6))',
        [
          hex(),
          orderBid,
          userBid,
          amount,
          ['alipay', 'wechat', 'stripe'][int(3)] as string,
          // Trade numbers beyond 2^53, as the payment channels issue them.
          (9_007_199_254_740_993n + BigInt(int(2 ** 30))).toString(),
          JSON.stringify({ code: 'SUCCESS' }),
        ],
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
    writes += 1;
    kinds[kind] += 1;
    rows += made.rows;
    options.onWrite?.({ seq: writes, kind, ...made });
  }
  const seconds = (performance.now() - started) / 1000;
  return { writes, kinds, rows, seconds, rate: seconds > 0 ? writes / seconds : 0 };
}
