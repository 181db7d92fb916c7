import { PassThrough } from 'node:stream';
import { main } from '../../local/cli/main.ts';
import { contractErrors } from './json-contract.ts';

/**
 * Runs the CLI in process with `--json`: its exit code, the one JSON object it printed, and its log. `answer`, when
 * given, is typed on a terminal (stdin a TTY) for a question the command asks. Every object printed is held to the
 * published contract (schema/cli/, docs/cli-json.md): a command whose output breaks it fails the test that ran it.
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
  const json = JSON.parse(out) as Record<string, unknown>;
  const broken = contractErrors(json);
  if (broken.length > 0)
    throw new Error(`${args.join(' ')} --json broke its contract:\n${broken.join('\n')}\n${out}`);
  if (json.exitCode !== code)
    throw new Error(`${args.join(' ')}: exit ${code}, but the JSON says ${String(json.exitCode)}`);
  return { code, json, stderr: err };
}
