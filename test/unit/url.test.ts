import { describe, expect, it } from 'vitest';
import { InvalidDatabaseUrl } from '../../lambdas/core/errors.ts';
import { parseDatabaseUrl, redactUrl, withDatabase } from '../../lambdas/core/sql/url.ts';

describe('database URLs', () => {
  it('reads a mysql URL with an encoded password and a default port', () => {
    expect(parseDatabaseUrl('mysql://migrator:p%40ss%3Aword@db.internal/shifu_legacy')).toEqual({
      kind: 'mysql',
      raw: 'mysql://migrator:p%40ss%3Aword@db.internal/shifu_legacy',
      host: 'db.internal',
      port: 3306,
      user: 'migrator',
      password: 'p@ss:word',
      database: 'shifu_legacy',
    });
  });

  it('reads an rdsdata URL, the region coming from the cluster ARN', () => {
    const url = parseDatabaseUrl(
      'rdsdata://arn:aws:rds:ap-southeast-1:123456789012:cluster:shifu-prod/shifu_saas?secret=arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:shifu-AbCdEf',
    );
    expect(url).toMatchObject({
      kind: 'rdsdata',
      resourceArn: 'arn:aws:rds:ap-southeast-1:123456789012:cluster:shifu-prod',
      secretArn: 'arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:shifu-AbCdEf',
      database: 'shifu_saas',
      region: 'ap-southeast-1',
    });
  });

  it.each([
    ['postgres://x@h/db', /unsupported database URL/],
    ['mysql://root@127.0.0.1:3306/', /names no database/],
    ['mysql://root@127.0.0.1:3306/bad-name', /names database "bad-name"/],
    ['rdsdata://arn:aws:rds:eu-west-1:123:cluster:x/db?secret=s', /cluster ARN/],
    ['rdsdata://arn:aws:rds:eu-west-1:123456789012:cluster:x/db', /needs \?secret=/],
  ])('explains what is wrong with %s', (raw, message) => {
    expect(() => parseDatabaseUrl(raw)).toThrow(InvalidDatabaseUrl);
    expect(() => parseDatabaseUrl(raw)).toThrow(message);
  });

  it('never shows a password', () => {
    expect(redactUrl('mysql://root:secret@h:3306/db')).toBe('mysql://root:***@h:3306/db');
    // Unencoded @, / and : in a password: nothing of it shows, even where the URL cannot be parsed.
    expect(redactUrl('mysql://root:my@secret@h:3306/db?x=1')).toBe('mysql://root:***@h:3306/db?x=1');
    expect(redactUrl('mysql://root:p@ss:w/rd@127.0.0.1/db')).toBe('mysql://root:***@127.0.0.1/db');
    const message = (() => {
      try {
        parseDatabaseUrl('mysql://root:p@ss:w/rd@127.0.0.1/db');
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(message).toMatch(/malformed database URL "mysql:\/\/root:\*\*\*@127\.0\.0\.1\/db"/);
    expect(message).not.toMatch(/p@ss|ss:w\/rd/);
    expect(() => parseDatabaseUrl('mysql://root:my@secret@127.0.0.1:3306/db?foo=1')).toThrow(
      /mysql:\/\/root:\*\*\*@127\.0\.0\.1:3306\/db\?foo=1/,
    );
    expect(() => parseDatabaseUrl('mysql://root:secret@h:3306/')).toThrow(/mysql:\/\/root:\*\*\*@h:3306\//);
  });

  it('points at another database on the same server', () => {
    const url = withDatabase(parseDatabaseUrl('mysql://root:pw@h:3307/a'), 'information_schema');
    expect(url).toMatchObject({ database: 'information_schema', port: 3307, password: 'pw' });
  });

  it('reads TLS options from a mysql URL: verified, not verified, or with a CA bundle', () => {
    expect(parseDatabaseUrl('mysql://u:p@db.example.internal/shifu?ssl=true')).toMatchObject({
      tls: { caFile: undefined, verify: true },
    });
    expect(parseDatabaseUrl('mysql://u@h/shifu?ssl=skip-verify')).toMatchObject({
      tls: { verify: false },
    });
    expect(parseDatabaseUrl('mysql://u@h/shifu?ssl-ca=/etc/ssl/rds-global-bundle.pem')).toMatchObject({
      tls: { caFile: '/etc/ssl/rds-global-bundle.pem', verify: true },
    });
    expect(parseDatabaseUrl('mysql://u@h/shifu?ssl=false')).not.toHaveProperty('tls');
    expect(parseDatabaseUrl('mysql://u@h/shifu')).not.toHaveProperty('tls');
  });

  it.each([
    ['mysql://u:secret@h/shifu?sslmode=require', /parameters shifu-migrate does not know \("sslmode"\)/],
    ['mysql://u@h/shifu?ssl=yes', /ssl="yes": use ssl=true/],
    ['mysql://u@h/shifu?ssl=true&ssl=false', /gives "ssl" more than once/],
    ['mysql://u@h/shifu?ssl=false&ssl-ca=/x.pem', /ssl-ca must name a CA bundle file, and goes with TLS/],
    [
      'rdsdata://arn:aws:rds:eu-west-1:123456789012:cluster:x/db?secret=arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-AbCdEf&region=x',
      /it takes only \?secret=/,
    ],
  ])('refuses unknown or contradictory URL parameters: %s', (raw, message) => {
    expect(() => parseDatabaseUrl(raw)).toThrow(InvalidDatabaseUrl);
    expect(() => parseDatabaseUrl(raw)).toThrow(message);
    expect(() => parseDatabaseUrl(raw)).not.toThrow(/secret@/);
  });
});
