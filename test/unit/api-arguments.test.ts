// A malformed argument to the API is a programming error of the app: it is refused with a coded
// TieredSessionError naming the call, like every other error the package raises.
import t from 'tap';
import { TieredSessionError, ERR_INVALID_ARGUMENT } from '../../lib/core/errors.js';
import { SessionFlows, guardMaxAge } from '../../lib/core/flows.js';
import { resolveOptions } from '../../lib/core/resolve-options.js';
import { managerOf } from '../../lib/core/sessions-api.js';
import type { SessionManager } from '../../lib/core/manager.js';

const code = 'ERR_TIERED_SESSION_INVALID_ARGUMENT';

t.test('requireRecentAuthentication(maxAgeMs) takes a whole number of milliseconds', async (t) => {
  for (const v of [-1, 1.5, '60000', null, undefined, Number.NaN]) {
    t.throws(() => guardMaxAge(v), { code, name: 'TieredSessionError', message: /requireRecentAuthentication\(maxAgeMs\)/ }, String(v));
  }
  t.equal(guardMaxAge(0), 0);
  t.equal(guardMaxAge(60_000), 60_000);
});

t.test('signIn refuses options that are not an object, or a remember that is not a boolean, before touching Redis', async (t) => {
  const client = { duplicate() {}, evalsha() {}, pipeline() {} } as never;
  // A manager that fails the test if reached beyond what the flows keep: the arguments are checked first.
  const manager = new Proxy({}, {
    get: (_target, key) => { if (key === 'metrics' || key === 'resolving') return {}; throw new Error('the manager was reached'); },
  }) as SessionManager;
  const flows = new SessionFlows(resolveOptions({ client, secret: 'x'.repeat(32) }), manager);
  const facts = { method: 'POST', headers: {}, ip: undefined };
  for (const options of [null, 'remember', 7, { remember: 'no' }, { remember: 1 }]) {
    const err = await flows.signIn(facts, null, 'alice', options as never).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof TieredSessionError && err instanceof ERR_INVALID_ARGUMENT, `${JSON.stringify(options)}: a TieredSessionError`);
    t.match(err, { code, statusCode: 500, message: /^Invalid argument to signIn: / });
  }
});

t.test('managerOf refuses anything but a Sessions object', async (t) => {
  t.throws(() => managerOf({}), { code });
});
