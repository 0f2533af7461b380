/**
 * A NATS cluster of real nats-server processes on loopback: every node has a
 * client port, a cluster (route) port and a monitoring port, and routes to
 * all the others. `start` resolves once every node reports a route to every
 * other node (monitoring endpoint /routez), never after a sleep.
 */
import type { ChildProcess } from 'node:child_process';
import { freePort, spawnNatsServer } from './nats-server.js';
import { waitFor } from './wait.js';

export interface ClusterNode {
  index: number;
  url: string;
  clientPort: number;
  clusterPort: number;
  monitorPort: number;
  process: ChildProcess | undefined;
  /** GET on the node's monitoring endpoint (/routez, /connz?subs=1, ...) */
  monitor<T = any>(path: string): Promise<T>;
  /** freezes the process (SIGSTOP): its connections stay open but nothing moves */
  pause(): void;
  /** kills the process (SIGKILL) and waits for it to be gone */
  kill(): Promise<void>;
}

export interface NatsCluster {
  nodes: ClusterNode[];
  stop(): Promise<void>;
}

export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const ports: { client: number; cluster: number; monitor: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const nodes: ClusterNode[] = ports.map((p, index) => {
    const node: ClusterNode = {
      index,
      url: `nats://127.0.0.1:${p.client}`,
      clientPort: p.client,
      clusterPort: p.cluster,
      monitorPort: p.monitor,
      process: undefined,
      async monitor(path) {
        const res = await fetch(`http://127.0.0.1:${p.monitor}${path}`);
        return res.json();
      },
      pause() {
        node.process?.kill('SIGSTOP');
      },
      async kill() {
        const c = node.process;
        node.process = undefined;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        await new Promise<void>((resolve) => {
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        });
      },
    };
    return node;
  });
  const cluster: NatsCluster = {
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.kill()));
    },
  };
  try {
    await Promise.all(
      nodes.map(async (node, i) => {
        const routes = ports.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p.cluster}`);
        node.process = await spawnNatsServer([
          '-a', '127.0.0.1',
          '-p', String(node.clientPort),
          '-m', String(node.monitorPort),
          '--cluster_name', 'resgraph-test',
          '--cluster', `nats://127.0.0.1:${node.clusterPort}`,
          '--routes', routes.join(','),
        ]);
      }),
    );
    // every node routes to every other one
    await waitFor(
      async () => {
        const counts = await Promise.all(nodes.map(async (n) => new Set(((await n.monitor('/routez')).routes ?? []).map((r: any) => r.remote_id)).size));
        return counts.every((c) => c === size - 1);
      },
      10_000,
      'the cluster routes',
    );
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
