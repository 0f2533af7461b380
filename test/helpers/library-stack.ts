/**
 * What `npm start` runs, in-process for a test: a nats-server of its own,
 * the example library service (examples/library/service.ts) and a gateway
 * serving schema/library.graphql on a free port (with the gateway options given).
 */
import { readFileSync } from 'node:fs';
import { startLibraryService, type LibraryService } from '../../examples/library/service.js';
import type { GatewayOptions } from '../../src/server.js';
import { startTestGateway, type TestGateway } from './gateway.js';
import { startNatsServer, type NatsServer } from './nats-server.js';

export interface LibraryStack {
  nats: NatsServer;
  library: LibraryService;
  gw: TestGateway;
  close(): Promise<void>;
}

/** `gatewayOptions`: for the gateway, on top of the test defaults (such as the web page's origin). */
export async function startLibraryStack(gatewayOptions: Partial<GatewayOptions> = {}): Promise<LibraryStack> {
  const sdl = readFileSync(new URL('../../schema/library.graphql', import.meta.url), 'utf8');
  const nats = await startNatsServer();
  let library: LibraryService | undefined;
  let gw: TestGateway | undefined;
  /** stops all three, even when one of them fails to stop */
  const close = async () => {
    try {
      await gw?.close();
    } finally {
      try {
        await library?.close();
      } finally {
        await nats.stop();
      }
    }
  };
  try {
    library = await startLibraryService(nats.url);
    gw = await startTestGateway(nats.url, sdl, gatewayOptions);
  } catch (e) {
    await close();
    throw e;
  }
  return { nats, library, gw, close };
}
