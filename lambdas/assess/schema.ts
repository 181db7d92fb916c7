import { z } from 'zod';

const table = z.string().min(1).max(64);
const runId = z.string().regex(/^assess-[0-9TZ]+-[0-9a-f]+$/);

export const AssessInput = z.discriminatedUnion('step', [
  z.object({ step: z.literal('plan') }),
  z.object({ step: z.literal('table'), runId, table }),
  z.object({ step: z.literal('report'), runId }),
]);
export type AssessInput = z.output<typeof AssessInput>;

export type Severity = 'blocking' | 'warning' | 'info';

export interface Problem {
  readonly severity: Severity;
  /** Stable code, e.g. `uncovered-table`, `no-chunk-key`, `unmapped-rows-fail`. */
  readonly code: string;
  readonly table?: string;
  readonly message: string;
}

export interface ComplexityFactor {
  readonly factor: string;
  readonly points: number;
}

/** Everything assess learns about one table. */
export interface TableFinding {
  readonly table: string;
  readonly mode: 'tenant' | 'global' | 'exclude' | 'uncovered';
  readonly rows: number;
  readonly dataBytes: number;
  readonly indexBytes: number;
  readonly primaryKey: readonly string[] | null;
  /** The key chunks are planned on: the primary key, else a unique key of NOT NULL columns. */
  readonly chunkKey: readonly string[] | null;
  readonly businessKey: string | null;
  /** Tables this table's tenant is derived from, nearest first. */
  readonly tenantChain: readonly string[];
  /** Rows per tenant bid under the rules, after onUnmapped (`default` fills in the default tenant). */
  readonly tenants: Readonly<Record<string, number>>;
  /** Rows no rule maps; what happens to them follows `onUnmapped`. */
  readonly unmapped: number;
  readonly onUnmapped: 'default' | 'quarantine' | 'fail' | null;
  /** Rows whose reference is an empty string, or names a row that does not exist. */
  readonly orphans: { readonly emptyReference: number; readonly missingReference: number };
  readonly complexity: {
    readonly score: number;
    readonly level: string;
    readonly factors: readonly ComplexityFactor[];
  };
  readonly problems: readonly Problem[];
}

export interface TableSummary {
  readonly table: string;
  readonly rows: number;
  readonly unmapped: number;
  readonly blocking: number;
  readonly level: string;
}

export interface AssessReport {
  readonly runId: string;
  readonly generatedAt: string;
  /** The fingerprint of the config's tenant rules it judged (absent in reports made before it was kept). */
  readonly configHash?: string;
  readonly ready: boolean;
  readonly source: {
    readonly database: string;
    /** `host:port` or the cluster's ARN (absent in reports made before it was kept). */
    readonly at?: string;
    readonly server: string;
    readonly flavor: string;
  };
  readonly target: {
    readonly database: string;
    readonly at?: string;
    readonly server: string | null;
    readonly flavor: string | null;
    readonly exists: boolean;
  };
  readonly totals: {
    readonly tables: number;
    readonly rows: number;
    readonly bytes: number;
    readonly blocking: number;
    readonly warnings: number;
  };
  readonly problems: readonly Problem[];
  readonly tables: readonly TableFinding[];
}

export interface AssessOutput {
  readonly runId: string;
  readonly ready: boolean;
  readonly blocking: number;
  readonly warnings: number;
  readonly tables: number;
  readonly rows: number;
  readonly reportJson: string;
  readonly reportMarkdown: string;
}
