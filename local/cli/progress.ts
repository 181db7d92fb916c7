import type { LoadedDefinition } from '../engine/definition.ts';
import type { ExecutionEvent } from '../engine/run.ts';
import type { Output } from './output.ts';
import { RateMeter, renderStatus, type StatusSnapshot, statusFacts } from './status-line.ts';

function detail(input: unknown): string {
  if (typeof input !== 'object' || input === null) return '';
  const record = input as Record<string, unknown>;
  const payload = (record.Payload ?? record) as Record<string, unknown>;
  return typeof payload.table === 'string' ? ` ${payload.table}` : '';
}

/** "Resuming data run X at chunk k of n …" when a start resumed a run (Start Data's output says so). */
function resumedRun(state: string, output: unknown): string | null {
  if (!/^Start /.test(state) || typeof output !== 'object' || output === null) return null;
  const run = (output as { run?: { runId?: unknown; resumed?: unknown } }).run;
  const resumed = run?.resumed as
    | {
        chunksDone?: number;
        chunksTotal?: number;
        tablesPlanned?: number;
        rowsDone?: number;
        tookOverFrom?: string | null;
      }
    | null
    | undefined;
  if (resumed === null || resumed === undefined || typeof run?.runId !== 'string') return null;
  const from = resumed.tookOverFrom ? `; the lock was taken over from ${resumed.tookOverFrom}` : '';
  return `Resuming ${run.runId} at chunk ${(resumed.chunksDone ?? 0).toLocaleString('en-US')} of ${(resumed.chunksTotal ?? 0).toLocaleString('en-US')} planned so far (${resumed.tablesPlanned ?? 0} tables planned${resumed.rowsDone === undefined ? '' : `, ${resumed.rowsDone.toLocaleString('en-US')} rows copied`})${from}`;
}

/** The application phase's steps, told as they end: gates, pause, switch, bake. */
function waveLine(state: string, output: unknown): string | null {
  const o = (output ?? {}) as {
    wave?: { wave?: number; tenants?: string[] };
    gates?: { gates?: { name: string; open: boolean; detail: string }[] };
    switched?: { switchedAt?: string };
    bake?: { round?: number; baked?: boolean };
    rounds?: number;
  };
  const which = `wave ${o.wave?.wave ?? '?'} (${(o.wave?.tenants ?? []).join(', ')})`;
  switch (state) {
    case 'Check Gates':
      return `${which}: gates open: ${(o.gates?.gates ?? []).map((g) => g.name).join(', ')}`;
    case 'Pause Wave':
      return `${which}: writes paused; a full sync pass drains them to the multi-tenant side`;
    case 'Switch Wave':
      return `${which}: switched, the multi-tenant side owns their writes and serves them; baking`;
    case 'Bake Round':
      return o.bake?.baked === true
        ? `${which}: baked (${o.bake.round ?? 0} rounds of alarms and probes)`
        : null;
    default:
      return null;
  }
}

/** States whose ends are counted on the status line, under a short name. */
const COUNTED: readonly { readonly name: string; readonly states: RegExp }[] = [
  { name: 'indexes', states: /^Build Deferred Indexes$/ },
  { name: 'isolation', states: /^Verify Tenant Isolation$/ },
  { name: 'tables synced', states: /^Catch Up Table$/ },
  {
    name: 'sync passes',
    states: /^(Drain Forward Sync|Sync While Baking|Final Drain|Drain Again|Reverse Drain)$/,
  },
  { name: 'archive parts', states: /^Archive Batch$/ },
  { name: 'rollbacks', states: /^Roll Back / },
];

/** What the status line calls a data run's steps; other steps go by their state's name. */
const LABELS: Readonly<Record<string, string>> = {
  'Copy Levels': 'Copy',
  'Finish Tables': 'Finishing tables',
  'Sync Levels': 'Sync',
  'Archive Tables': 'Archive',
};

interface TableProgress {
  estimate: number;
  /** Rows the chunks seen so far copied (or, for chunks a resumed run skips, had copied). */
  rows: number;
  /** Rows the table held when its copy was validated: replaces the estimate. */
  final?: number;
  chunksDone: number;
  chunksTotal: number;
  /** Chunks whose copy this process saw end (copied or skipped). */
  chunksSeen: number;
}

/**
 * A run's progress as its events tell it: rows copied out of the plan's estimate (replaced by each table's real
 * count as it is validated), the rate over the last seconds and the time left, tables done, the current table's
 * chunks, and counters of index builds, isolation checks, sync passes and rollbacks. `now` is in seconds.
 */
export class RunProgress {
  private readonly startedAt: number;
  private step: { name: string; since: number } | null = null;
  private readonly tables = new Map<string, TableProgress>();
  private tablesTotal = 0;
  private tablesDone = 0;
  private current: string | null = null;
  private readonly mapRuns = new Map<string, string>();
  /** Map runs known only by their counts (on AWS, where the children's events are not read). */
  private readonly unnamedRuns = new Map<string, { done: number; total: number }>();
  private readonly counters = new Map<string, number>();
  /** Rows copied by this process (not skipped): what the rate is measured on. */
  private copiedHere = 0;
  private readonly meter = new RateMeter();

  private readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
    this.startedAt = now();
  }

  private table(name: string): TableProgress {
    let t = this.tables.get(name);
    if (t === undefined) {
      t = { estimate: 0, rows: 0, chunksDone: 0, chunksTotal: 0, chunksSeen: 0 };
      this.tables.set(name, t);
    }
    return t;
  }

  onEvent(event: ExecutionEvent): void {
    const child = event.parentMap !== undefined;
    switch (event.type) {
      case 'StateEntered':
        if (!child && event.index === undefined) this.step = { name: event.state.name, since: this.now() };
        break;
      case 'MapRunStarted':
        if (event.about !== '') {
          this.mapRuns.set(event.mapRun, event.about);
          const t = this.table(event.about);
          t.chunksTotal = event.items;
          this.current = event.about;
        }
        break;
      case 'MapRunChildEnded': {
        const about = this.mapRuns.get(event.mapRun);
        if (about !== undefined && event.status === 'SUCCEEDED') {
          this.table(about).chunksDone += event.items;
          this.current = about;
        }
        break;
      }
      case 'MapRunProgress': {
        const about = this.mapRuns.get(event.mapRun);
        if (about !== undefined) {
          const t = this.table(about);
          t.chunksDone = event.itemsDone;
          t.chunksTotal = event.itemsTotal;
          this.current = about;
        } else this.unnamedRuns.set(event.mapRun, { done: event.itemsDone, total: event.itemsTotal });
        break;
      }
      case 'StateExited':
        this.exited(event.state.name, event.state.output);
        break;
      default:
        break;
    }
  }

  private exited(state: string, output: unknown): void {
    const o = (output ?? {}) as Record<string, unknown>;
    if (state === 'Start Data') {
      const run = o.run as { rowsEstimate?: Record<string, number>; tables?: unknown[] } | undefined;
      for (const [name, rows] of Object.entries(run?.rowsEstimate ?? {})) this.table(name).estimate = rows;
      this.tablesTotal = Array.isArray(run?.tables) ? run.tables.length : this.tables.size;
    }
    if (state === 'Copy Chunk') {
      const copied = o.copied as { table?: unknown; rows?: unknown; skipped?: unknown } | undefined;
      if (typeof copied?.table === 'string' && typeof copied.rows === 'number') {
        const t = this.table(copied.table);
        t.rows += copied.rows;
        t.chunksSeen += 1;
        this.current = copied.table;
        if (copied.skipped !== true) {
          this.copiedHere += copied.rows;
          this.meter.sample(this.now(), this.copiedHere);
        }
      }
    }
    if (state === 'Validate Table' && typeof o.table === 'string' && typeof o.rows === 'number') {
      const t = this.table(o.table);
      t.final = o.rows;
      t.chunksDone = Math.max(t.chunksDone, t.chunksTotal);
      this.tablesDone += 1;
    }
    for (const c of COUNTED)
      if (c.states.test(state)) this.counters.set(c.name, (this.counters.get(c.name) ?? 0) + 1);
  }

  /**
   * Rows of a table so far and in all: done counted from its chunks (or, on AWS, the estimate's share of chunks
   * done). In all: the server's estimate until a tenth of its chunks are copied, then the rows per chunk so far
   * times its chunks (the estimate may be off by half; the chunks are key ranges of the whole table), then the
   * real count once it is validated.
   */
  private rowsOf(t: TableProgress): { done: number; total: number } {
    if (t.final !== undefined) return { done: t.final, total: t.final };
    const byChunks = t.chunksTotal > 0 ? (t.chunksDone / t.chunksTotal) * t.estimate : 0;
    const done = Math.max(t.rows, t.rows === 0 ? byChunks : 0);
    const seen = Math.min(t.chunksSeen, t.chunksTotal);
    if (t.chunksTotal > 0 && seen === t.chunksTotal) return { done, total: done };
    const projected = seen > 0 && seen >= t.chunksTotal / 10 ? (t.rows / seen) * t.chunksTotal : 0;
    return { done, total: Math.max(projected > 0 ? projected : t.estimate, done) };
  }

  snapshot(): StatusSnapshot {
    const now = this.now();
    const step = this.step?.name ?? 'Starting';
    const counters = COUNTED.flatMap((c) => {
      const done = this.counters.get(c.name);
      if (done === undefined) return [];
      const perTable = c.name === 'indexes' || c.name === 'isolation';
      return [
        { name: c.name, done, ...(perTable && this.tablesTotal > 0 ? { total: this.tablesTotal } : {}) },
      ];
    });
    if (this.unnamedRuns.size > 0) {
      const runs = [...this.unnamedRuns.values()];
      counters.unshift({
        name: 'items',
        done: runs.reduce((n, r) => n + r.done, 0),
        total: runs.reduce((n, r) => n + r.total, 0),
      });
    }
    const base = {
      elapsedSeconds: now - this.startedAt,
      label: LABELS[step] ?? step,
      counters,
    };
    // Rows and tables are a copy's (the data phase planned them); other phases show their steps and counters.
    if (this.tablesTotal === 0) return { ...base, stepSeconds: now - (this.step?.since ?? now) };
    let done = 0;
    let total = 0;
    for (const t of this.tables.values()) {
      const r = this.rowsOf(t);
      done += r.done;
      total += r.total;
    }
    const copying = step === 'Copy Levels' && done < total;
    const current = this.current === null ? undefined : this.tables.get(this.current);
    return {
      ...base,
      ...(step === 'Copy Levels' ? {} : { stepSeconds: now - (this.step?.since ?? now) }),
      rows: { done, total },
      ...(copying
        ? {
            rowsPerSecond: this.meter.rate() ?? 0,
            etaSeconds: this.meter.eta(total - done + this.copiedHere, now),
          }
        : {}),
      tables: { done: this.tablesDone, total: Math.max(this.tablesTotal, this.tablesDone) },
      ...(copying && current !== undefined && this.current !== null && current.final === undefined
        ? { current: { name: this.current, done: current.chunksDone, total: current.chunksTotal } }
        : {}),
    };
  }
}

/** The CLI's status line is redrawn this often on a terminal (its clock ticks even while one step runs long). */
export const STATUS_TICK_MS = 1_000;

/**
 * Turns execution events into what a person watching wants: a status line (clock, rows, percent, rate, ETA,
 * tables, counters) kept current by `out.status`, and, as lines of their own, each top-level state as it starts,
 * resumed runs, waves, retries and failures with their error.
 */
export function progressPrinter(
  out: Output,
  definition: LoadedDefinition,
  now: () => number = () => performance.now() / 1000,
): (event: ExecutionEvent) => void {
  const progress = new RunProgress(now);
  const started = now();
  const states = (definition.definition.States ?? {}) as Record<string, { Type?: unknown }>;
  const failStates = new Set(Object.keys(states).filter((name) => states[name]?.Type === 'Fail'));
  const stamp = () => `${(now() - started).toFixed(1).padStart(6)}s`;
  out.status((width) => renderStatus(progress.snapshot(), width));
  return (event) => {
    progress.onEvent(event);
    // A Distributed Map's child executions: their states are the map's inner work, counted on the status line.
    const child = event.parentMap !== undefined;
    switch (event.type) {
      case 'StateExited': {
        const resumed = resumedRun(event.state.name, event.state.output);
        if (resumed !== null) out.info(`${stamp()}    ${resumed}`);
        const wave = waveLine(event.state.name, event.state.output);
        if (wave !== null) out.info(`${stamp()}    ${wave}`);
        break;
      }
      case 'StateEntered':
        if (!child && event.index === undefined)
          out.info(`${stamp()}  ▶ ${event.state.name}${detail(event.state.input)}`);
        break;
      case 'StateRetried':
        out.info(
          `${stamp()}    ↻ ${event.state.name}${detail(event.state.input)}: retry ${event.retry.attempt}`,
        );
        break;
      case 'StateFailed':
        // Work a failed sibling kept from starting: nothing failed there. A Fail state only ends the execution
        // with the error already told where it happened (and the command's own report follows).
        if (event.Error === 'MapIterationCancelled' || failStates.has(event.state.name)) break;
        out.info(
          `${stamp()}    ✗ ${event.state.name}${detail(event.state.input)}: ${event.Error}: ${String(event.Cause ?? '')}`,
        );
        break;
      case 'StateCaught':
        out.info(`${stamp()}    caught in ${event.state.name} → ${event.catch.catcher.Next}`);
        break;
      case 'ExecutionSucceeded':
        if (!child) {
          out.status(null);
          const facts = statusFacts(progress.snapshot());
          out.info(`${stamp()}  ✓ succeeded${facts === '' ? '' : `: ${facts}`}`);
        }
        break;
      case 'ExecutionFailed':
        // The command says what failed and what to do next, from the ledger.
        if (!child) out.status(null);
        break;
      default:
        break;
    }
  };
}
