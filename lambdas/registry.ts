/**
 * Our Lambda functions: the `${…FunctionArn}` substitution each ASL file uses, the function's short name, and
 * its handler module (relative to this folder). The CDK stack deploys these; the local runtime serves them.
 */
export const FUNCTIONS = {
  AssessFunctionArn: {
    name: 'assess',
    entry: 'assess/handler.ts',
    timeoutMinutes: 15,
    memoryMb: 1024,
    uses: ['source', 'target', 'archive'],
  },
  FoundationFunctionArn: {
    name: 'foundation',
    entry: 'foundation/handler.ts',
    // Its rollback drops tables, which on a large target takes minutes.
    timeoutMinutes: 15,
    memoryMb: 512,
    uses: ['source', 'target', 'archive'],
  },
  DataFunctionArn: {
    name: 'data',
    entry: 'data/handler.ts',
    timeoutMinutes: 15,
    memoryMb: 2048,
    uses: ['source', 'target', 'archive'],
  },
  /** The rollback's first steps: finds the phase in flight, stops it, waits for its chunks in flight. */
  ControlFunctionArn: {
    name: 'control',
    entry: 'control/handler.ts',
    timeoutMinutes: 2,
    memoryMb: 256,
    uses: ['target'],
  },
} as const satisfies Record<
  string,
  {
    name: string;
    entry: string;
    timeoutMinutes: number;
    memoryMb: number;
    /** What the function reaches: the stack grants exactly these. */
    uses: readonly ('source' | 'target' | 'archive')[];
  }
>;

export type FunctionKey = keyof typeof FUNCTIONS;

/** The state machine files, by name (`statemachines/<name>.asl.json`). */
export const STATE_MACHINES = ['assess', 'foundation', 'data', 'rollback'] as const;

/** Phases whose failure alarms start the rollback state machine with that phase. */
export const ROLLBACK_PHASES = ['foundation', 'data'] as const;
