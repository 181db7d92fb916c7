/** What introspection learns about a database. Plain data: it travels into reports and state. */

export interface ServerInfo {
  readonly flavor: 'mysql' | 'mariadb';
  /** As the server reports it, e.g. `10.11.19-MariaDB-0+deb12u1` or `8.0.36`. */
  readonly version: string;
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

export interface ColumnInfo {
  readonly name: string;
  /** 1-based position in the table. */
  readonly position: number;
  /** Base type, lower case: `varchar`, `bigint`, `json`, … (MariaDB reports JSON columns as `longtext`). */
  readonly dataType: string;
  /** Full type as declared: `varchar(32)`, `bigint(20) unsigned`, `decimal(10,2)`. */
  readonly columnType: string;
  readonly nullable: boolean;
  /** Default as SQL text: a literal's value, or an expression such as `current_timestamp()`; null when none or NULL. */
  readonly defaultValue: string | null;
  readonly defaultIsExpression: boolean;
  readonly charset: string | null;
  readonly collation: string | null;
  /** `auto_increment`, `on update current_timestamp()`, `VIRTUAL GENERATED`, … */
  readonly extra: string;
  readonly generated: boolean;
  readonly maxLength: number | null;
  readonly numericPrecision: number | null;
  readonly numericScale: number | null;
  readonly datetimePrecision: number | null;
  /** True for JSON columns on either server (MariaDB's JSON is LONGTEXT with a json_valid check). */
  readonly isJson: boolean;
}

export interface IndexInfo {
  readonly name: string;
  readonly unique: boolean;
  readonly columns: readonly string[];
  /** True when any column is indexed by a prefix only (`KEY (title(20))`). */
  readonly prefix: boolean;
}

export interface ForeignKeyInfo {
  readonly name: string;
  readonly columns: readonly string[];
  readonly referencedTable: string;
  readonly referencedColumns: readonly string[];
}

/** The column that identifies a row for the business (`user_bid` in `user_users`), and why we think so. */
export interface BusinessKey {
  readonly column: string;
  /** `unique index`: a one-column unique index; `table name`: `<singular of the table's last word>_bid`. */
  readonly reason: 'unique index' | 'table name';
  /** Whether the column alone is unique; AI-Shifu's `user_bid` is indexed but not unique. */
  readonly unique: boolean;
}

export interface TableInfo {
  readonly name: string;
  readonly engine: string | null;
  readonly collation: string | null;
  /** information_schema's estimate; exact counts are the assessment's job. */
  readonly rowsEstimate: number;
  readonly dataBytes: number;
  readonly indexBytes: number;
  readonly autoIncrement: number | null;
  readonly columns: readonly ColumnInfo[];
  /** Primary key columns in order, or null when the table has none. */
  readonly primaryKey: readonly string[] | null;
  /** Unique indexes other than the primary key. */
  readonly uniqueKeys: readonly IndexInfo[];
  /** Every index, the primary key included. */
  readonly indexes: readonly IndexInfo[];
  readonly foreignKeys: readonly ForeignKeyInfo[];
  readonly businessKey: BusinessKey | null;
}

/** A link from one table's column to another table's key. */
export interface Reference {
  readonly fromTable: string;
  readonly fromColumn: string;
  readonly toTable: string;
  readonly toColumn: string;
  /** `declared`: a FOREIGN KEY; `inferred`: a `*_bid` column named after another table's business key. */
  readonly kind: 'declared' | 'inferred';
  /** Whether the referenced column alone is unique (when not, "newest row wins" rules apply). */
  readonly toUnique: boolean;
}

/** A `*_bid` column that names the business key of more than one table. */
export interface AmbiguousReference {
  readonly fromTable: string;
  readonly fromColumn: string;
  readonly candidates: readonly string[];
}

export interface SchemaInfo {
  readonly database: string;
  readonly server: ServerInfo;
  readonly tables: readonly TableInfo[];
  readonly views: readonly string[];
  readonly references: readonly Reference[];
  readonly ambiguousReferences: readonly AmbiguousReference[];
}
