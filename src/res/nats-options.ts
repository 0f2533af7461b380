/**
 * How a process of ours connects to a secured NATS: TLS (with a CA, and a
 * client certificate for mutual TLS), and one way to authenticate (a
 * `.creds` file, an NKey seed, a token, a user and password, or credentials
 * in the URL). The one place these options are named, read (flags and
 * RESGRAPH_NATS_* variables), validated and turned into nats.js connection
 * options: the gateway's CLI, `startGateway`, the example service and the
 * bench all use it.
 *
 * Files are read and checked once, at start-up, so a bad configuration fails
 * at once with an error naming the option. Secrets (passwords, tokens, seeds)
 * never appear in an error message, nor in the redacted server list used for
 * logs.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jwtAuthenticator, nkeyAuthenticator, nkeys, type ConnectionOptions } from 'nats';
import { defaults } from '../config/defaults.js';

/** The NATS client settings beyond the server URLs; every field is optional and unset by default. */
export interface NatsClientOptions {
  /** A `.creds` file: a user JWT and its NKey seed (operator mode, Synadia Cloud). */
  creds?: string;
  /** A file holding an NKey user seed (`SU...`), for a server that lists the user's public key. */
  nkey?: string;
  /** A token (`authorization { token }` on the server). */
  token?: string;
  /** A file holding the token (a container secret); its trailing newline is ignored. */
  tokenFile?: string;
  /** A user name, with `password` or `passwordFile`. */
  user?: string;
  password?: string;
  /** A file holding the password (a container secret); its trailing newline is ignored. */
  passwordFile?: string;
  /** A PEM file of the CA certificate(s) the server's certificate must chain to. Default: the system's CAs. */
  tlsCa?: string;
  /** A PEM client certificate, for mutual TLS; needs `tlsKey`. */
  tlsCert?: string;
  /** The PEM private key of `tlsCert`. */
  tlsKey?: string;
  /** The client name NATS shows in its monitoring (`/connz`). Default: the program's own (`resgraph` for the gateway). */
  name?: string;
}

/** A NATS option that cannot be used: the message names the option and never holds a secret. */
export class NatsOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NatsOptionsError';
  }
}

type Field = keyof NatsClientOptions;

/** Each option: its flag, its environment variable, its `NatsClientOptions` field, and its help. */
export const natsOptionSettings = {
  'nats-creds': { env: 'RESGRAPH_NATS_CREDS', field: 'creds', value: '<file>', default: 'none', help: 'NATS credentials file (user JWT and NKey seed; operator mode)' },
  'nats-nkey': { env: 'RESGRAPH_NATS_NKEY', field: 'nkey', value: '<file>', default: 'none', help: 'file holding an NKey user seed (SU...)' },
  'nats-token': { env: 'RESGRAPH_NATS_TOKEN', field: 'token', value: '<token>', default: 'none', help: 'NATS token' },
  'nats-token-file': { env: 'RESGRAPH_NATS_TOKEN_FILE', field: 'tokenFile', value: '<file>', default: 'none', help: 'file holding the NATS token' },
  'nats-user': { env: 'RESGRAPH_NATS_USER', field: 'user', value: '<name>', default: 'none', help: 'NATS user, with --nats-password or --nats-password-file' },
  'nats-password': { env: 'RESGRAPH_NATS_PASSWORD', field: 'password', value: '<password>', default: 'none', help: 'password of --nats-user' },
  'nats-password-file': { env: 'RESGRAPH_NATS_PASSWORD_FILE', field: 'passwordFile', value: '<file>', default: 'none', help: 'file holding the password of --nats-user' },
  'nats-tls-ca': { env: 'RESGRAPH_NATS_TLS_CA', field: 'tlsCa', value: '<file>', default: 'system CAs', help: 'PEM CA certificate(s) the NATS server must chain to' },
  'nats-tls-cert': { env: 'RESGRAPH_NATS_TLS_CERT', field: 'tlsCert', value: '<file>', default: 'none', help: 'PEM client certificate for mutual TLS, with --nats-tls-key' },
  'nats-tls-key': { env: 'RESGRAPH_NATS_TLS_KEY', field: 'tlsKey', value: '<file>', default: 'none', help: 'PEM private key of --nats-tls-cert' },
  'nats-name': { env: 'RESGRAPH_NATS_NAME', field: 'name', value: '<name>', default: defaults.natsName, help: 'client name shown in NATS monitoring' },
} as const satisfies Record<string, { env: string; field: Field; value: string; default: string; help: string }>;

export type NatsFlag = keyof typeof natsOptionSettings;

const flagOf = Object.fromEntries(Object.entries(natsOptionSettings).map(([flag, s]) => [s.field, `--${flag}`])) as Record<Field, string>;

/** The `options` entries for node's `parseArgs`. */
export const natsParseArgsOptions = Object.fromEntries(
  Object.keys(natsOptionSettings).map((flag) => [flag, { type: 'string' as const }]),
) as Record<NatsFlag, { type: 'string' }>;

/**
 * The options given as flags (parseArgs `values`) or, for those not given,
 * RESGRAPH_NATS_* variables (an empty variable counts as unset). Nothing is
 * checked here: see `natsConnectOptions`.
 */
export function readNatsClientOptions(
  flags: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = {},
): NatsClientOptions {
  const out: NatsClientOptions = {};
  for (const [flag, s] of Object.entries(natsOptionSettings)) {
    const fromFlag = flags[flag];
    const fromEnv = env[s.env];
    const value = typeof fromFlag === 'string' ? fromFlag : fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined;
    if (value !== undefined) out[s.field] = value;
  }
  return out;
}

/** The command-line arguments that give these options, for passing them on to a child process. */
export function natsClientArgs(opts: NatsClientOptions): string[] {
  return Object.entries(natsOptionSettings).flatMap(([flag, s]) => (opts[s.field] === undefined ? [] : [`--${flag}`, opts[s.field]!]));
}

/** The server URLs with any credentials in them replaced by `***`: what logs and errors may show. */
export function redactServers(servers: string | readonly string[]): string[] {
  return (typeof servers === 'string' ? [servers] : servers).map((u) => u.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1***@'));
}

/**
 * Checks the options, reads their files and returns nats.js connection
 * options (servers, TLS, authenticator, name); throws NatsOptionsError for an
 * option that cannot be used. Reconnect behaviour is the caller's to add.
 */
export function natsConnectOptions(
  servers: string | readonly string[],
  opts: NatsClientOptions,
  defaultName: string,
): ConnectionOptions {
  const urls = parseServers(servers);
  const name = opts.name ?? defaultName;
  if (name.trim() === '') throw new NatsOptionsError(`${flagOf.name}: expected a name`);

  const methods = authMethods(opts, urls);
  if (methods.length > 1) {
    throw new NatsOptionsError(`${methods.join(' and ')} are two ways to authenticate to NATS; give only one`);
  }
  const out: ConnectionOptions = { servers: urls.map((u) => u.address), name, ...authOptions(opts, urls) };
  const tls = tlsOptions(opts, urls.some((u) => u.tls));
  if (tls) out.tls = tls;
  return out;
}

interface ServerUrl {
  /** the URL without its credentials, as nats.js gets it */
  address: string;
  tls: boolean;
  /** `user:password` or a token from the URL */
  user?: string;
  pass?: string;
  token?: string;
}

function parseServers(servers: string | readonly string[]): ServerUrl[] {
  const list = typeof servers === 'string' ? [servers] : [...servers];
  if (list.length === 0) throw new NatsOptionsError('--nats: expected one or more server URLs');
  return list.map((raw, i) => {
    const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?(?:([^@/]*)@)?([^@/]+)\/?$/i.exec(raw.trim());
    const shown = redactServers(raw)[0];
    if (!m) throw new NatsOptionsError(`--nats: ${JSON.stringify(shown)} is not a NATS URL (nats://host:port or tls://host:port)`);
    const [, scheme = 'nats', userinfo, hostPort] = m;
    if (scheme !== 'nats' && scheme !== 'tls') {
      throw new NatsOptionsError(`--nats: ${JSON.stringify(shown)} has scheme ${scheme}://; expected nats:// or tls://`);
    }
    const url: ServerUrl = { address: `${scheme}://${hostPort}`, tls: scheme === 'tls' };
    if (userinfo !== undefined) {
      const colon = userinfo.indexOf(':');
      const decode = (s: string) => {
        try {
          return decodeURIComponent(s);
        } catch {
          throw new NatsOptionsError(`--nats: the credentials in server URL ${i + 1} are not URL-encoded correctly`);
        }
      };
      if (colon < 0) url.token = decode(userinfo);
      else [url.user, url.pass] = [decode(userinfo.slice(0, colon)), decode(userinfo.slice(colon + 1))];
    }
    return url;
  });
}

/** The authentication methods given, by the option that gives each. */
function authMethods(opts: NatsClientOptions, urls: ServerUrl[]): string[] {
  const methods: string[] = [];
  if (opts.creds !== undefined) methods.push(flagOf.creds);
  if (opts.nkey !== undefined) methods.push(flagOf.nkey);
  if (opts.token !== undefined || opts.tokenFile !== undefined) methods.push(opts.token !== undefined ? flagOf.token : flagOf.tokenFile);
  if (opts.user !== undefined || opts.password !== undefined || opts.passwordFile !== undefined) methods.push(flagOf.user);
  if (urls.some((u) => u.user !== undefined || u.token !== undefined)) methods.push('credentials in the --nats URL');
  return methods;
}

function authOptions(opts: NatsClientOptions, urls: ServerUrl[]): Partial<ConnectionOptions> {
  if (opts.creds !== undefined) {
    const { jwt, seed } = readCreds(opts.creds);
    return { authenticator: jwtAuthenticator(jwt, seed) };
  }
  if (opts.nkey !== undefined) return { authenticator: nkeyAuthenticator(readUserSeed(opts.nkey, flagOf.nkey)) };
  if (opts.token !== undefined || opts.tokenFile !== undefined) {
    if (opts.token !== undefined && opts.tokenFile !== undefined) throw both(flagOf.token, flagOf.tokenFile);
    const token = opts.token ?? readSecretFile(opts.tokenFile!, flagOf.tokenFile);
    if (token === '') throw new NatsOptionsError(`${flagOf.token}: the token is empty`);
    return { token };
  }
  if (opts.user !== undefined || opts.password !== undefined || opts.passwordFile !== undefined) {
    if (opts.password !== undefined && opts.passwordFile !== undefined) throw both(flagOf.password, flagOf.passwordFile);
    if (opts.user === undefined || opts.user === '') throw new NatsOptionsError(`${flagOf.password} needs ${flagOf.user}`);
    const pass = opts.password ?? (opts.passwordFile !== undefined ? readSecretFile(opts.passwordFile, flagOf.passwordFile) : undefined);
    if (pass === undefined) throw new NatsOptionsError(`${flagOf.user} needs ${flagOf.password} or ${flagOf.passwordFile}`);
    return { user: opts.user, pass };
  }
  const withCreds = urls.filter((u) => u.user !== undefined || u.token !== undefined);
  if (withCreds.length === 0) return {};
  const same = withCreds.every((u) => u.user === withCreds[0].user && u.pass === withCreds[0].pass && u.token === withCreds[0].token);
  if (!same || withCreds.length !== urls.length) throw new NatsOptionsError('--nats: every server URL must carry the same credentials, or none');
  const first = withCreds[0];
  return first.token !== undefined ? { token: first.token } : { user: first.user, pass: first.pass };
}

function tlsOptions(opts: NatsClientOptions, tlsUrl: boolean): ConnectionOptions['tls'] | undefined {
  if (!tlsUrl && opts.tlsCa === undefined && opts.tlsCert === undefined && opts.tlsKey === undefined) return undefined;
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
    throw new NatsOptionsError(opts.tlsCert !== undefined ? `${flagOf.tlsCert} needs ${flagOf.tlsKey}` : `${flagOf.tlsKey} needs ${flagOf.tlsCert}`);
  }
  // an empty object still makes nats.js refuse a server that does not offer TLS
  const tls: NonNullable<ConnectionOptions['tls']> = {};
  if (opts.tlsCa !== undefined) tls.ca = readCertificate(opts.tlsCa, flagOf.tlsCa).pem;
  if (opts.tlsCert !== undefined) {
    const cert = readCertificate(opts.tlsCert, flagOf.tlsCert);
    const key = readFile(opts.tlsKey!, flagOf.tlsKey);
    let privateKey;
    try {
      privateKey = createPrivateKey(key);
    } catch {
      throw new NatsOptionsError(`${flagOf.tlsKey} ${opts.tlsKey}: not a PEM private key`);
    }
    if (!cert.x509.checkPrivateKey(privateKey)) {
      throw new NatsOptionsError(`${flagOf.tlsKey} ${opts.tlsKey} is not the key of ${flagOf.tlsCert} ${opts.tlsCert}`);
    }
    tls.cert = cert.pem;
    tls.key = key;
  }
  return tls;
}

function both(a: string, b: string): NatsOptionsError {
  return new NatsOptionsError(`${a} and ${b} both give the same secret; give only one`);
}

function readFile(path: string, flag: string): string {
  if (path.trim() === '') throw new NatsOptionsError(`${flag}: expected a file path`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'a folder, not a file' : err.code;
    throw new NatsOptionsError(`${flag} ${path}: cannot read it (${why ?? 'unknown error'})`);
  }
}

/** A secret kept in a file, as container secrets are: one line, its newline not part of it. */
function readSecretFile(path: string, flag: string): string {
  const text = readFile(path, flag).replace(/\r?\n$/, '');
  if (text === '') throw new NatsOptionsError(`${flag} ${path}: the file is empty`);
  if (/[\r\n]/.test(text)) throw new NatsOptionsError(`${flag} ${path}: expected one line`);
  return text;
}

function readCertificate(path: string, flag: string): { pem: string; x509: X509Certificate } {
  const pem = readFile(path, flag);
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no certificate');
    return { pem, x509: new X509Certificate(pem) };
  } catch {
    throw new NatsOptionsError(`${flag} ${path}: not a PEM certificate`);
  }
}

const encoder = new TextEncoder();

/** An NKey user seed, checked (checksum and kind) by the NKeys support of the nats package. */
function parseUserSeed(text: string, where: string): Uint8Array {
  const seed = encoder.encode(text.trim());
  try {
    nkeys.fromSeed(seed);
  } catch {
    throw new NatsOptionsError(`${where}: not a valid NKey seed`);
  }
  if (!text.trim().startsWith('SU')) throw new NatsOptionsError(`${where}: the NKey seed is not a user seed (SU...)`);
  return seed;
}

function readUserSeed(path: string, flag: string): Uint8Array {
  return parseUserSeed(readFile(path, flag), `${flag} ${path}`);
}

/**
 * A `.creds` file: a `NATS USER JWT` block and a `USER NKEY SEED` block
 * (the format `nsc` writes). The JWT must decode to claims with a subject;
 * whether it is valid, trusted or expired is the server's to say.
 */
function readCreds(path: string): { jwt: string; seed: Uint8Array } {
  const flag = flagOf.creds;
  const text = readFile(path, flag);
  const block = (label: string) => new RegExp(`-{3,}BEGIN ${label}-{3,}\\r?\\n([\\s\\S]+?)\\r?\\n-{3,}END ${label}-{3,}`).exec(text)?.[1].trim();
  const jwt = block('NATS USER JWT');
  const seed = block('USER NKEY SEED');
  if (jwt === undefined || seed === undefined) {
    throw new NatsOptionsError(`${flag} ${path}: not a NATS credentials file (expected a NATS USER JWT block and a USER NKEY SEED block)`);
  }
  if (!isUserJwt(jwt)) throw new NatsOptionsError(`${flag} ${path}: the user JWT in it cannot be decoded`);
  return { jwt, seed: parseUserSeed(seed, `${flag} ${path}`) };
}

function isUserJwt(jwt: string): boolean {
  const parts = jwt.split('.');
  if (parts.length !== 3) return false;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' && claims.sub.startsWith('U');
  } catch {
    return false;
  }
}
