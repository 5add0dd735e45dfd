import type { NextFunction, Request, Response } from 'express';
import { ERR_BAD_BODY, ERR_CROSS_SITE, ERR_NO_SESSION } from '../core/errors.js';
import { ROUTE_HEADERS, type SessionFlows } from '../core/flows.js';
import type { Session } from '../core/session-data.js';

/** What the routes need of their middleware's slot on a request. */
interface OwnSlot { session: Session | null }

/** Largest body read for logout-everywhere when no body parser ran before the routes. */
const BODY_LIMIT = 1024;

/**
 * The request body: what a body parser already produced, else read here (at most BODY_LIMIT
 * bytes of JSON), so the routes work whether or not the app mounted `express.json()` first.
 */
function bodyOf(req: Request): Promise<unknown> {
  if (req.body !== undefined || req.readableEnded) return Promise.resolve(req.body);
  // An empty body that claims to be JSON is not JSON (Fastify refuses it the same way).
  const json = /json/i.test(req.headers['content-type'] ?? '');
  const length = req.headers['content-length'];
  if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) {
    return json ? Promise.reject(new ERR_BAD_BODY()) : Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        req.removeAllListeners('data');
        req.resume();
        reject(new ERR_BAD_BODY());
      } else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return json ? reject(new ERR_BAD_BODY()) : resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new ERR_BAD_BODY());
      }
    });
    req.on('error', reject);
  });
}

/**
 * The device routes as one middleware to mount under any path (`app.use('/sessions', routes)`):
 * GET / (the list), DELETE /:id (revoke one), POST /logout-everywhere, GET /history. Translation only: the
 * core decides every status, cookie and body; errors go to `next(err)`, so the app's own error
 * handler shapes them. Not an express.Router, so it behaves the same in Express 4 and 5.
 */
export function deviceRoutes(flows: SessionFlows, slotOf: (req: Request) => OwnSlot | undefined) {
  async function list(res: Response, own: OwnSlot): Promise<void> {
    res.status(200).json(await flows.list(own.session!));
  }
  async function history(res: Response, own: OwnSlot, query: string): Promise<void> {
    // A repeated ?days= is passed on as the list it is (refused, 400), as Fastify's parser does.
    const days = new URLSearchParams(query).getAll('days');
    res.status(200).json(await flows.history(own.session!, days.length > 1 ? days : days[0]));
  }
  async function everywhere(req: Request, res: Response, own: OwnSlot): Promise<void> {
    const { body, setCookie } = await flows.everywhere(own.session!, await bodyOf(req));
    if (setCookie !== undefined) {
      own.session = null;
      res.append('Set-Cookie', setCookie);
    }
    res.status(200).json(body);
  }
  async function revoke(res: Response, own: OwnSlot, encodedId: string): Promise<void> {
    let id = '';
    try { id = decodeURIComponent(encodedId); } catch { /* malformed: the uniform 404 */ }
    const { setCookie } = await flows.revoke(own.session!, id);
    if (setCookie !== undefined) {
      own.session = null;
      res.append('Set-Cookie', setCookie);
    }
    res.status(204).end();
  }

  return function tieredSessionRoutes(req: Request, res: Response, next: NextFunction): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const m = req.method;
    let run: Promise<void> | undefined;
    // The session this routes' own middleware resolved, never req.session (another middleware
    // mounted later may have replaced it).
    const guarded = (changesState: boolean, fn: (own: OwnSlot) => Promise<void>) => {
      res.set(ROUTE_HEADERS);
      const own = slotOf(req);
      if (own === undefined || own.session == null) return next(new ERR_NO_SESSION());
      if (changesState && flows.isCrossSite({ method: m, headers: req.headers, ip: req.ip })) return next(new ERR_CROSS_SITE());
      run = fn(own);
      run.catch(next);
    };
    if ((path === '/' || path === '') && (m === 'GET' || m === 'HEAD')) guarded(false, (own) => list(res, own));
    else if (path === '/logout-everywhere' && m === 'POST') guarded(true, (own) => everywhere(req, res, own));
    else if (path === '/history' && (m === 'GET' || m === 'HEAD')) guarded(false, (own) =>
      history(res, own, q === -1 ? '' : url.slice(q + 1)));
    else if (m === 'DELETE' && /^\/[^/]+$/.test(path)) guarded(true, (own) => revoke(res, own, path.slice(1)));
    else next();
  };
}
