/**
 * The NATS server a bench run uses and how its processes connect to it.
 * By default each scenario starts its own plain nats-server; `--nats <url>`
 * (with the gateway's --nats-* options: TLS, creds, NKey, token, user and
 * password) points the whole run at a server of yours instead. The options
 * are the gateway's own (dist/res/nats-options.js): the orchestrator passes
 * them on as flags, and each child (fixture service, floor subscriber,
 * gateway) reads them with `natsFromArgv`.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const natsOptions = await import(join(rootDir, 'dist/res/nats-options.js'));

export const { natsParseArgsOptions } = natsOptions;

/** the server given with --nats, and the --nats-* flags to hand every child; unset: each scenario starts its own */
let external;

/** Remembers `--nats` and the --nats-* options of bench/run.mjs (its parseArgs `values`); checks them now. */
export function useExternalNats(values) {
  if (values.nats === undefined) {
    if (Object.keys(natsParseArgsOptions).some((flag) => values[flag] !== undefined)) {
      throw new natsOptions.NatsOptionsError('the --nats-* options need --nats <url>: the nats-server a scenario starts is not secured');
    }
    return;
  }
  const natsClient = natsOptions.readNatsClientOptions(values, process.env);
  natsOptions.natsConnectOptions(splitServers(values.nats), natsClient, 'bench');
  external = { url: values.nats, natsClient, args: natsOptions.natsClientArgs(natsClient) };
}

/** The server given with --nats, if any: {url, natsClient, args}. */
export function externalNats() {
  return external;
}

/** The --nats-* flags every child gets after the URL (none for a server the scenario started). */
export function natsChildArgs() {
  return external?.args ?? [];
}

/** A child's positionals (the NATS URL first) and nats.js options for the URL and the --nats-* flags that follow it. */
export function natsFromArgv(argv, defaultName) {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: natsParseArgsOptions });
  const natsClient = natsOptions.readNatsClientOptions(values, process.env);
  return { positionals, natsClient, connectOptions: natsOptions.natsConnectOptions(splitServers(positionals[0]), natsClient, defaultName) };
}

function splitServers(url) {
  return String(url ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}
