import { describe, expect, it } from 'vitest';
import { envelope, isoTimes, problemsOf, statusOf } from '../../local/cli/json-contract.ts';
import { contractErrors } from '../support/json-contract.ts';

describe('the --json contract', () => {
  it('maps every command word and exit code to the one vocabulary', () => {
    expect(statusOf({ status: 'SUCCEEDED' }, 0)).toBe('SUCCEEDED');
    expect(statusOf({ status: 'OK', differences: 0 }, 0)).toBe('SUCCEEDED');
    expect(statusOf({ status: 'NO_DATA' }, 1)).toBe('NOTHING_TO_DO');
    expect(statusOf({ status: 'SUCCEEDED', nothingToDo: true }, 0)).toBe('NOTHING_TO_DO');
    expect(statusOf({ status: 'NOT_CONFIRMED' }, 2)).toBe('PREVIEWED');
    expect(statusOf({ status: 'PREVIEWED' }, 0)).toBe('PREVIEWED');
    expect(statusOf({ status: 'DIFFERENCES', differences: 3 }, 1)).toBe('NEEDS_ATTENTION');
    expect(statusOf({ status: 'FAILED', error: 'Interrupted' }, 1)).toBe('INTERRUPTED');
    expect(statusOf({ status: 'FAILED', error: 'ChunkChecksumMismatch' }, 1)).toBe('FAILED');
    expect(statusOf({ status: 'FAILED', error: 'RunLocked' }, 1)).toBe('REFUSED');
    expect(statusOf({ status: 'FAILED', error: 'X', run: { status: 'refused' } }, 1)).toBe('REFUSED');
    expect(statusOf({ status: 'INVALID_INPUT', error: 'InputError' }, 2)).toBe('REFUSED');
    // cleanup-legacy keeping tables, and a sync loop whose last pass was refused.
    expect(statusOf({ status: 'REFUSED', reason: 'no go-live' }, 1)).toBe('REFUSED');
    expect(statusOf({ status: 'FAILED', last: { status: 'FAILED', error: 'SyncNotReady' } }, 1)).toBe(
      'REFUSED',
    );
    expect(statusOf({ status: 'FAILED', last: { status: 'FAILED', error: 'DatabaseError' } }, 1)).toBe(
      'FAILED',
    );
  });

  it('gives problems as objects: an error, a reason, a failed pass, differences and broken isolation', () => {
    expect(problemsOf({ error: 'RunLocked', cause: 'held by x' })).toEqual([
      { severity: 'error', code: 'RunLocked', message: 'held by x' },
    ]);
    expect(problemsOf({ status: 'REFUSED', reason: 'no go-live' })).toEqual([
      { severity: 'blocking', code: 'Refused', message: 'no go-live' },
    ]);
    expect(problemsOf({ last: { error: 'SyncNotReady', cause: 'run data first' } })).toEqual([
      { severity: 'error', code: 'SyncNotReady', message: 'run data first' },
    ]);
    const verify = problemsOf({
      differences: 2,
      tables: [
        { table: 'a', checksum: { equal: false }, sourceRows: 2, targetRows: 1, isolation: null },
        {
          table: 'b',
          checksum: { equal: true },
          isolation: { unknownTenant: 0, ruleMismatch: 3, parentMismatch: 0 },
        },
      ],
    });
    expect(verify.map((p) => `${p.code} ${p.table}`)).toEqual(['ChecksumDiffers a', 'IsolationBroken b']);
  });

  it('writes every zone-less ledger time as UTC, nested too, and leaves other strings alone', () => {
    expect(
      isoTimes({ a: '2026-12-01 13:35:17.123', b: ['2026-12-01 13:35:17'], c: 'not 2026-12-01' }),
    ).toEqual({
      a: '2026-12-01T13:35:17.123Z',
      b: ['2026-12-01T13:35:17Z'],
      c: 'not 2026-12-01',
    });
  });

  it('builds an envelope the published schema accepts, whose own fields cannot overwrite it', () => {
    const printed = envelope(
      {
        command: 'status',
        startedAt: new Date('2026-12-01T00:00:00Z'),
        endedAt: new Date('2026-12-01T00:00:02.5Z'),
        config: null,
      },
      {
        status: 'OK',
        version: 99,
        command: 'forged',
        runs: [],
        tables: [],
        lock: null,
        at: '2026-12-01 00:00:01',
      },
      0,
    );
    expect(printed).toMatchObject({
      version: 1,
      command: 'status',
      status: 'SUCCEEDED',
      outcome: 'OK',
      exitCode: 0,
    });
    expect(printed.durationSeconds).toBe(2.5);
    expect(printed.at).toBe('2026-12-01T00:00:01Z');
    expect(contractErrors(printed)).toEqual([]);
    // The schema is not a formality: a time without its zone, or a status outside the vocabulary, breaks it.
    expect(contractErrors({ ...printed, startedAt: '2026-12-01 00:00:00' })).not.toEqual([]);
    expect(contractErrors({ ...printed, status: 'OK' })).not.toEqual([]);
    expect(contractErrors({ ...printed, problems: 'one joined string' })).not.toEqual([]);
  });
});
