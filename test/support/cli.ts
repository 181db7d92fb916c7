import { PassThrough } from 'node:stream';
import { main } from '../../local/cli/main.ts';

/** Runs the CLI in process with `--json`: its exit code, the one JSON object it printed, and its log. */
export async function runCli(
  args: readonly string[],
  context: { cwd: string; env?: Record<string, string> },
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
  const code = await main([...args, '--json'], { cwd: context.cwd, env: context.env ?? {}, stdout, stderr });
  return { code, json: JSON.parse(out) as Record<string, unknown>, stderr: err };
}
