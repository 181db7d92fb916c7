import { createHash } from 'node:crypto';
import type { SqlParam } from '../../lambdas/core/sql/port.ts';

/**
 * Deterministic demo rows. Every value is a pure function of (table, index, field), so the same
 * `--users N` always gives the same database, children re-derive their parents' bids without keeping
 * state, and memory stays flat however many rows are made.
 *
 * The data holds the cases a migration must survive: NULLs, emoji and CJK text (4-byte characters too),
 * JSON, DECIMAL money, BIGINT UNSIGNED beyond 2^53, DATETIME with fractions, binary, soft-deleted rows,
 * orphaned and empty-string references, users re-registered under the same user_bid, e-mail identities
 * from several domains (mixed case, subdomains, malformed) or phone numbers, and TEXT over 64 KB.
 */

/** murmur3's 32-bit finaliser over a mix of the inputs. */
function hash(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p | 0), 0x9e3779b1);
    h ^= h >>> 15;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TAG = {
  user: 1,
  credential: 2,
  shifu: 3,
  outline: 4,
  order: 5,
  payment: 6,
  record: 7,
  progress: 8,
  block: 9,
  missingUser: 10,
  missingOrder: 11,
} as const;

/** A 32-character hex business id, as AI-Shifu's uuid4().hex ids look. */
export function bid(tag: keyof typeof TAG, n: number): string {
  const t = TAG[tag];
  let out = '';
  for (let j = 0; j < 4; j += 1) out += hash(t, n, j, 0x5eed).toString(16).padStart(8, '0');
  return out;
}

const pick = <T>(list: readonly T[], h: number): T => list[h % list.length] as T;

const EPOCH = Date.UTC(2023, 0, 1);
function datetime(seconds: number, fraction = 0): string {
  const base = new Date(EPOCH + seconds * 1000).toISOString().slice(0, 19).replace('T', ' ');
  return fraction === 0
    ? base
    : `${base}.${String(hash(seconds, fraction) % 10 ** fraction).padStart(fraction, '0')}`;
}

const SURNAMES = ['张', '王', '李', '赵', '陈', '刘', '杨', '黄', '吴', '周'];
const GIVEN = ['伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '洋', '艳', '𠮷', '𩸽'];
const LATIN = ['Alice', 'bob', 'Chloé', 'Dmitri', 'Émile', 'Fatima', 'Grace', 'Hiro', 'Ingrid', 'José'];
const EMOJI = ['🚀', '😀', '🎉', '📚', '🧠', '✨', '🔥', '👩‍💻', '🇨🇳', '🤖'];
const PHRASES = [
  '学习使我快乐',
  'AI 师傅真好用',
  'prompt engineering 101',
  '这一节讲的是变量与函数',
  'Ünïcödé test «quoted» \'single\' "double"',
  'back\\slash and tab\tand newline\nend',
  '一起加油！💪',
  'SELECT * FROM users; -- not SQL, just text',
];
const DOMAINS = [
  'acme.com',
  'ACME.com',
  'cn.acme.com',
  'Acme.COM',
  'globex.com',
  'mail.globex.com',
  'initech.cn',
  'gmail.com',
  'qq.com',
  '163.com',
  'outlook.com',
];

function nickname(i: number): string | null {
  const h = hash(TAG.user, i, 11);
  switch (h % 6) {
    case 0:
      return null;
    case 1:
      return `${pick(SURNAMES, h >>> 3)}${pick(GIVEN, h >>> 7)}`;
    case 2:
      return `${pick(LATIN, h >>> 3)}${pick(EMOJI, h >>> 9)}`;
    case 3:
      return `${pick(EMOJI, h >>> 3)}${pick(SURNAMES, h >>> 5)}${pick(GIVEN, h >>> 11)}${pick(EMOJI, h >>> 13)}`;
    default:
      return `${pick(LATIN, h >>> 3)}_${i}`;
  }
}

/** A user's identity: an e-mail (many domains, mixed case, subdomains, a few malformed) or a phone. */
export function userIdentity(i: number): { email: string | null; phone: string | null } {
  const h = hash(TAG.user, i, 1);
  const kind = h % 20;
  const local = `${pick(LATIN, h >>> 5)}.${i}`;
  if (kind < 12) return { email: `${local}@${pick(DOMAINS, h >>> 9)}`, phone: null };
  if (kind === 12) return { email: ` ${local}@ACME.COM `, phone: null };
  if (kind === 13) return { email: `${local}-at-nowhere`, phone: null };
  if (kind === 14)
    return { email: `${local}@globex.com`, phone: `+86 139${String(h % 1e8).padStart(8, '0')}` };
  const digits = String(hash(TAG.user, i, 2) % 1e8).padStart(8, '0');
  return { email: null, phone: kind % 2 === 0 ? `+86 138${digits}` : `138${digits}` };
}

export interface TableRows {
  readonly table: string;
  readonly columns: readonly string[];
  /** Rows this table will get; known before generating them. */
  readonly count: number;
  rows(): Generator<SqlParam[]>;
}

/** How many of each thing a demo of `users` users holds, and the bids that tie them together. */
export class DemoShape {
  readonly users: number;
  readonly shifus: number;

  constructor(users: number) {
    this.users = users;
    this.shifus = Math.max(4, Math.ceil(users / 50));
  }

  /** Users re-registered under the same user_bid (a second, newer row). */
  isReRegistered(i: number): boolean {
    return i % 211 === 17;
  }
  credentialsOf(i: number): number {
    return 1 + (hash(TAG.credential, i) % 2);
  }
  ordersOf(i: number): number {
    return hash(TAG.order, i) % 5;
  }
  /** 0 unpaid, 1 paid, 2 refunded. */
  orderStatus(i: number, k: number): number {
    const h = hash(TAG.order, i, k, 3) % 10;
    return h < 7 ? 1 : h < 9 ? 0 : 2;
  }
  paymentsOf(i: number, k: number): number {
    if (this.orderStatus(i, k) === 0) return 0;
    return hash(TAG.payment, i, k) % 10 === 0 ? 2 : 1;
  }
  recordsOf(i: number): number {
    return 6 + (hash(TAG.record, i) % 11);
  }
  progressOf(i: number): number {
    return 4 + (hash(TAG.progress, i) % 9);
  }
  blocksOf(i: number, k: number): number {
    return 1 + (hash(TAG.block, i, k) % 5);
  }
  outlinesOf(s: number): number {
    return 5 + (hash(TAG.outline, s) % 31);
  }
  shifuOfUser(i: number, k: number, salt: number): number {
    return hash(TAG.shifu, i, k, salt) % this.shifus;
  }
  creatorOf(s: number): number {
    return (s * 37) % this.users;
  }
  userBid(i: number): string {
    return bid('user', i);
  }
  orderBid(i: number, k: number): string {
    return bid('order', i * 8 + k);
  }
  outlineBid(s: number, k: number): string {
    return bid('outline', s * 64 + k);
  }
  progressBid(i: number, k: number): string {
    return bid('progress', i * 16 + k);
  }
  /** The user an order belongs to: mostly its owner; a few orphans and empty strings, as in real data. */
  orderUserBid(i: number, k: number): string {
    const h = hash(TAG.order, i, k, 9) % 600;
    if (h === 0 || h === 1 || h === 2) return bid('missingUser', i * 8 + k);
    if (h === 3 || h === 4) return '';
    return this.userBid(i);
  }

  tables(): TableRows[] {
    return [
      this.userUsers(),
      this.credentials(),
      this.shifuShifus(),
      this.shifuOutlines(),
      this.orders(),
      this.payments(),
      this.studyRecords(),
      this.progress(),
      this.generatedBlocks(),
      this.sysConfigs(),
    ];
  }

  private sum(n: number, f: (i: number) => number): number {
    let total = 0;
    for (let i = 0; i < n; i += 1) total += f(i);
    return total;
  }

  userUsers(): TableRows {
    const reRegistered = this.sum(this.users, (i) => (this.isReRegistered(i) ? 1 : 0));
    const user = (i: number, again: boolean): SqlParam[] => {
      const h = hash(TAG.user, i, 4);
      const { email, phone } = userIdentity(i);
      // A re-registered user comes back later, sometimes with an address at another company.
      const secondEmail = again && email !== null && h % 3 === 0 ? `${i}.again@globex.com` : email;
      const bidValue = this.userBid(i);
      const created = (i * 97) % 20_000_000;
      return [
        bidValue,
        secondEmail ?? phone ?? `wx_${bidValue.slice(0, 8)}`,
        nickname(i),
        secondEmail,
        phone,
        email === null ? null : createHash('sha256').update(bidValue).digest(),
        h % 4,
        pick(['zh-CN', 'en-US', 'ja-JP'], h >>> 4),
        datetime(created + (again ? 30_000_000 : 0)),
        datetime(created + (again ? 30_000_000 : 0) + (h % 1_000_000)),
        // The first registration of a re-registered user was soft-deleted; 2% of the others are too.
        !again && (this.isReRegistered(i) || hash(TAG.user, i, 5) % 50 === 0) ? 1 : 0,
      ];
    };
    return {
      table: 'user_users',
      columns: [
        'user_bid',
        'username',
        'nickname',
        'email',
        'phone',
        'password_hash',
        'user_state',
        'language',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.users + reRegistered,
      rows: function* (this: DemoShape) {
        for (let i = 0; i < this.users; i += 1) {
          yield user(i, false);
        }
        for (let i = 0; i < this.users; i += 1) {
          if (this.isReRegistered(i)) yield user(i, true);
        }
      }.bind(this),
    };
  }

  credentials(): TableRows {
    return {
      table: 'user_auth_credentials',
      columns: [
        'credential_bid',
        'user_bid',
        'provider',
        'identifier',
        'raw_profile',
        'state',
        'created_at',
        'updated_at',
      ],
      count: this.sum(this.users, (i) => this.credentialsOf(i)),
      rows: function* (this: DemoShape) {
        for (let i = 0; i < this.users; i += 1) {
          const { email, phone } = userIdentity(i);
          for (let k = 0; k < this.credentialsOf(i); k += 1) {
            const h = hash(TAG.credential, i, k);
            const provider = k === 0 ? (email !== null ? 'email' : 'phone') : pick(['wechat', 'google'], h);
            const profile =
              k === 0
                ? null
                : JSON.stringify({
                    nickname: nickname(i),
                    unionid: bid('credential', i * 4 + k + 1).slice(0, 16),
                    头像: '🙂',
                  });
            yield [
              bid('credential', i * 4 + k),
              this.userBid(i),
              provider,
              k === 0 ? (email ?? phone ?? '') : `${provider}:${h.toString(36)}`,
              profile,
              h % 10 === 0 ? 0 : 1,
              datetime(((i * 97) % 20_000_000) + k),
              datetime(((i * 97) % 20_000_000) + k + 60),
            ];
          }
        }
      }.bind(this),
    };
  }

  shifuShifus(): TableRows {
    return {
      table: 'shifu_shifus',
      columns: [
        'shifu_bid',
        'title',
        'description',
        'price',
        'created_user_bid',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.shifus,
      rows: function* (this: DemoShape) {
        for (let s = 0; s < this.shifus; s += 1) {
          const h = hash(TAG.shifu, s);
          // One course in 13 was made by a user who is no longer in the database.
          const creator = s % 13 === 7 ? bid('missingUser', 9_000_000 + s) : this.userBid(this.creatorOf(s));
          yield [
            bid('shifu', s),
            `${pick(['AI 入门', 'Python 基础', 'Prompt 工程', '数据分析'], h)} ${s} ${pick(EMOJI, h >>> 4)}`,
            h % 5 === 0 ? null : `${pick(PHRASES, h >>> 6)} ${pick(PHRASES, h >>> 9)}`,
            pick(['0.00', '9.90', '99.00', '199.00', '1999.99'], h >>> 3),
            creator,
            datetime(s * 3600),
            datetime(s * 3600 + 86_400),
            s % 29 === 3 ? 1 : 0,
          ];
        }
      }.bind(this),
    };
  }

  shifuOutlines(): TableRows {
    return {
      table: 'shifu_outlines',
      columns: [
        'outline_bid',
        'shifu_bid',
        'parent_bid',
        'title',
        'content',
        'position',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.sum(this.shifus, (s) => this.outlinesOf(s)),
      rows: function* (this: DemoShape) {
        for (let s = 0; s < this.shifus; s += 1) {
          let chapter = '';
          for (let k = 0; k < this.outlinesOf(s); k += 1) {
            const h = hash(TAG.outline, s, k);
            const isChapter = k % 5 === 0;
            const outlineBid = this.outlineBid(s, k);
            // Long lessons: MEDIUMTEXT content over 64 KB, with 3- and 4-byte characters.
            const long = (s * 31 + k) % 509 === 0;
            const content = long
              ? `# 第${k}课 🚀\n${'长文本内容，包含中文和emoji😀与𠮷。'.repeat(2_400)}`
              : h % 7 === 0
                ? null
                : `## ${pick(PHRASES, h)}\n${pick(PHRASES, h >>> 5)}\n${pick(PHRASES, h >>> 10)}`;
            yield [
              outlineBid,
              bid('shifu', s),
              isChapter ? '' : chapter,
              `${isChapter ? '章' : '节'} ${k} ${pick(PHRASES, h >>> 3).slice(0, 40)}`,
              content,
              k,
              datetime(s * 3600 + k),
              datetime(s * 3600 + k + 600),
              h % 40 === 0 ? 1 : 0,
            ];
            if (isChapter) chapter = outlineBid;
          }
        }
      }.bind(this),
    };
  }

  orders(): TableRows {
    return {
      table: 'order_orders',
      columns: [
        'order_bid',
        'user_bid',
        'shifu_bid',
        'payable_price',
        'paid_price',
        'discount',
        'status',
        'metadata',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.sum(this.users, (i) => this.ordersOf(i)),
      rows: function* (this: DemoShape) {
        for (let i = 0; i < this.users; i += 1) {
          for (let k = 0; k < this.ordersOf(i); k += 1) {
            const h = hash(TAG.order, i, k);
            const status = this.orderStatus(i, k);
            const price = pick(['9.90', '99.00', '199.00', '1999.99', '99999999.99', '0.00'], h);
            const metadata =
              h % 4 === 0
                ? null
                : JSON.stringify({
                    source: pick(['wechat', 'web', 'ios', 'android'], h >>> 3),
                    coupon: h % 3 === 0 ? null : `C${h % 1000}`,
                    items: [{ title: pick(PHRASES, h >>> 5), qty: 1 + (h % 3) }],
                    note: pick(EMOJI, h >>> 7),
                  });
            yield [
              this.orderBid(i, k),
              this.orderUserBid(i, k),
              bid('shifu', this.shifuOfUser(i, k, 1)),
              price,
              status === 0 ? '0.00' : price,
              h % 3 === 0 ? '10.00' : null,
              status,
              metadata,
              datetime(((i * 97) % 20_000_000) + 3_600 * (k + 1)),
              datetime(((i * 97) % 20_000_000) + 3_600 * (k + 1) + 120),
              h % 100 === 0 ? 1 : 0,
            ];
          }
        }
      }.bind(this),
    };
  }

  payments(): TableRows {
    return {
      table: 'pay_payments',
      columns: [
        'payment_bid',
        'order_bid',
        'user_bid',
        'amount',
        'currency',
        'channel',
        'channel_trade_no',
        'raw_response',
        'status',
        'paid_at',
        'created_at',
        'updated_at',
      ],
      count: this.sum(this.users, (i) => {
        let n = 0;
        for (let k = 0; k < this.ordersOf(i); k += 1) n += this.paymentsOf(i, k);
        return n;
      }),
      rows: function* (this: DemoShape) {
        for (let i = 0; i < this.users; i += 1) {
          for (let k = 0; k < this.ordersOf(i); k += 1) {
            const n = this.paymentsOf(i, k);
            for (let p = 0; p < n; p += 1) {
              const h = hash(TAG.payment, i, k, p);
              const failed = p === 0 && n === 2;
              const serial = i * 16 + k * 2 + p;
              // Channel trade numbers: some beyond 2^53, where a JS number would lose digits.
              const tradeNo =
                h % 5 === 0
                  ? null
                  : h % 2 === 0
                    ? (18446744073709551615n - BigInt(serial)).toString()
                    : 4_200_000_000 + serial;
              yield [
                bid('payment', serial),
                h % 400 === 0 ? bid('missingOrder', serial) : this.orderBid(i, k),
                this.orderUserBid(i, k),
                pick(['9.90', '99.00', '199.00', '1999.99', '99999999.99'], h >>> 2),
                pick(['CNY', 'CNY', 'USD'], h >>> 4),
                pick(['wechat', 'alipay', 'stripe'], h >>> 6),
                tradeNo,
                JSON.stringify({
                  code: failed ? 'FAIL' : 'SUCCESS',
                  msg: failed ? '余额不足' : 'OK',
                  raw: { n: serial },
                }),
                failed ? 2 : 1,
                failed ? null : datetime(((i * 97) % 20_000_000) + 3_600 * (k + 1) + 30, 6),
                datetime(((i * 97) % 20_000_000) + 3_600 * (k + 1) + 10),
                datetime(((i * 97) % 20_000_000) + 3_600 * (k + 1) + 40),
              ];
            }
          }
        }
      }.bind(this),
    };
  }

  studyRecords(): TableRows {
    return {
      table: 'study_records',
      columns: [
        'record_bid',
        'user_bid',
        'shifu_bid',
        'outline_bid',
        'record_type',
        'content',
        'score',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.sum(this.users, (i) => this.recordsOf(i)),
      rows: function* (this: DemoShape) {
        for (let i = 0; i < this.users; i += 1) {
          for (let k = 0; k < this.recordsOf(i); k += 1) {
            const h = hash(TAG.record, i, k);
            const s = this.shifuOfUser(i, k, 2);
            yield [
              bid('record', i * 32 + k),
              h % 250 === 0 ? bid('missingUser', 5_000_000 + i * 32 + k) : this.userBid(i),
              bid('shifu', s),
              h % 97 === 0 ? '' : this.outlineBid(s, h % this.outlinesOf(s)),
              h % 3,
              h % 6 === 0 ? null : `${pick(PHRASES, h >>> 2)} ${pick(EMOJI, h >>> 8)}`,
              h % 4 === 0 ? null : `${h % 100}.${String(h % 100).padStart(2, '0')}`,
              datetime(((i * 97) % 20_000_000) + 600 * k),
              datetime(((i * 97) % 20_000_000) + 600 * k + 30),
              h % 45 === 0 ? 1 : 0,
            ];
          }
        }
      }.bind(this),
    };
  }

  progress(): TableRows {
    return {
      table: 'learn_progress_records',
      columns: [
        'progress_bid',
        'user_bid',
        'shifu_bid',
        'outline_bid',
        'status',
        'progress_pct',
        'block_position',
        'started_at',
        'finished_at',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.sum(this.users, (i) => this.progressOf(i)),
      rows: function* (this: DemoShape) {
        for (let i = 0; i < this.users; i += 1) {
          for (let k = 0; k < this.progressOf(i); k += 1) {
            const h = hash(TAG.progress, i, k);
            const s = this.shifuOfUser(i, k, 3);
            const done = h % 3 === 0;
            const start = ((i * 97) % 20_000_000) + 900 * k;
            yield [
              this.progressBid(i, k),
              this.userBid(i),
              bid('shifu', s),
              this.outlineBid(s, h % this.outlinesOf(s)),
              done ? 2 : 1,
              done ? '100.00' : `${h % 100}.${String(h % 97).padStart(2, '0')}`,
              h % 40,
              h % 11 === 0 ? null : datetime(start),
              done ? datetime(start + 1800) : null,
              datetime(start),
              datetime(start + 1800),
              h % 60 === 0 ? 1 : 0,
            ];
          }
        }
      }.bind(this),
    };
  }

  generatedBlocks(): TableRows {
    return {
      table: 'learn_generated_blocks',
      columns: [
        'generated_block_bid',
        'progress_bid',
        'user_bid',
        'role',
        'generated_content',
        'tokens',
        'created_at',
        'updated_at',
        'deleted',
      ],
      count: this.sum(this.users, (i) => {
        let n = 0;
        for (let k = 0; k < this.progressOf(i); k += 1) n += this.blocksOf(i, k);
        return n;
      }),
      rows: function* (this: DemoShape) {
        let serial = 0;
        for (let i = 0; i < this.users; i += 1) {
          for (let k = 0; k < this.progressOf(i); k += 1) {
            for (let b = 0; b < this.blocksOf(i, k); b += 1) {
              const h = hash(TAG.block, i, k, b);
              const start = ((i * 97) % 20_000_000) + 900 * k + 20 * b;
              yield [
                bid('block', serial),
                this.progressBid(i, k),
                this.userBid(i),
                b % 2 === 0 ? 'assistant' : 'user',
                h % 9 === 0 ? null : `${pick(PHRASES, h)}${pick(EMOJI, h >>> 5)} ${pick(PHRASES, h >>> 11)}`,
                h % 2048,
                datetime(start, 3),
                datetime(start + 5),
                h % 80 === 0 ? 1 : 0,
              ];
              serial += 1;
            }
          }
        }
      }.bind(this),
    };
  }

  sysConfigs(): TableRows {
    const entries: [string, string, number][] = [
      ['site.title', 'AI 师傅 🤖', 0],
      ['site.default_language', 'zh-CN', 0],
      ['pay.wechat.mch_id', '1900000109', 1],
      ['pay.wechat.api_key', 'demo-not-a-real-key', 1],
      ['pay.alipay.app_id', '2021000000000000', 1],
      ['llm.default_model', 'gpt-4o-mini', 0],
      ['llm.temperature', '0.7', 0],
      ['feature.flags', JSON.stringify({ newEditor: true, 多租户: false }), 0],
      ['mail.from', 'noreply@ai-shifu.example', 0],
      ['sms.template', '您的验证码是 {code}，5 分钟内有效。', 0],
    ];
    for (let n = entries.length; n < 40; n += 1)
      entries.push([`custom.setting_${n}`, `value ${n} ${pick(EMOJI, n)}`, 0]);
    return {
      table: 'sys_configs',
      columns: ['config_key', 'config_value', 'is_secret', 'remark', 'created_at', 'updated_at'],
      count: entries.length,
      rows: function* () {
        let n = 0;
        for (const [key, value, secret] of entries) {
          yield [key, value, secret, n % 3 === 0 ? '' : `设置 ${n}`, datetime(n), datetime(n + 1)];
          n += 1;
        }
      },
    };
  }
}
