import { PassThrough } from 'node:stream';
import { main } from '../../local/cli/main.ts';

/**
 * Runs the CLI in process with `--json`: its exit code, the one JSON object it printed, and its log. `answer`, when
 * given, is typed on a terminal (stdin a TTY) for a question the command asks.
 */
export async function runCli(
  args: readonly string[],
  context: { cwd: string; env?: Record<string, string>; answer?: string },
): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const stdin = Object.assign(new PassThrough(), { isTTY: context.answer !== undefined });
  stdin.end(context.answer === undefined ? '' : `${context.answer}\n`);
  const code = await main([...args, '--json'], {
    cwd: context.cwd,
    env: context.env ?? {},
    stdout,
    stderr,
    stdin,
  });
  return { code, json: JSON.parse(out) as Record<string, unknown>, stderr: err };
}
