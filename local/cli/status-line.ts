import cliTruncate from 'cli-truncate';
import stringWidth from 'string-width';

/** What a run's status line shows at one moment: the progress model's view, independent of any terminal. */
export interface StatusSnapshot {
  /** Time since the run started. */
  readonly elapsedSeconds: number;
  /** What the run is doing: `Copy`, `Indexes and isolation`, `Roll Back Data Phase`. */
  readonly label: string;
  /** Time spent in the current step, when it is not the run's own clock. */
  readonly stepSeconds?: number;
  /** Rows done out of the rows there are (the total grows when a table turns out larger than estimated). */
  readonly rows?: { readonly done: number; readonly total: number };
  /** Rows per second over the last few seconds. */
  readonly rowsPerSecond?: number;
  /** Seconds left at that rate; null while there is no rate yet. */
  readonly etaSeconds?: number | null;
  readonly tables?: { readonly done: number; readonly total: number };
  /** The table the latest work was on, with its chunks done and planned. */
  readonly current?: { readonly name: string; readonly done: number; readonly total: number };
  /** Counters of the run's other work: index builds, isolation checks, sync passes, rollbacks. */
  readonly counters: readonly { readonly name: string; readonly done: number; readonly total?: number }[];
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US');

/** `7s`, `1m05s`, `2h03m`: short enough for a status line, exact enough to plan by. */
export function shortDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The run's clock: `0:07`, `12:34`, `1:02:03`. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const mmss = `${Math.floor((s % 3600) / 60)}:${String(s % 60).padStart(2, '0')}`;
  return s >= 3600
    ? `${Math.floor(s / 3600)}:${mmss.padStart(5, '0')}`
    : mmss.padStart(5, '0').replace(/^0(?=\d:)/, '');
}

interface Segment {
  readonly text: string;
  /** 0 is kept longest; higher numbers give way first when the line does not fit. */
  readonly priority: number;
  /** Joined to the previous segment by a space instead of "; ". */
  readonly tight?: boolean;
  /** Part of the line's head (label, step time): a colon follows the head when anything else does. */
  readonly head?: boolean;
}

function segments(s: StatusSnapshot): Segment[] {
  // While rows are copied they are the news; after, the index builds and checks that follow are.
  const copying = s.etaSeconds !== undefined;
  const out: Segment[] = [
    { text: clock(s.elapsedSeconds), priority: 0 },
    { text: s.label, priority: 0, tight: true, head: true },
  ];
  if (s.stepSeconds !== undefined)
    out.push({ text: `(${shortDuration(s.stepSeconds)})`, priority: 3, tight: true, head: true });
  if (s.rows !== undefined) {
    const total = Math.max(s.rows.total, s.rows.done);
    out.push({ text: `${count(s.rows.done)}/${count(total)} rows`, priority: copying ? 3 : 6, tight: true });
    const percent = total === 0 ? 100 : Math.min(100, (s.rows.done / total) * 100);
    out.push({ text: `${percent.toFixed(1)}%`, priority: copying ? 0 : 4, tight: true });
  }
  if (s.rowsPerSecond !== undefined && s.rowsPerSecond > 0)
    out.push({ text: `${count(s.rowsPerSecond)} rows/s`, priority: 4 });
  if (s.etaSeconds !== undefined)
    out.push({ text: `ETA ${s.etaSeconds === null ? '…' : shortDuration(s.etaSeconds)}`, priority: 1 });
  if (s.tables !== undefined)
    out.push({ text: `tables ${s.tables.done}/${s.tables.total}`, priority: copying ? 2 : 5 });
  if (s.current !== undefined)
    out.push({
      text: `(${s.current.name} ${count(s.current.done)}/${count(s.current.total)})`,
      priority: 6,
      tight: true,
    });
  for (const c of s.counters)
    out.push({
      text: `${c.name} ${c.done}${c.total === undefined ? '' : `/${c.total}`}`,
      priority: copying ? 5 : 2,
    });
  return out;
}

function join(parts: readonly Segment[]): string {
  const lastHead = parts.map((p) => p.head === true).lastIndexOf(true);
  return parts
    .map((p, i) => {
      const text = i === lastHead && i < parts.length - 1 ? `${p.text}:` : p.text;
      return i === 0 ? text : `${p.tight === true || i === lastHead + 1 ? ' ' : '; '}${text}`;
    })
    .join('');
}

/**
 * One line, never wider than `width` columns (one column is left free, so no terminal wraps it): the segments
 * that matter least give way first (the current table, then counters, rate, rows, tables), so the clock, the
 * label, the percent and the ETA stay at any width a person works at; only then is the line cut with an ellipsis.
 */
export function renderStatus(snapshot: StatusSnapshot, width: number): string {
  const room = Math.max(10, Math.floor(width) - 1);
  let kept = segments(snapshot);
  while (stringWidth(join(kept)) > room) {
    const worst = Math.max(...kept.map((p) => p.priority));
    if (worst === 0) break;
    // The last of the least important segments goes first.
    const at = kept.map((p) => p.priority).lastIndexOf(worst);
    kept = kept.filter((_, i) => i !== at);
  }
  const line = join(kept);
  return stringWidth(line) > room ? cliTruncate(line, room) : line;
}

/** The line's facts without its clock, label and rate, for the line that says a run ended. */
export function statusFacts(snapshot: StatusSnapshot): string {
  const { etaSeconds: _eta, rowsPerSecond: _rate, current: _current, ...facts } = snapshot;
  return join(
    segments(facts)
      .slice(1)
      .filter((p) => p.head !== true),
  );
}

/**
 * Rows per second over a sliding window, and the seconds left: a run that keeps its pace gets an ETA that only
 * goes down, ticking between samples like a countdown.
 */
export class RateMeter {
  private readonly samples: { at: number; rows: number }[] = [];

  private readonly windowSeconds: number;

  constructor(windowSeconds = 20) {
    this.windowSeconds = windowSeconds;
  }

  /** `rows` done at `at` (seconds on any monotonic clock). */
  sample(at: number, rows: number): void {
    const last = this.samples.at(-1);
    if (last !== undefined && rows === last.rows) return;
    this.samples.push({ at, rows });
    // Keep one sample older than the window, so the window is always spanned.
    while (this.samples.length > 2 && (this.samples[1]?.at ?? at) <= at - this.windowSeconds)
      this.samples.shift();
  }

  /** Rows per second, or undefined before two samples. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (first === undefined || last === undefined || last.at <= first.at) return undefined;
    return (last.rows - first.rows) / (last.at - first.at);
  }

  /** Seconds left for `total` rows at `now`; null when there is no rate yet, or the countdown ran out early. */
  eta(total: number, now: number): number | null {
    const rate = this.rate();
    const last = this.samples.at(-1);
    if (rate === undefined || rate <= 0 || last === undefined) return null;
    const left = (total - last.rows) / rate - (now - last.at);
    // Counted down past zero with rows still to copy: the pace changed, and the meter does not know the new one.
    return left <= 0 && total > last.rows ? null : Math.max(0, left);
  }
}
