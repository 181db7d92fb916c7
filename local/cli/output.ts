import ansiEscapes from 'ansi-escapes';
import cliTruncate from 'cli-truncate';
import { createLogUpdate } from 'log-update';
import stringWidth from 'string-width';

/**
 * How the CLI talks: results on stdout (one JSON object with --json), everything else on stderr.
 * On a terminal, a run's status line is redrawn in place every second (log-update), cut to the terminal's width;
 * otherwise it is printed as a plain line every few seconds.
 */
export interface Output {
  readonly json: boolean;
  /** A line for the person watching (stderr). */
  info(line: string): void;
  /** Progress that may be overwritten by the next progress line (stderr). */
  progress(line: string): void;
  /**
   * A run's status line, drawn by `render(width)`: on a terminal kept below the other lines and redrawn every
   * second (so its clock ticks through long steps); otherwise printed every few seconds. `null` removes it.
   */
  status(render: ((width: number) => string) | null): void;
  /** The command's result (stdout). */
  result(text: string): void;
  /** The command's result as JSON (stdout): exactly one object per run. */
  resultJson(value: unknown): void;
  /** With `deferJson`: the object `resultJson` was given, for the caller to print inside its envelope. */
  takeJson(): Record<string, unknown> | undefined;
}

const PLAIN_PROGRESS_EVERY_MS = 5_000;
/** Piped status lines: one every ten seconds keeps a log readable and still shows a run is moving. */
const PLAIN_STATUS_EVERY_MS = 10_000;
const STATUS_REDRAW_MS = 1_000;
/** The width a plain (piped) status line is rendered at. */
const PLAIN_STATUS_WIDTH = 200;

export function createOutput(options: {
  json: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Keep the JSON result instead of printing it (the CLI prints it inside the --json envelope). */
  deferJson?: boolean;
}): Output {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const tty = 'isTTY' in stderr && stderr.isTTY === true;
  const columns = (): number =>
    'columns' in stderr && typeof stderr.columns === 'number' ? stderr.columns : 80;
  const live = tty ? createLogUpdate(stderr as NodeJS.WriteStream, { showCursor: true }) : null;
  // The frame on screen and the width it was drawn at: a terminal made narrower wraps it over several rows,
  // which log-update (erasing the one row it wrote) would leave behind.
  let shown = { columns: 0, width: 0 };
  let transient: string | null = null;
  let render: ((width: number) => string) | null = null;
  let timer: NodeJS.Timeout | null = null;
  let lastPlainProgress = 0;
  let kept: Record<string, unknown> | undefined;
  // The frame log-update keeps: the status line, or a transient progress line.
  const erase = (width: number): void => {
    if (live === null) return;
    live.clear();
    // Rows the frame takes now, the terminal having narrowed since it was drawn: the rows above are erased too.
    const rows = width < shown.columns ? Math.ceil(shown.width / Math.max(1, width)) : 1;
    for (let row = 1; row < rows; row += 1) stderr.write(ansiEscapes.cursorUp(1) + ansiEscapes.eraseLine);
    shown = { columns: width, width: 0 };
  };
  const draw = (): void => {
    if (live === null) return;
    const width = columns();
    const frame = render !== null ? render(width) : transient;
    if (width < shown.columns) erase(width);
    if (frame === null) {
      erase(width);
      return;
    }
    const line = cliTruncate(frame, Math.max(10, width - 1));
    live(line);
    shown = { columns: width, width: stringWidth(line) };
  };
  const clear = (): void => {
    if (live === null) return;
    erase(columns());
    transient = null;
  };
  // A resized terminal gets its line again at once, fitted to the new width.
  if (live !== null && 'on' in stderr) stderr.on('resize', draw);
  return {
    json: options.json,
    info(line) {
      clear();
      stderr.write(`${line}\n`);
      draw();
    },
    progress(line) {
      if (live !== null) {
        if (render !== null) return;
        transient = line;
        draw();
      } else if (performance.now() - lastPlainProgress >= PLAIN_PROGRESS_EVERY_MS) {
        // Logs are read later, not watched: a line every few seconds is enough.
        lastPlainProgress = performance.now();
        stderr.write(`${line}\n`);
      }
    },
    status(next) {
      if (timer !== null) clearInterval(timer);
      timer = null;
      clear();
      render = next;
      if (next === null) return;
      if (live !== null) {
        draw();
        timer = setInterval(draw, STATUS_REDRAW_MS);
      } else {
        timer = setInterval(() => stderr.write(`${next(PLAIN_STATUS_WIDTH)}\n`), PLAIN_STATUS_EVERY_MS);
      }
      // The line never keeps the process alive: a run that ended without removing it still exits.
      timer.unref();
    },
    result(text) {
      clear();
      stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      draw();
    },
    resultJson(value) {
      if (options.deferJson === true) {
        kept = value as Record<string, unknown>;
        return;
      }
      clear();
      stdout.write(`${JSON.stringify(value, null, 2)}\n`);
      draw();
    },
    takeJson() {
      return kept;
    },
  };
}

/** `1234567` → `1,234,567`. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}
