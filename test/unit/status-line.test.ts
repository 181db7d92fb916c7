import { PassThrough } from 'node:stream';
import stringWidth from 'string-width';
import stripAnsi from 'strip-ansi';
import { describe, expect, it, vi } from 'vitest';
import { createOutput } from '../../local/cli/output.ts';
import { RunProgress } from '../../local/cli/progress.ts';
import { clock, RateMeter, renderStatus, shortDuration, statusFacts } from '../../local/cli/status-line.ts';
import type { ExecutionEvent } from '../../local/engine/run.ts';

const WIDTHS = [40, 80, 200] as const;

/** Events as the local engine gives them, with only the fields the progress model reads. */
const entered = (name: string, index?: number): ExecutionEvent =>
  ({
    type: 'StateEntered',
    executionId: 'x',
    state: { name, input: {} },
    ...(index === undefined ? {} : { index }),
  }) as unknown as ExecutionEvent;
const exited = (name: string, output: unknown, parentMap?: string): ExecutionEvent =>
  ({
    type: 'StateExited',
    executionId: 'x',
    state: { name, output },
    ...(parentMap === undefined ? {} : { parentMap }),
  }) as unknown as ExecutionEvent;

/**
 * A synthetic data run at a steady 10,000 rows/s: three tables (estimates a little off, as the server's are), chunks
 * of 1,000 rows, then index builds and isolation checks. Returns the status lines rendered every second at a width.
 */
function syntheticRun(width: number, estimateScale = 1): string[] {
  let now = 0;
  const progress = new RunProgress(() => now);
  const lines: string[] = [];
  const tick = () => lines.push(renderStatus(progress.snapshot(), width));
  const tables = { learn_generated_blocks: 60_000, learn_progress_records: 30_000, user_info: 9_500 };
  progress.onEvent(entered('Start Data'));
  progress.onEvent(
    exited('Start Data', {
      run: {
        runId: 'data-1',
        tables: Object.keys(tables).map((table) => ({ table })),
        rowsEstimate: Object.fromEntries(
          Object.entries({
            learn_generated_blocks: 58_000,
            learn_progress_records: 31_000,
            user_info: 10_000,
          }).map(([t, n]) => [t, Math.round(n * estimateScale)]),
        ),
      },
    }),
  );
  progress.onEvent(entered('Copy Levels'));
  tick();
  let mapRun = 0;
  // A scaled run copies the largest table last: the one whose estimate is off is the one still to come.
  const order = estimateScale === 1 ? Object.entries(tables) : Object.entries(tables).reverse();
  for (const [table, rows] of order) {
    const chunks = Math.ceil(rows / 1_000);
    mapRun += 1;
    progress.onEvent({
      type: 'MapRunStarted',
      state: 'Copy Chunks',
      mapRun: `run-${mapRun}`,
      about: table,
      children: chunks,
      items: chunks,
      executionId: 'x',
    });
    for (let n = 0; n < chunks; n += 1) {
      const inChunk = Math.min(1_000, rows - n * 1_000);
      now += inChunk / 10_000;
      progress.onEvent(
        exited('Copy Chunk', { copied: { table, rows: inChunk, skipped: false } }, 'Copy Chunks'),
      );
      progress.onEvent({
        type: 'MapRunChildEnded',
        state: 'Copy Chunks',
        mapRun: `run-${mapRun}`,
        status: 'SUCCEEDED',
        items: 1,
        executionId: 'x',
      });
      // A render every second of the run's own time.
      if (Math.floor(now) !== Math.floor(now - inChunk / 10_000)) tick();
    }
    progress.onEvent(exited('Validate Table', { table, chunks, rows, recopied: 0 }));
    tick();
  }
  progress.onEvent(entered('Finish Tables'));
  for (let i = 0; i < Object.keys(tables).length; i += 1) {
    now += 2;
    progress.onEvent(exited('Build Deferred Indexes', {}));
    tick();
    now += 1;
    progress.onEvent(exited('Verify Tenant Isolation', {}));
    tick();
  }
  // The clock ticks while a step runs long with no event.
  now += 5;
  tick();
  return lines;
}

const etaOf = (line: string): number | null => {
  const m = /ETA (?:(\d+)h(\d+)m|(\d+)m(\d+)s|(\d+)s)/.exec(line);
  if (m === null) return null;
  if (m[1] !== undefined) return Number(m[1]) * 3600 + Number(m[2]) * 60;
  if (m[3] !== undefined) return Number(m[3]) * 60 + Number(m[4]);
  return Number(m[5]);
};

describe('the run status line', () => {
  it.each(WIDTHS)('fits %i columns on one line, with its numbers, on a whole synthetic run', (width) => {
    const lines = syntheticRun(width);
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      expect(line).not.toMatch(/[\r\n]/);
      expect(stringWidth(line), line).toBeLessThan(width);
      // The clock and a number of the run's own are always there.
      expect(line).toMatch(/^\d+:\d\d /);
    }
    const copying = lines.filter((l) => /^\d+:\d\d Copy:/.test(l) && !l.includes('100.0%'));
    expect(copying.length).toBeGreaterThan(5);
    for (const line of copying) {
      expect(line).toMatch(/\d+\.\d%/);
      expect(line).toMatch(/ETA (…|\d)/);
    }
    if (width >= 80) expect(copying.at(-1)).toMatch(/tables \d\/3/);
    if (width >= 200)
      expect(copying.find((l) => l.includes('(learn_generated_blocks'))).toMatch(
        /\d{1,3}(,\d{3})*\/\d{1,3}(,\d{3})* rows \d+\.\d%; 10,000 rows\/s; ETA \d+s; tables 0\/3 \(learn_generated_blocks \d+\/60\)/,
      );
    // After the copy: index builds and isolation checks counted, and the step's own clock.
    const last = lines.at(-1) ?? '';
    expect(last).toMatch(/^\d+:\d\d Finishing tables/);
    expect(last).toMatch(/indexes 3\/3/);
    if (width >= 80) expect(last).toMatch(/100\.0%; tables 3\/3; indexes 3\/3; isolation 3\/3/);
  });

  it('says what a run did when it ends: rows, tables and counters, no clock or rate', () => {
    expect(
      statusFacts({
        elapsedSeconds: 19,
        label: 'Finishing tables',
        stepSeconds: 6,
        rows: { done: 993_185, total: 993_185 },
        tables: { done: 10, total: 10 },
        counters: [
          { name: 'indexes', done: 10, total: 10 },
          { name: 'isolation', done: 10, total: 10 },
        ],
      }),
    ).toBe('993,185/993,185 rows 100.0%; tables 10/10; indexes 10/10; isolation 10/10');
    expect(statusFacts({ elapsedSeconds: 3, label: 'Foundation Ready', counters: [] })).toBe('');
  });

  it('gives an ETA that only goes down on a run that keeps its pace, ending at 0', () => {
    const etas = syntheticRun(200)
      .map(etaOf)
      .filter((e): e is number => e !== null);
    expect(etas.length).toBeGreaterThan(5);
    for (let i = 1; i < etas.length; i += 1) expect(etas[i]).toBeLessThanOrEqual(etas[i - 1] ?? 0);
    // 99,500 rows at 10,000 rows/s: about 10 s to go after the first second.
    expect(etas[0]).toBeGreaterThanOrEqual(8);
    expect(etas[0]).toBeLessThanOrEqual(10);
  });

  it('keeps the ETA and percent honest when the server estimated half the rows', () => {
    // InnoDB's estimates may be off by half: the projection from the chunks copied takes over.
    const lines = syntheticRun(200, 0.5).filter((l) => / Copy: /.test(l));
    for (const line of lines) {
      const m = /([\d,]+)\/([\d,]+) rows (\d+\.\d)%/.exec(line);
      const done = Number(m?.[1]?.replaceAll(',', ''));
      // While a fifth of the rows is still to copy, neither 100 % nor "ETA 0s".
      if (done < 99_500 * 0.8) {
        expect(line).not.toMatch(/100\.0%/);
        expect(line).not.toMatch(/ETA 0s/);
      }
    }
    expect(lines.length).toBeGreaterThan(5);
  });

  it('takes the real row count in place of the estimate as each table is validated', () => {
    const lines = syntheticRun(200);
    // The estimates added up to 99,000; the tables held 99,500.
    expect(lines[0]).toMatch(/0\/99,000 rows 0\.0%/);
    expect(lines.at(-1)).toMatch(/99,500\/99,500 rows 100\.0%/);
  });

  it('counts down between samples like a clock, and has no ETA before a rate', () => {
    const meter = new RateMeter();
    expect(meter.eta(100, 0)).toBeNull();
    meter.sample(0, 0);
    meter.sample(1, 10);
    expect(meter.rate()).toBe(10);
    expect(meter.eta(100, 1)).toBe(9);
    expect(meter.eta(100, 4)).toBe(6);
    // Past its countdown with rows still to copy: not "0s", but unknown until the next sample.
    expect(meter.eta(100, 99)).toBeNull();
    meter.sample(2, 100);
    expect(meter.eta(100, 3)).toBe(0);
  });

  it('keeps the clock, label and percent even when nothing else fits', () => {
    const line = renderStatus(
      {
        elapsedSeconds: 3725,
        label: 'Copy',
        rows: { done: 563_672, total: 993_921 },
        rowsPerSecond: 60_647,
        etaSeconds: 7,
        tables: { done: 6, total: 10 },
        current: { name: 'learn_generated_blocks', done: 40, total: 95 },
        counters: [{ name: 'indexes', done: 2, total: 10 }],
      },
      24,
    );
    expect(line).toBe('1:02:05 Copy: 56.7%');
    expect(
      renderStatus(
        {
          elapsedSeconds: 12,
          label: 'Copy',
          rows: { done: 563_672, total: 993_921 },
          rowsPerSecond: 60_647,
          etaSeconds: 7,
          tables: { done: 6, total: 10 },
          current: { name: 'learn_generated_blocks', done: 40, total: 95 },
          counters: [],
        },
        200,
      ),
    ).toBe(
      '0:12 Copy: 563,672/993,921 rows 56.7%; 60,647 rows/s; ETA 7s; tables 6/10 (learn_generated_blocks 40/95)',
    );
    expect(shortDuration(65)).toBe('1m05s');
    expect(shortDuration(7380)).toBe('2h03m');
    expect(clock(59)).toBe('0:59');
    expect(clock(600)).toBe('10:00');
  });
});

/** A stream that says it is a terminal of `columns` columns, keeping what was written. */
function terminal(columns: number): PassThrough & { isTTY: true; columns: number; text(): string } {
  const stream = new PassThrough() as PassThrough & { isTTY: true; columns: number; text(): string };
  let written = '';
  stream.on('data', (d) => {
    written += String(d);
  });
  stream.isTTY = true;
  stream.columns = columns;
  stream.text = () => written;
  return stream;
}

describe('the status line on a terminal', () => {
  it('is redrawn below the lines written, cut to the width, and gone when the run ends', async () => {
    const stderr = terminal(50);
    const out = createOutput({ json: false, stdout: new PassThrough(), stderr });
    let n = 0;
    out.status(() => `${++n}:00 Copy: ${'x'.repeat(120)}`);
    out.info('▶ Copy Levels');
    out.status(null);
    out.info('done');
    await new Promise((r) => setImmediate(r));
    const visible = stripAnsi(stderr.text());
    // Every frame fits: the terminal never wraps one.
    for (const frame of visible.split(/\n/)) expect(stringWidth(frame)).toBeLessThan(50);
    expect(visible).toContain('▶ Copy Levels\n');
    expect(visible).toContain('1:00 Copy:');
    expect(visible).toContain('2:00 Copy:');
    // The line was removed (erased) before the last line: nothing of it follows "done".
    expect(visible.endsWith('done\n')).toBe(true);
  });

  it('erases every row the line wraps over when the terminal narrows, and redraws it fitted at once', async () => {
    const stderr = terminal(100);
    const out = createOutput({ json: false, stdout: new PassThrough(), stderr });
    out.status((width) => `0:01 Copy: ${'9'.repeat(200)}`.slice(0, width));
    await new Promise((r) => setImmediate(r));
    const before = stderr.text().length;
    // The 99-column line now takes five rows of a 20-column terminal. log-update erases the row below it (where
    // its newline left the cursor) and the one above; the four rows above that are ours to erase: five moves up.
    stderr.columns = 20;
    stderr.emit('resize');
    await new Promise((r) => setImmediate(r));
    const after = stderr.text().slice(before);
    expect(after.split('\u001b[1A\u001b[2K').length - 1).toBe(5);
    expect(stripAnsi(after)).toContain('0:01 Copy: 9999999…');
    out.status(null);
  });

  it('prints a plain line every ten seconds, not escape codes, when stderr is not a terminal', () => {
    vi.useFakeTimers();
    try {
      const written: string[] = [];
      const stderr = { write: (s: string) => written.push(s) } as unknown as NodeJS.WritableStream;
      const out = createOutput({ json: false, stdout: new PassThrough(), stderr });
      let n = 0;
      out.status((width) => `status ${++n} at ${width}`);
      out.info('a line');
      vi.advanceTimersByTime(25_000);
      out.status(null);
      vi.advanceTimersByTime(25_000);
      expect(written).toEqual(['a line\n', 'status 1 at 200\n', 'status 2 at 200\n']);
    } finally {
      vi.useRealTimers();
    }
  });
});
