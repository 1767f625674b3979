/**
 * Request checks that protect a server on a user's machine from web pages and other local users.
 *
 * - Origin check (ComfyUI's): a request whose `Host` is a loopback name or address and whose `Origin` names
 *   a different host is refused (403). A page on evil.example cannot drive the local server through the
 *   user's browser (POST /prompt, websocket). Requests without `Origin` (scripts, curl, `<img>`) pass.
 * - Access token (optional): when configured, every request needs it, as `Authorization: Bearer <token>` or
 *   `?token=<token>` (browsers cannot set headers on websockets or `<img src>`), except GET/HEAD of the
 *   editor's static files and packs' extension scripts: they are public code, and the editor asks the user for
 *   the token. Which files those are is decided on the normalized path (normalizeRequestUrl), the same one
 *   routing sees.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';

/**
 * A hostname as browsers and resolvers read it: IPv4 in any spelling (`127.1`, `0x7f000001`, `2130706433`,
 * `0177.0.0.1`) becomes dotted decimal, IPv6 is compressed and bracketed (`[::ffff:7f00:1]`), names are
 * lower-cased without a trailing dot. Undefined for something that is no hostname at all.
 */
export function canonicalHostname(hostname: string): string | undefined {
  try {
    const bracketed = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
    return new URL(`http://${bracketed}/`).hostname.replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

/**
 * True for the names and addresses that reach this machine itself: `localhost`, `*.localhost`, 127.0.0.0/8,
 * `0.0.0.0` and `[::]` (the "any" addresses, which browsers route to localhost), `::1`, and IPv4-mapped IPv6
 * forms of these, in any spelling (see canonicalHostname).
 */
export function isLoopbackHostname(hostname: string): boolean {
  const name = canonicalHostname(hostname);
  if (name === undefined) return false;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (name === '[::1]' || name === '[::]') return true;
  if (/^127\.\d+\.\d+\.\d+$/.test(name) || name === '0.0.0.0') return true;
  // IPv4-mapped IPv6: [::ffff:7fxx:xxxx] is 127.x.x.x, [::ffff:0:0] is 0.0.0.0.
  return /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(name) || name === '[::ffff:0:0]';
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
  const { hostname: rawHostname, port } = splitHost(hostHeader.trim());
  // Compared in canonical form, so `127.1` and `127.0.0.1` are one host and `0.0.0.0` counts as loopback.
  const hostname = canonicalHostname(rawHostname);
  if (hostname === undefined) return false;
  if (!isLoopbackHostname(hostname)) return true;
  let url: URL;
  try {
    url = new URL(originHeader);
  } catch {
    return false;
  }
  if (url.hostname.replace(/\.$/, '') !== hostname) return false;
  if (port === undefined) return true;
  // URL drops default ports (http:80); Host keeps what the client typed.
  return (url.port || (url.protocol === 'https:' ? '443' : '80')) === port;
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

/**
 * The request URL as both routing and the access check see it, so that no spelling of a path can reach a
 * route while looking public to the check: percent-escapes of unreserved characters decoded (`/%68istory` is
 * `/history`) and the others upper-cased, runs of slashes collapsed, `.` and `..` segments resolved (`%2e`
 * included), a trailing slash dropped. The query is kept as it is. Undefined for a malformed escape. Routes
 * are matched case-sensitively, as ComfyUI's are: `/History` is no route.
 */
export function normalizeRequestUrl(url: string): string | undefined {
  const queryAt = url.indexOf('?');
  const rawPath = queryAt < 0 ? url : url.slice(0, queryAt);
  const query = queryAt < 0 ? '' : url.slice(queryAt);
  if (/%(?![0-9A-Fa-f]{2})/.test(rawPath)) return undefined;
  const unescaped = rawPath.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9._~-]/.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  let path: string;
  try {
    path = new URL(`/${unescaped}`.replace(/\/{2,}/g, '/'), 'http://normalized.invalid').pathname;
  } catch {
    return undefined;
  }
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path + query;
}

/** Express middleware: rewrites `req.url` to normalizeRequestUrl's form before anything routes it; 400 when malformed. */
export function normalizePaths() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const normalized = normalizeRequestUrl(req.url);
    if (normalized === undefined) {
      res.status(400).json({ error: { type: 'bad_path', message: 'The request path has a malformed percent-escape' } });
      return;
    }
    req.url = normalized;
    next();
  };
}

/**
 * True for what may be served without the token: GET/HEAD of a file that is public (the editor's static
 * files, packs' extension scripts; `isPublicFile` says which, for the normalized path). Everything else,
 * including paths that match no route, needs the token: the check never guesses which paths are API routes.
 */
export function isPublicRequest(method: string, path: string, isPublicFile: (path: string) => boolean): boolean {
  return (method === 'GET' || method === 'HEAD') && isPublicFile(path);
}

export function requireToken(token: string | undefined, isPublicFile: (path: string) => boolean) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (token === undefined || isPublicRequest(req.method, req.path, isPublicFile)) return next();
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
