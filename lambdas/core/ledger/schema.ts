/**
 * The ledger in the target database: what ran, what it created, what it copied. Every table is named
 * `migration_*`; rollbacks never drop them, they record what was rolled back.
 */
export const LEDGER_TABLES: readonly { readonly name: string; readonly body: string }[] = [
  {
    name: 'migration_runs',
    body: `run_id VARCHAR(64) NOT NULL,
  phase VARCHAR(20) NOT NULL,
  status VARCHAR(20) NOT NULL,
  started_at DATETIME(3) NOT NULL,
  finished_at DATETIME(3) NULL,
  error_name VARCHAR(100) NULL,
  error_message TEXT NULL,
  execution_id VARCHAR(255) NULL,
  PRIMARY KEY (run_id),
  KEY idx_phase_status (phase, status)`,
  },
  {
    name: 'migration_progress',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  run_id VARCHAR(64) NOT NULL,
  phase VARCHAR(20) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'pending',
  started_at DATETIME(3) NULL,
  completed_at DATETIME(3) NULL,
  records_total BIGINT NOT NULL DEFAULT 0,
  records_migrated BIGINT NOT NULL DEFAULT 0,
  error_message TEXT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_phase_table (phase, table_name)`,
  },
  {
    name: 'migration_ddl',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  run_id VARCHAR(64) NOT NULL,
  phase VARCHAR(20) NOT NULL,
  object_type VARCHAR(20) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  object_name VARCHAR(64) NOT NULL,
  statement TEXT NOT NULL,
  created_at DATETIME(3) NOT NULL,
  rolled_back_at DATETIME(3) NULL,
  rolled_back_by VARCHAR(64) NULL,
  PRIMARY KEY (id),
  KEY idx_run (run_id),
  KEY idx_phase_open (phase, rolled_back_at)`,
  },
  {
    name: 'migration_chunks',
    body: `run_id VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  chunk_no INT NOT NULL,
  key_from TEXT NULL,
  key_to TEXT NULL,
  rows_copied BIGINT NOT NULL DEFAULT 0,
  source_checksum VARCHAR(40) NULL,
  target_checksum VARCHAR(40) NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'planned',
  attempts INT NOT NULL DEFAULT 0,
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (run_id, table_name, chunk_no),
  KEY idx_table_status (table_name, status)`,
  },
  {
    name: 'migration_deferred_indexes',
    body: `run_id VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  index_name VARCHAR(64) NOT NULL,
  definition TEXT NOT NULL,
  dropped_at DATETIME(3) NOT NULL,
  rebuilt_at DATETIME(3) NULL,
  PRIMARY KEY (run_id, table_name, index_name)`,
  },
  {
    name: 'migration_sync_watermarks',
    body: `table_name VARCHAR(64) NOT NULL,
  watermark VARCHAR(64) NOT NULL,
  last_run_id VARCHAR(64) NULL,
  last_run_at DATETIME(3) NULL,
  PRIMARY KEY (table_name)`,
  },
  {
    name: 'migration_quarantine',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  run_id VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  row_key VARCHAR(255) NOT NULL,
  reason VARCHAR(255) NOT NULL,
  row_data LONGTEXT NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_table_key (table_name, row_key)`,
  },
  {
    name: 'migration_alarms',
    body: `name VARCHAR(255) NOT NULL,
  state VARCHAR(20) NOT NULL,
  reason VARCHAR(1024) NOT NULL DEFAULT '',
  changed_at DATETIME(3) NOT NULL,
  PRIMARY KEY (name)`,
  },
];

/**
 * Columns added to ledger tables after their first release: a ledger made by an older version gets them on
 * the next run (`ensureLedger`), so a rollback started by a newer version can read every run.
 */
export const LEDGER_COLUMNS: readonly {
  readonly table: string;
  readonly column: string;
  readonly definition: string;
}[] = [{ table: 'migration_runs', column: 'execution_id', definition: 'VARCHAR(255) NULL' }];

/** Tables of the multi-tenant model that foundation creates (DESIGN.md §4), apart from migrated tables. */
export const TENANT_TABLES: readonly { readonly name: string; readonly body: string }[] = [
  {
    name: 'tenant_tenants',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  tenant_bid VARCHAR(32) NOT NULL,
  name VARCHAR(100) NOT NULL,
  domain VARCHAR(100) NULL,
  tier VARCHAR(20) NOT NULL DEFAULT 'standard',
  status SMALLINT NOT NULL DEFAULT 1,
  settings JSON NULL,
  subscription_plan VARCHAR(50) NULL,
  created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  deleted SMALLINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_bid (tenant_bid),
  UNIQUE KEY uk_domain (domain),
  KEY idx_deleted (deleted)`,
  },
  {
    name: 'tenant_migration_status',
    body: `tenant_bid VARCHAR(32) NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'pending',
  note VARCHAR(255) NOT NULL DEFAULT '',
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (tenant_bid)`,
  },
  {
    name: 'traffic_routing',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  scope VARCHAR(20) NOT NULL,
  tenant_bid VARCHAR(32) NOT NULL DEFAULT '',
  target VARCHAR(20) NOT NULL,
  weight INT NOT NULL,
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_scope_tenant (scope, tenant_bid)`,
  },
  {
    name: 'traffic_routing_history',
    body: `id BIGINT NOT NULL AUTO_INCREMENT,
  run_id VARCHAR(64) NOT NULL,
  scope VARCHAR(20) NOT NULL,
  tenant_bid VARCHAR(32) NOT NULL DEFAULT '',
  target VARCHAR(20) NOT NULL,
  weight INT NOT NULL,
  reason VARCHAR(255) NOT NULL DEFAULT '',
  changed_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id)`,
  },
];

export const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci';
