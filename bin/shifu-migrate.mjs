#!/usr/bin/env node
// Launcher: the CLI is TypeScript run by Node 24's type stripping. `npx shifu-migrate` already runs the
// project's own Node 24 (node_modules/.bin comes first on PATH); an older `node` re-runs us with it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  await import('./shifu-migrate.ts');
} else {
  const node = join(here, '..', 'node_modules', '.bin', 'node');
  if (!existsSync(node)) {
    process.stderr.write(
      `shifu-migrate needs Node.js 24 or later (this is ${process.version}). Run \`npm ci\` in the project: it installs Node 24 into node_modules.\n`,
    );
    process.exit(2);
  }
  const child = spawn(node, [join(here, 'shifu-migrate.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the whole foreground process group: the CLI answers it (stops its work, leaves the run
  // resumable) and exits; this launcher only waits for that (passing it on would be a second Ctrl-C). A
  // termination sent to this process alone is passed on.
  process.on('SIGINT', () => {});
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    process.exit(code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 0)));
  });
}
