/** The CloudWatch namespace of every metric our functions emit; the stack's alarms and dashboard read it. */
export const METRICS_NAMESPACE = 'ShifuMigrate';

/** The metrics, with their units: the stack builds its alarms and dashboard from this list. */
export const METRICS = {
  RowsCopied: 'Count',
  RowsQuarantined: 'Count',
  ChunkDuration: 'Milliseconds',
  /** Chunks that differed at once and were copied again (healed). */
  ChunksRecopied: 'Count',
  /** Chunks that still differ after a re-copy: the phase fails on each. */
  ChecksumMismatches: 'Count',
} as const;
export type MetricName = keyof typeof METRICS;

/** Where a task's metrics go: CloudWatch (EMF on stdout) on Lambda; locally nowhere, or a test's list. */
export interface MetricsSink {
  put(phase: string, values: Partial<Record<MetricName, number>>): void;
}

export const noMetrics: MetricsSink = { put() {} };

/**
 * One CloudWatch Embedded Metric Format record per call, on stdout: Lambda's log agent turns it into metrics
 * without an API call on the copy path. One dimension, Phase.
 */
export function emfMetrics(
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): MetricsSink {
  return {
    put(phase, values) {
      const entries = Object.entries(values).filter(([, v]) => v !== undefined) as [MetricName, number][];
      if (entries.length === 0) return;
      write(
        JSON.stringify({
          _aws: {
            Timestamp: Date.now(),
            CloudWatchMetrics: [
              {
                Namespace: METRICS_NAMESPACE,
                Dimensions: [['Phase']],
                Metrics: entries.map(([name]) => ({ Name: name, Unit: METRICS[name] })),
              },
            ],
          },
          Phase: phase,
          ...Object.fromEntries(entries),
        }),
      );
    },
  };
}
