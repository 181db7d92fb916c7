import { type LoadedDefinition, mapItemCount } from '../engine/definition.ts';
import type { ExecutionEvent } from '../engine/run.ts';
import type { Output } from './output.ts';

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
    | { chunksDone?: number; chunksTotal?: number; tablesPlanned?: number; tookOverFrom?: string | null }
    | null
    | undefined;
  if (resumed === null || resumed === undefined || typeof run?.runId !== 'string') return null;
  const from = resumed.tookOverFrom ? `; the lock was taken over from ${resumed.tookOverFrom}` : '';
  return `Resuming ${run.runId} at chunk ${(resumed.chunksDone ?? 0).toLocaleString('en-US')} of ${(resumed.chunksTotal ?? 0).toLocaleString('en-US')} planned so far (${resumed.tablesPlanned ?? 0} tables planned)${from}`;
}

/**
 * Turns execution events into what a person watching wants: each top-level state as it starts, Map
 * progress (done / total), retries, and failures with their error. On a terminal the Map line updates in place.
 */
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

export function progressPrinter(out: Output, definition: LoadedDefinition): (event: ExecutionEvent) => void {
  const maps = new Map<string, { total: number; done: number; failed: number; started: number }>();
  const chunks = new Map<string, { total: number; done: number; about: string }>();
  let rows = 0;
  const startedAt = performance.now();
  const clock = () => `${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)}s`;
  const copied = (): string => {
    const elapsed = (performance.now() - startedAt) / 1000;
    return rows > 0
      ? `, ${rows.toLocaleString('en-US')} rows copied (${Math.round(rows / elapsed).toLocaleString('en-US')} rows/s)`
      : '';
  };
  return (event) => {
    // A Distributed Map's child executions: their states are the map's inner work, shown as progress; their own
    // start and end are not the execution's.
    const child = event.parentMap !== undefined;
    switch (event.type) {
      case 'MapRunStarted':
        maps.set(event.mapRun, { total: event.children, done: 0, failed: 0, started: 0 });
        chunks.set(event.mapRun, { total: event.items, done: 0, about: event.about });
        break;
      case 'MapRunProgress':
        out.progress(
          `${clock()}    ${event.state}: ${event.itemsDone.toLocaleString('en-US')}/${event.itemsTotal.toLocaleString('en-US')} done${event.itemsFailed > 0 ? `, ${event.itemsFailed} failed` : ''} (map run ${event.mapRun.split(':').at(-1)?.slice(0, 8) ?? ''})`,
        );
        break;
      case 'MapRunChildEnded': {
        const stat = maps.get(event.mapRun);
        const items = chunks.get(event.mapRun);
        if (stat === undefined || items === undefined) break;
        if (event.status === 'SUCCEEDED') {
          stat.done += 1;
          items.done += event.items;
        } else stat.failed += 1;
        out.progress(
          `${clock()}    ${event.state}${items.about === '' ? '' : ` ${items.about}`}: ${items.done.toLocaleString('en-US')}/${items.total.toLocaleString('en-US')} done in ${stat.done}/${stat.total} batches${stat.failed > 0 ? `, ${stat.failed} failed` : ''}${copied()}`,
        );
        break;
      }
      case 'StateExited': {
        const started = resumedRun(event.state.name, event.state.output);
        if (started !== null) out.info(`${clock()}    ${started}`);
        const wave = waveLine(event.state.name, event.state.output);
        if (wave !== null) out.info(`${clock()}    ${wave}`);
        // Copy Chunk puts its result at $.copied (Validate Chunk then takes the chunk from the state's input).
        const copiedChunk = (
          event.state.output as { copied?: { rows?: unknown; skipped?: unknown } } | undefined
        )?.copied;
        if (
          event.state.name === 'Copy Chunk' &&
          typeof copiedChunk?.rows === 'number' &&
          copiedChunk.skipped !== true
        )
          rows += copiedChunk.rows;
        break;
      }
      case 'StateEntered':
        // A child execution's states are counted by its map run's line, not shown one by one.
        if (child) break;
        if (event.index === undefined)
          out.info(`${clock()}  ▶ ${event.state.name}${detail(event.state.input)}`);
        else out.progress(`${clock()}    ${event.state.name}${detail(event.state.input)}`);
        break;
      case 'MapIterationStarted': {
        if (child) break;
        const name = event.parentState.name;
        const stat = maps.get(name) ?? {
          total: mapItemCount(definition, name, event.parentState.input) ?? 0,
          done: 0,
          failed: 0,
          started: 0,
        };
        stat.started += 1;
        stat.total = Math.max(stat.total, stat.started);
        maps.set(name, stat);
        break;
      }
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const stat = child ? undefined : maps.get(event.parentState.name);
        if (stat === undefined) break;
        if (event.type === 'MapIterationSucceeded') stat.done += 1;
        else stat.failed += 1;
        out.progress(
          `${clock()}    ${event.parentState.name}: ${stat.done}/${stat.total} done${stat.failed > 0 ? `, ${stat.failed} failed` : ''}${copied()}`,
        );
        break;
      }
      case 'StateRetried':
        out.info(
          `${clock()}    ↻ ${event.state.name}${detail(event.state.input)}: retry ${event.retry.attempt}`,
        );
        break;
      case 'StateFailed':
        // Work a failed sibling kept from starting: nothing failed there.
        if (event.Error === 'MapIterationCancelled') break;
        out.info(
          `${clock()}    ✗ ${event.state.name}${detail(event.state.input)}: ${event.Error}: ${String(event.Cause ?? '')}`,
        );
        break;
      case 'StateCaught':
        out.info(`${clock()}    caught in ${event.state.name} → ${event.catch.catcher.Next}`);
        break;
      case 'ExecutionSucceeded':
        if (!child) out.info(`${clock()}  ✓ succeeded`);
        break;
      case 'ExecutionFailed':
        if (!child) out.info(`${clock()}  ✗ failed: ${event.Error}`);
        break;
      default:
        break;
    }
  };
}
