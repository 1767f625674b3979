/**
 * Request checks that protect a server on a user's machine from web pages and other local users.
 *
 * - Origin check (ComfyUI's): a request whose `Host` is a loopback name or address and whose `Origin` names
 *   a different host is refused (403). A page on evil.example cannot drive the local server through the
 *   user's browser (POST /prompt, websocket). Requests without `Origin` (scripts, curl, `<img>`) pass.
 * - Access token (optional): when configured, every API route and the websocket need it, as
 *   `Authorization: Bearer <token>` or `?token=<token>` (browsers cannot set headers on websockets or
 *   `<img src>`). The editor's static files and packs' extension scripts are served without it: they are
 *   public code, and the editor asks the user for the token.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';

/** True for `localhost`, `*.localhost`, 127.0.0.0/8 and `::1` (with or without brackets). */
export function isLoopbackHostname(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (name === '::1' || name === '0:0:0:0:0:0:0:1') return true;
  const v4 = name.startsWith('::ffff:') ? name.slice(7) : name;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Splits a `Host` header value (`localhost:8188`, `[::1]:8188`) into hostname and port. */
function splitHost(host: string): { hostname: string; port: string | undefined } {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(host);
  return { hostname: match?.[1] ?? host, port: match?.[2] || undefined };
}

/**
 * ComfyUI's rule: refuse when Host is loopback and Origin's host differs. When Host carries no port, only
 * the hostnames are compared. A malformed Origin (including `null`, sent by sandboxed pages) is refused.
 */
export function originAllowed(hostHeader: string | undefined, originHeader: string | undefined): boolean {
  if (!hostHeader || !originHeader) return true;
  const host = hostHeader.toLowerCase();
  const { hostname, port } = splitHost(host);
  if (!isLoopbackHostname(hostname)) return true;
  let originHost: string;
  try {
    const url = new URL(originHeader);
    // URL drops default ports (http:80); Host keeps what the client typed, so rebuild from the parts.
    originHost = url.port ? `${url.hostname}:${url.port}` : url.hostname;
    if (port !== undefined && !url.port) {
      originHost = `${url.hostname}:${url.protocol === 'https:' ? '443' : '80'}`;
    }
  } catch {
    return false;
  }
  return port === undefined ? splitHost(originHost).hostname === hostname : originHost === host;
}

export function originCheck() {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (originAllowed(req.headers.host, req.headers.origin)) return next();
    res.status(403).json({
      error: {
        type: 'forbidden_origin',
        message: `Refused a cross-origin request from ${req.headers.origin} to a server on ${req.headers.host}. Open the editor from the server's own address, or call the API without a browser.`,
      },
    });
  };
}

/** The token a request carries, from `Authorization: Bearer` or the `token` query parameter. */
export function tokenOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (match) return match[1];
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  return url.searchParams.get('token') ?? undefined;
}

/** Constant-time comparison, so the token cannot be guessed byte by byte from response times. */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The first path segments of API routes (at the root and under /api). */
const API_ROOTS = new Set([
  'prompt',
  'queue',
  'history',
  'object_info',
  'view',
  'upload',
  'interrupt',
  'free',
  'system_stats',
  'ws',
  'api',
  'internal',
  'embeddings',
  'models',
  'settings',
  'userdata',
  'users',
]);

/**
 * True for what may be served without the token: GET/HEAD of the editor's static files and of packs'
 * extension scripts (`/extensions/<pack>/...`). `GET /extensions` itself (the list) is an API route.
 */
export function isPublicRequest(method: string, path: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  const first = path.split('/')[1] ?? '';
  if (first === 'extensions') return path.startsWith('/extensions/') && path.length > '/extensions/'.length;
  return !API_ROOTS.has(first);
}

export function requireToken(token: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (token === undefined || isPublicRequest(req.method, req.path)) return next();
    if (tokenMatches(tokenOf(req), token)) return next();
    res
      .status(401)
      .setHeader('WWW-Authenticate', 'Bearer')
      .json({
        error: {
          type: 'unauthorized',
          message:
            'This server requires an access token: send "Authorization: Bearer <token>" or add ?token=<token> to the URL (the token is the --token / GATEGRAPH_TOKEN value the server was started with).',
        },
      });
  };
}

/** Checks a websocket upgrade: origin and token. Returns the HTTP status to refuse with, or undefined. */
export function upgradeRefusal(req: IncomingMessage, token: string | undefined): { status: number; message: string } | undefined {
  const origin = req.headers.origin;
  if (!originAllowed(req.headers.host, origin)) {
    return { status: 403, message: `cross-origin websocket from ${origin} refused` };
  }
  if (token !== undefined && !tokenMatches(tokenOf(req), token)) {
    return { status: 401, message: 'access token required: connect to /ws?clientId=...&token=<token>' };
  }
  return undefined;
}
