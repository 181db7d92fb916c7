/**
 * How the CLI talks: results on stdout (one JSON object with --json), everything else on stderr.
 * On a terminal, progress rewrites one line; otherwise it prints plain lines.
 */
export interface Output {
  readonly json: boolean;
  /** A line for the person watching (stderr). */
  info(line: string): void;
  /** Progress that may be overwritten by the next progress line (stderr). */
  progress(line: string): void;
  /** The command's result (stdout). */
  result(text: string): void;
  /** The command's result as JSON (stdout): exactly one object per run. */
  resultJson(value: unknown): void;
}

const PLAIN_PROGRESS_EVERY_MS = 5_000;

export function createOutput(options: {
  json: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WriteStream | NodeJS.WritableStream;
}): Output {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const tty = 'isTTY' in stderr && stderr.isTTY === true;
  let transient = false;
  let lastPlainProgress = 0;
  const clear = (): void => {
    if (transient) {
      stderr.write('\r\u001b[2K');
      transient = false;
    }
  };
  return {
    json: options.json,
    info(line) {
      clear();
      stderr.write(`${line}\n`);
    },
    progress(line) {
      if (tty) {
        stderr.write(`\r\u001b[2K${line}`);
        transient = true;
      } else if (performance.now() - lastPlainProgress >= PLAIN_PROGRESS_EVERY_MS) {
        // Logs are read later, not watched: a line every few seconds is enough.
        lastPlainProgress = performance.now();
        stderr.write(`${line}\n`);
      }
    },
    result(text) {
      clear();
      stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    resultJson(value) {
      clear();
      stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    },
  };
}

/** `1234567` → `1,234,567`. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}
