import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../lambdas/core/config/schema.ts';
import { bindTenant } from '../../lambdas/core/sql/quoted.ts';
import { demoConfig } from '../../local/demo/config.ts';

const withSmoke = (sql: string) =>
  ConfigSchema.safeParse({ ...demoConfig(), golive: { smokeQueries: [{ name: 'q', sql }] } });

describe('golive smoke queries', () => {
  it('binds :tenant outside quotes only, as parameters', () => {
    expect(
      bindTenant("SELECT ':tenant', x FROM t WHERE a = :tenant AND b = ':tenant;' OR c = :tenant"),
    ).toEqual({
      sql: "SELECT ':tenant', x FROM t WHERE a = ? AND b = ':tenant;' OR c = ?",
      uses: 2,
    });
    expect(bindTenant('SELECT 1 FROM t WHERE a = :tenants').uses).toBe(0);
    expect(bindTenant("SELECT 1 FROM t WHERE a = 'it''s :tenant' -- :tenant\n").uses).toBe(0);
  });

  it('takes a ; inside a string, refuses one outside, a :tenant only quoted, and writes', () => {
    expect(withSmoke("SELECT 1 FROM t WHERE a <> 'a;b' AND b = :tenant").success).toBe(true);
    const twice = withSmoke('SELECT 1 FROM t WHERE b = :tenant; DELETE FROM t');
    expect(twice.success).toBe(false);
    expect(JSON.stringify(twice.error?.issues)).toContain('without ;');
    const quoted = withSmoke("SELECT 1 FROM t WHERE b = ':tenant'");
    expect(JSON.stringify(quoted.error?.issues)).toContain('must use :tenant');
    const outfile = withSmoke("SELECT * FROM t WHERE b = :tenant INTO OUTFILE '/tmp/x'");
    expect(JSON.stringify(outfile.error?.issues)).toContain('must not write anywhere');
  });
});
