/**
 * The environment most tests share: a real nats-server on a free port, the
 * in-memory TestService on its own NATS connection, and an in-process
 * gateway for a schema; `close` stops them in reverse order.
 */
import type { GatewayOptions } from '../../src/server.js';
import { startTestGateway, type TestGateway } from './gateway.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { TestService } from './res-service.js';

export interface TestEnv {
  nats: NatsServer;
  svc: TestService;
  gw: TestGateway;
  close(): Promise<void>;
}

/** `servicePrefixes`: the resource names the service answers (default: all). */
export async function startTestEnv(sdl: string, opts: Partial<GatewayOptions> = {}, servicePrefixes?: string[]): Promise<TestEnv> {
  const nats = await startNatsServer();
  const svc = await TestService.start(nats.url, servicePrefixes);
  const gw = await startTestGateway(nats.url, sdl, opts);
  return {
    nats,
    svc,
    gw,
    async close() {
      await gw.close();
      await svc.close();
      await nats.stop();
    },
  };
}
