/**
 * The demo legacy database, modelled on AI-Shifu: no declared foreign keys, rows linked by `*_bid`
 * strings, soft deletes, `user_bid` indexed but not unique. Tables are created with their primary key
 * only; secondary indexes are added after the load (a sorted build is far faster than random inserts).
 */

/** Marks a database as made by seed-demo, so that `--reset` never drops anything else. */
export const DEMO_MARKER = 'shifu-migrate demo legacy database';

export interface DemoTable {
  readonly name: string;
  /** Column definitions and the primary key, without secondary indexes. */
  readonly body: string;
  /** `ADD INDEX …` clauses applied after the load. */
  readonly indexes: readonly string[];
  readonly comment?: string;
}

const common = `created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  deleted SMALLINT NOT NULL DEFAULT 0`;

export const DEMO_TABLES: readonly DemoTable[] = [
  {
    name: 'user_users',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  user_bid VARCHAR(32) NOT NULL,
  username VARCHAR(255) NOT NULL DEFAULT '',
  nickname VARCHAR(255) NULL,
  email VARCHAR(255) NULL,
  phone VARCHAR(32) NULL,
  password_hash BINARY(32) NULL,
  user_state SMALLINT NOT NULL DEFAULT 0,
  language VARCHAR(16) NOT NULL DEFAULT 'zh-CN',
  ${common},
  PRIMARY KEY (id)`,
    indexes: [
      'ADD INDEX idx_user_bid (user_bid)',
      'ADD INDEX idx_email (email)',
      'ADD INDEX idx_phone (phone)',
    ],
  },
  {
    name: 'user_auth_credentials',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  credential_bid VARCHAR(32) NOT NULL,
  user_bid VARCHAR(32) NOT NULL,
  provider VARCHAR(32) NOT NULL,
  identifier VARCHAR(255) NOT NULL,
  raw_profile JSON NULL,
  state SMALLINT NOT NULL DEFAULT 1,
  ${common},
  PRIMARY KEY (id)`,
    indexes: ['ADD UNIQUE INDEX uk_credential_bid (credential_bid)', 'ADD INDEX idx_user_bid (user_bid)'],
  },
  {
    name: 'shifu_shifus',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  shifu_bid VARCHAR(32) NOT NULL,
  title VARCHAR(255) NOT NULL,
  description TEXT NULL,
  price DECIMAL(10,2) NOT NULL DEFAULT 0.00,
  created_user_bid VARCHAR(32) NOT NULL,
  ${common},
  PRIMARY KEY (id)`,
    indexes: [
      'ADD UNIQUE INDEX uk_shifu_bid (shifu_bid)',
      'ADD INDEX idx_created_user_bid (created_user_bid)',
    ],
  },
  {
    name: 'shifu_outlines',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  outline_bid VARCHAR(32) NOT NULL,
  shifu_bid VARCHAR(32) NOT NULL,
  parent_bid VARCHAR(32) NOT NULL DEFAULT '',
  title VARCHAR(255) NOT NULL,
  content MEDIUMTEXT NULL,
  position INT NOT NULL DEFAULT 0,
  ${common},
  PRIMARY KEY (id)`,
    indexes: ['ADD UNIQUE INDEX uk_outline_bid (outline_bid)', 'ADD INDEX idx_shifu_bid (shifu_bid)'],
  },
  {
    name: 'order_orders',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  order_bid VARCHAR(32) NOT NULL,
  user_bid VARCHAR(32) NOT NULL,
  shifu_bid VARCHAR(32) NOT NULL,
  payable_price DECIMAL(10,2) NOT NULL,
  paid_price DECIMAL(10,2) NOT NULL DEFAULT 0.00,
  discount DECIMAL(10,2) NULL,
  status SMALLINT NOT NULL DEFAULT 0,
  metadata JSON NULL,
  ${common},
  PRIMARY KEY (id)`,
    indexes: ['ADD UNIQUE INDEX uk_order_bid (order_bid)', 'ADD INDEX idx_user_bid (user_bid)'],
  },
  {
    name: 'pay_payments',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  payment_bid VARCHAR(32) NOT NULL,
  order_bid VARCHAR(32) NOT NULL,
  user_bid VARCHAR(32) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  currency CHAR(3) NOT NULL DEFAULT 'CNY',
  channel VARCHAR(32) NOT NULL,
  channel_trade_no BIGINT UNSIGNED NULL,
  raw_response JSON NULL,
  status SMALLINT NOT NULL DEFAULT 0,
  paid_at DATETIME(6) NULL,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id)`,
    indexes: [
      'ADD UNIQUE INDEX uk_payment_bid (payment_bid)',
      'ADD INDEX idx_order_bid (order_bid)',
      'ADD INDEX idx_user_bid (user_bid)',
    ],
  },
  {
    name: 'study_records',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  record_bid VARCHAR(32) NOT NULL,
  user_bid VARCHAR(32) NOT NULL,
  shifu_bid VARCHAR(32) NOT NULL,
  outline_bid VARCHAR(32) NOT NULL,
  record_type SMALLINT NOT NULL DEFAULT 0,
  content TEXT NULL,
  score DECIMAL(5,2) NULL,
  ${common},
  PRIMARY KEY (id)`,
    indexes: ['ADD UNIQUE INDEX uk_record_bid (record_bid)', 'ADD INDEX idx_user_bid (user_bid)'],
  },
  {
    name: 'learn_progress_records',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  progress_bid VARCHAR(32) NOT NULL,
  user_bid VARCHAR(32) NOT NULL,
  shifu_bid VARCHAR(32) NOT NULL,
  outline_bid VARCHAR(32) NOT NULL,
  status SMALLINT NOT NULL DEFAULT 0,
  progress_pct DECIMAL(5,2) NOT NULL DEFAULT 0.00,
  block_position INT NOT NULL DEFAULT 0,
  started_at DATETIME NULL,
  finished_at DATETIME NULL,
  ${common},
  PRIMARY KEY (id)`,
    indexes: [
      'ADD UNIQUE INDEX uk_progress_bid (progress_bid)',
      'ADD INDEX idx_user_bid (user_bid)',
      'ADD INDEX idx_shifu_bid (shifu_bid)',
    ],
  },
  {
    name: 'learn_generated_blocks',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  generated_block_bid VARCHAR(32) NOT NULL,
  progress_bid VARCHAR(32) NOT NULL,
  user_bid VARCHAR(32) NOT NULL,
  role VARCHAR(16) NOT NULL,
  generated_content TEXT NULL,
  tokens INT NOT NULL DEFAULT 0,
  created_at DATETIME(3) NOT NULL,
  updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  deleted SMALLINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id)`,
    indexes: [
      'ADD UNIQUE INDEX uk_generated_block_bid (generated_block_bid)',
      'ADD INDEX idx_progress_bid (progress_bid)',
      'ADD INDEX idx_user_bid (user_bid)',
    ],
  },
  {
    name: 'sys_configs',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  config_key VARCHAR(255) NOT NULL,
  config_value TEXT NOT NULL,
  is_secret SMALLINT NOT NULL DEFAULT 0,
  remark VARCHAR(255) NOT NULL DEFAULT '',
  ${common},
  PRIMARY KEY (id)`,
    indexes: ['ADD UNIQUE INDEX uk_config_key (config_key)'],
    comment: DEMO_MARKER,
  },
];
