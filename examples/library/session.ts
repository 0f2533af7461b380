/**
 * The example's sessions: who a connection is. Two ways in, both ending in a
 * `conn.<cid>.token` event that the gateway applies to that connection:
 *
 *   auth.library.session.login  {name, password}  password login; replies with a
 *                                                 signed JWT the client can keep
 *                                                 (e.g. as the `session` cookie)
 *   auth.library.session.logout                   clears the token
 *   auth.library.session.header                   header auth (gateway flag
 *                                                 --header-auth library.session.header):
 *                                                 a JWT from the `session` cookie or an
 *                                                 `Authorization: Bearer` header, or
 *                                                 graphql-ws connectionParams {jwt}
 *
 * The token is {user, role}; its tid is the user name, so
 * `system.tokenReset {tids: ["alice"], ...}` re-authenticates alice everywhere.
 * Demo users and a demo signing key: not for production.
 */
import { SignJWT, jwtVerify } from 'jose';
import type { NatsConnection } from 'nats';

export interface SessionToken {
  user: string;
  role: 'admin' | 'reader';
}

const users: Record<string, { password: string; role: SessionToken['role'] }> = {
  alice: { password: 'wonderland', role: 'admin' },
  bob: { password: 'builder', role: 'reader' },
};

const demoKey = new TextEncoder().encode(process.env.LIBRARY_JWT_SECRET ?? 'library-demo-secret-do-not-use-in-production');
const encoder = new TextEncoder();

export class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function isSessionToken(v: unknown): v is SessionToken {
  return typeof v === 'object' && v !== null && typeof (v as SessionToken).user === 'string';
}

async function signJwt(token: SessionToken): Promise<string> {
  return new SignJWT({ role: token.role }).setProtectedHeader({ alg: 'HS256' }).setSubject(token.user).setExpirationTime('12h').sign(demoKey);
}

async function verifyJwt(jwt: string): Promise<SessionToken | undefined> {
  try {
    const { payload } = await jwtVerify(jwt, demoKey, { algorithms: ['HS256'] });
    const role = payload.role === 'admin' ? 'admin' : 'reader';
    return typeof payload.sub === 'string' ? { user: payload.sub, role } : undefined;
  } catch {
    return undefined; // expired, forged or malformed: no session
  }
}

/** The JWT a request carries: graphql-ws connectionParams, an Authorization header, or the session cookie. */
function jwtOf(payload: Record<string, unknown>): string | undefined {
  const params = payload.params as { jwt?: unknown } | undefined;
  if (typeof params?.jwt === 'string') return params.jwt;
  const header = (payload.header ?? {}) as Record<string, string[] | undefined>;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header.Authorization?.[0] ?? '')?.[1];
  if (bearer) return bearer;
  for (const cookies of header.Cookie ?? []) {
    const m = /(?:^|;\s*)session=([^;]+)/.exec(cookies);
    if (m) return decodeURIComponent(m[1]);
  }
  return undefined;
}

/** Handles `auth.library.session.<method>`; sets the connection's token before it replies (protocol rule). */
export async function handleSessionAuth(nc: NatsConnection, method: string, payload: Record<string, unknown>): Promise<unknown> {
  const cid = payload.cid;
  if (typeof cid !== 'string') throw new AuthError('system.invalidParams', 'Missing cid');
  const setToken = (token: SessionToken | null) =>
    nc.publish(`conn.${cid}.token`, encoder.encode(JSON.stringify(token ? { token, tid: token.user } : { token: null })));
  switch (method) {
    case 'login': {
      const { name, password } = (payload.params ?? {}) as { name?: unknown; password?: unknown };
      const user = typeof name === 'string' ? users[name] : undefined;
      if (!user || user.password !== password) throw new AuthError('library.badLogin', 'Wrong user name or password');
      const token: SessionToken = { user: name as string, role: user.role };
      setToken(token);
      return { user: token.user, role: token.role, jwt: await signJwt(token) };
    }
    case 'logout':
      setToken(null);
      return null;
    case 'header': {
      const jwt = jwtOf(payload);
      const token = jwt ? await verifyJwt(jwt) : undefined;
      if (token) setToken(token);
      return null;
    }
    default:
      throw new AuthError('system.methodNotFound', 'Method not found');
  }
}
