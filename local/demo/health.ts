import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SqlClient } from '../../lambdas/core/sql/port.ts';
import { num } from '../../lambdas/core/sql/rows.ts';

/**
 * A small stand-in for one side's API in the demo: `GET /health` answers from its own database (a query on its
 * users), 200 with `{"status":"ok",…}` while the database answers, 503 when it does not, 404 for anything else.
 * The application phase's probes request it, as they would the real APIs' health endpoints.
 */
export interface HealthStandIn {
  readonly url: string;
  /** Makes /health answer 503 (the API is down) or answer again. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startHealthStandIn(name: string, db: SqlClient): Promise<HealthStandIn> {
  let down = false;
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/health') {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"status":"not found"}');
      return;
    }
    const answer = (status: number, body: unknown) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (down) {
      answer(503, { status: 'down', api: name });
      return;
    }
    db.query('SELECT COUNT(*) AS n FROM user_users')
      .then(([row]) => answer(200, { status: 'ok', api: name, users: row === undefined ? 0 : num(row, 'n') }))
      .catch((error: Error) => answer(503, { status: 'down', api: name, error: error.message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/health`,
    setDown(value) {
      down = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
