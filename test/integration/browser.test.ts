// The demo page in a real headless Chromium: sign in through the form, the device list, sign
// out one device, sign out everywhere, device names that are text, never HTML, and the history
// of recent sign-ins (the audit trail, on the demo's private PostgreSQL).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { RedisServer } from '../fixtures/redis.js';
import { CHROMIUM, CHROMIUM_ARGS, startDemo, waitForChromium, type Demo } from '../fixtures/browser/demo.js';

const UA = {
  mac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  linux: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 ' +
    'Safari/604.1',
};
const XSS = '<img src=x onerror="window.__xss=1">';
const HOSTILE_UA = `Mozilla/5.0 (X11; Linux x86_64) ${XSS}<script>window.__xss=2</script> AppleWebKit/537.36 (KHTML, like Gecko) ` +
  `Chrome/131.0.0.0 Safari/537.36`;

interface Device { text: string; name: string; current: boolean; hasButton: boolean }

declare global {
  interface Window { __xss?: unknown; __csp?: string[] }
}

let redis: RedisServer | undefined;
let demo: Demo | undefined;
let browser: Browser | undefined;

t.before(async () => {
  await waitForChromium();
  redis = await RedisServer.start();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

t.teardown(async () => {
  await browser?.close();
  // The private redis-server is killed by its fixture when this process exits (awaiting its
  // exit here would wait on an unref'd child).
});

/** The demo's recent-authentication window in these tests (its default is 5 minutes). */
const RECENT_AUTH_MS = 1500;

/** The tests below run once against each demo server (the same page, two frameworks). */
const cases: [string, (t: Test) => Promise<void>][] = [];
const test = (name: string, fn: (t: Test) => Promise<void>) => { cases.push([name, fn]); };

/** A fresh browser profile with its own User-Agent; records CSP violations and page errors. */
async function newContext(t: Test, userAgent: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser!.newContext({ userAgent, viewport: { width: 860, height: 640 } });
  t.teardown(() => context.close());
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => { window.__csp!.push(`${e.violatedDirective} ${e.blockedURI}`); });
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return { context, page, errors };
}

async function showsForm(page: Page): Promise<void> {
  await page.locator('#signin').waitFor({ state: 'visible', timeout: 5000 });
  await page.locator('#account').waitFor({ state: 'hidden', timeout: 5000 });
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto(demo!.url);
  await showsForm(page);
  await page.fill('#login-form input[name=username]', username);
  await page.fill('#login-form input[name=password]', password);
  await page.click('#login-form button[type=submit]');
}

async function devices(page: Page, count: number): Promise<Device[]> {
  await page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  await page.waitForFunction((n) => document.querySelectorAll('#devices li').length === n, count, { timeout: 5000 });
  return page.$$eval('#devices li', (lis) => lis.map((li) => ({
    text: li.textContent ?? '',
    name: li.querySelector('.device-name')?.firstChild?.textContent ?? '',
    current: (li as HTMLElement).dataset.current === 'true',
    hasButton: li.querySelector('button') !== null,
  })));
}

/** GET /me with this context's cookies, from inside the page (a same-origin fetch). */
const meStatus = (page: Page) => page.evaluate(async () => (await fetch('/me')).status);

test('two browsers sign in as alice, see each other in "Your devices", and one signs the other out', async (t) => {
  const one = await newContext(t, UA.mac);
  await one.page.goto(demo!.url);
  await showsForm(one.page);

  // A wrong password keeps the form and says so.
  await signIn(one.page, 'alice', 'wrong');
  await one.page.waitForFunction(() => /Wrong username or password/.test(document.getElementById('message')!.textContent ?? ''));
  t.equal(await one.page.isVisible('#account'), false, 'still signed out');

  await signIn(one.page, 'alice', 'wonderland');
  let list = await devices(one.page, 1);
  t.match(await one.page.textContent('#whoami'), /Signed in as alice/);
  t.equal(list[0].name, 'Chrome 131 on macOS');
  t.ok(list[0].current && /this device/.test(list[0].text), 'marked "this device"');
  t.match(list[0].text, /Chrome · macOS · desktop/);
  t.match(list[0].text, /IP 127\.0\.0\.1/);
  t.match(list[0].text, /Last active just now/);
  t.notOk(list[0].hasButton, 'no "Sign out" button on the current device');

  // The cookie: __Host-sid, Secure, HttpOnly, SameSite=Lax, stored by Chromium for http://127.0.0.1.
  const cookies = await one.context.cookies(demo!.url);
  const sid = cookies.find((c) => c.name === '__Host-sid');
  t.ok(sid, 'Chromium kept the Secure __Host-sid cookie set over http://127.0.0.1');
  t.match(sid, { secure: true, httpOnly: true, sameSite: 'Lax', path: '/', domain: '127.0.0.1' });
  t.equal(await one.page.evaluate(() => document.cookie), '', 'page scripts cannot read it');
  // The device cookie (knownDevices): its own name, Secure, HttpOnly, SameSite=Lax, Path=/, a year.
  const device = cookies.find((c) => c.name === '__Host-sid.device');
  t.match(device, { secure: true, httpOnly: true, sameSite: 'Lax', path: '/', domain: '127.0.0.1' }, 'the device cookie');
  t.match(device?.value, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/, 'an id and its signature');
  t.ok(Math.abs(device!.expires - (Date.now() / 1000 + 365 * 86_400)) < 120, 'kept for 365 days');

  const two = await newContext(t, UA.linux);
  await signIn(two.page, 'alice', 'wonderland');
  list = await devices(two.page, 2);
  t.same(list.map((d) => [d.name, d.current, d.hasButton]), [
    ['Firefox 133 on Linux', true, false],
    ['Chrome 131 on macOS', false, true],
  ], 'this device first, the other with a "Sign out" button');
  await two.page.screenshot({ path: '/tmp/demo.png', fullPage: true });

  await one.page.reload();
  t.same((await devices(one.page, 2)).map((d) => [d.name, d.current]), [['Chrome 131 on macOS', true], ['Firefox 133 on Linux', false]]);

  // Sign the Mac out from the Linux browser.
  await two.page.click('#devices li:not([data-current]) button');
  list = await devices(two.page, 1);
  t.equal(list[0].name, 'Firefox 133 on Linux');
  t.match(await two.page.textContent('#message'), /Signed out Chrome 131 on macOS/);
  t.equal(await meStatus(one.page), 401, 'the Mac\'s session is gone');
  await one.page.reload();
  await showsForm(one.page);

  // "Sign out" ends only this session.
  await two.page.click('#logout');
  await showsForm(two.page);
  t.equal(await meStatus(two.page), 401);
  t.same((await two.context.cookies(demo!.url)).map((c) => c.name), ['__Host-sid.device'],
    'the session cookie is cleared; the device cookie stays (the device is known on the next sign-in)');

  for (const [name, c] of [['one', one], ['two', two]] as const) {
    t.same(await c.page.evaluate(() => window.__csp), [], `${name}: no CSP violation`);
    t.same(c.errors, [], `${name}: no page error`);
  }
});

test('"Sign out everywhere" ends the other browser\'s session: it shows the form again and /me answers 401', async (t) => {
  const one = await newContext(t, UA.mac);
  const two = await newContext(t, UA.iphone);
  await signIn(one.page, 'alice', 'wonderland');
  await devices(one.page, 1);
  await signIn(two.page, 'alice', 'wonderland');
  const list = await devices(two.page, 2);
  t.same(list.map((d) => d.name), ['Safari on iPhone', 'Chrome 131 on macOS']);
  t.equal(await meStatus(one.page), 200);

  await two.page.click('#logout-everywhere');
  await showsForm(two.page);
  t.match(await two.page.textContent('#message'), /Signed out everywhere \(2 sessions\)/);

  // The other browser finds out on its next action, not only after a reload.
  t.equal(await meStatus(one.page), 401, '/me answers 401 in the first browser');
  await one.page.reload();
  await showsForm(one.page);
  t.equal(await one.page.locator('#devices li').count(), 0, 'no device list left on screen');
  t.same(await one.context.cookies(demo!.url).then((cs) => cs.map((c) => c.name).filter((n) => n === '__Host-sid')), ['__Host-sid'],
    'the stale cookie is still in the first browser');
  t.equal(await meStatus(one.page), 401, 'and still refused');

  // An action on a stale page (a device sign-out) lands on the form as well.
  const three = await newContext(t, UA.linux);
  await signIn(three.page, 'alice', 'wonderland');
  await devices(three.page, 1);
  await signIn(one.page, 'alice', 'wonderland');
  await devices(one.page, 2);
  await three.page.reload();
  await devices(three.page, 2);
  await one.page.click('#logout-everywhere');
  await showsForm(one.page);
  // The third browser still shows its list; signing a device out there answers 401.
  await three.page.click('#devices li:not([data-current]) button');
  await showsForm(three.page);
  t.match(await three.page.textContent('#message'), /Your session has ended/);
});

test('a hostile User-Agent is shown as text: no element, no script', async (t) => {
  const evil = await newContext(t, HOSTILE_UA);
  await signIn(evil.page, 'bob', 'builder');
  const [d] = await devices(evil.page, 1);
  t.equal(d.name, 'Chrome 131 on Linux', 'the stored name is the parsed one, not the raw header');
  t.equal(await evil.page.locator('#devices img, #devices script, #devices svg').count(), 0, 'no element from the header');
  t.equal(await evil.page.evaluate(() => window.__xss), undefined, 'no script ran');
  t.same(await evil.page.evaluate(() => window.__csp), []);

  // The page itself must render whatever the server says as text: feed it a list whose every
  // field is markup (as if a parser let it through) and look at the DOM.
  await evil.page.route('**/sessions', async (route) => {
    const real = await route.fetch();
    const body = await real.json();
    body.sessions.push({
      id: `x${XSS}`,
      current: false,
      device: { name: `Evil ${XSS}`, browser: `<script>window.__xss=3</script>`, os: '<b>bold</b>', type: '<svg onload="window.__xss=4">' },
      ip: '<iframe src="/"></iframe>',
      country: '<u>U</u>',
      createdAt: new Date().toISOString(),
      lastActiveAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    await route.fulfill({ response: real, json: body });
  });
  await evil.page.reload();
  const list = await devices(evil.page, 2);
  t.equal(list[1].name, `Evil ${XSS}`, 'the name is shown literally, <img and all');
  t.match(list[1].text, '<script>window.__xss=3</script>');
  t.match(list[1].text, '<b>bold</b>');
  t.match(list[1].text, '<iframe src="/"></iframe>');
  t.equal(await evil.page.locator('#devices img, #devices script, #devices svg, #devices b, #devices iframe, #devices u').count(), 0,
    'no element was created from a value');
  t.equal(await evil.page.evaluate(() => window.__xss), undefined, 'no script ran');
  t.same(await evil.page.evaluate(() => window.__csp), [], 'nothing even tried to load');
  t.same(evil.errors, []);
});

test('the page is served with its CSP and the cookie also works on http://localhost', async (t) => {
  const r = await fetch(demo!.url);
  t.match(r.headers.get('content-security-policy'), /script-src 'self'/);
  const html = await r.text();
  t.notMatch(html, /<script>|<script [^>]*>[^<]/, 'no inline script');
  t.notMatch(html, / on[a-z]+=/i, 'no inline event handler');

  const { context, page } = await newContext(t, UA.linux);
  await page.goto(demo!.url.replace('127.0.0.1', 'localhost'));
  await showsForm(page);
  await page.fill('#login-form input[name=username]', 'bob');
  await page.fill('#login-form input[name=password]', 'builder');
  await page.click('#login-form button[type=submit]');
  await page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  t.match(await page.textContent('#whoami'), /Signed in as bob/);
  const sid = (await context.cookies()).find((c) => c.name === '__Host-sid');
  t.match(sid, { secure: true, domain: 'localhost' }, 'Chromium keeps the Secure cookie on http://localhost too');
  t.equal(await meStatus(page), 200);
  await page.click('#logout');
  await showsForm(page);
});

test('"Remember me" unticked gives a browser-session cookie, shown as "not remembered" in the device list', async (t) => {
  const { context, page } = await newContext(t, UA.linux);
  await page.goto(demo!.url);
  await showsForm(page);
  await page.fill('#login-form input[name=username]', 'bob');
  await page.fill('#login-form input[name=password]', 'builder');
  await page.uncheck('#login-form input[name=remember]');
  await page.click('#login-form button[type=submit]');
  await page.locator('#devices li[data-current]').waitFor({ state: 'visible', timeout: 5000 });
  t.match(await page.textContent('#devices li[data-current]'), /not remembered/, 'the device list says the session is not remembered');
  const sid = (await context.cookies(demo!.url)).find((c) => c.name === '__Host-sid');
  t.equal(sid?.expires, -1, 'Chromium holds it as a session cookie (no expiry)');
  await page.click('#logout');
  await showsForm(page);
  t.equal(await page.isChecked('#login-form input[name=remember]'), true, 'the box is ticked by default');
});

test('changing the display name after the recent-authentication window asks for the password, then saves', async (t) => {
  const { page, errors } = await newContext(t, UA.mac);
  await signIn(page, 'alice', 'wonderland');
  await devices(page, 1);
  // Within the window: saved at once.
  await page.click('#change-name');
  await page.fill('#name-form input[name=displayName]', 'Alice A.');
  await page.click('#name-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('display-name')!.textContent === 'Alice A.');
  t.equal(await page.isVisible('#confirm-form'), false, 'no password prompt right after signing in');

  await new Promise((r) => setTimeout(r, RECENT_AUTH_MS + 300));
  await page.click('#change-name');
  await page.fill('#name-form input[name=displayName]', 'Queen of Hearts');
  await page.click('#name-form button[type=submit]');
  await page.locator('#confirm-form').waitFor({ state: 'visible', timeout: 5000 });
  t.equal(await page.textContent('#display-name'), 'Alice A.', 'not changed yet: the sign-in is too old');
  await page.fill('#confirm-form input[name=password]', 'wrong');
  await page.click('#confirm-form button[type=submit]');
  await page.waitForFunction(() => /Wrong password/.test(document.getElementById('message')!.textContent ?? ''));
  t.equal(await page.textContent('#display-name'), 'Alice A.', 'a wrong password changes nothing');
  await page.fill('#confirm-form input[name=password]', 'wonderland');
  await page.click('#confirm-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('display-name')!.textContent === 'Queen of Hearts');
  t.equal(await page.isVisible('#confirm-form'), false, 'the prompt closes once the name is saved');
  t.same(errors, []);
});

/** The "New sign-in" notices a page shows: the session each names, and its text. */
const notices = (page: Page) => page.$$eval('#notices li', (lis) => lis.map((li) => ({
  id: (li as HTMLElement).dataset.id ?? '', text: li.textContent ?? '',
})));

test('a sign-in from a new device shows on the other signed-in device without a reload; "This wasn\'t me" signs it out; a known device ' +
  'signing in again raises no notice', async (t) => {
  const a = await newContext(t, UA.mac);
  const b = await newContext(t, UA.linux);
  // Sessions earlier tests left behind go first: they would be notices of their own.
  await signIn(a.page, 'alice', 'wonderland');
  await a.page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  await a.page.click('#logout-everywhere');
  await showsForm(a.page);
  await signIn(a.page, 'alice', 'wonderland');
  await devices(a.page, 1);
  const aId = await a.page.evaluate(async () => (await (await fetch('/me')).json()).sessionId as string);
  t.same(await notices(a.page), [], 'no notice on A: no other session');

  await signIn(b.page, 'alice', 'wonderland');
  await devices(b.page, 2);
  const bId = await b.page.evaluate(async () => (await (await fetch('/me')).json()).sessionId as string);
  t.same(await notices(b.page), [], 'B itself shows no notice: A\'s device is known (it signed in there before)');

  // A finds out within a poll (every 2 s), with no reload.
  await a.page.waitForFunction((id) => document.querySelector(`#notices li[data-id="${id}"]`) !== null, bId, { timeout: 6000 });
  const [notice] = await notices(a.page);
  t.equal(notice.id, bId);
  t.match(notice.text, /New sign-in: Firefox 133 on Linux, just now/, 'the notice names the device and when');
  t.match(notice.text, /A real app would also email: "New sign-in to your account from Firefox 133 on Linux/, 'and the email it stands for');
  t.equal(await a.page.locator('#devices li').count(), 1, 'the device list was not reloaded meanwhile');

  await a.page.click(`#notices li[data-id="${bId}"] button`);
  await a.page.waitForFunction(() => document.querySelectorAll('#notices li').length === 0, null, { timeout: 5000 });
  t.match(await a.page.textContent('#message'), /Signed out Firefox 133 on Linux/);
  t.equal(await meStatus(b.page), 401, 'B\'s next request is signed out');
  await b.page.reload();
  await showsForm(b.page);

  // B signs in again: its device is known now (the cookie it was given): no notice on A.
  await signIn(b.page, 'alice', 'wonderland');
  await devices(b.page, 2);
  const bAgain = await b.page.evaluate(async () => (await (await fetch('/me')).json()).sessionId as string);
  // A signs out and in again, with its known device cookie: B's fresh page raises no notice for it.
  await a.page.click('#logout');
  await showsForm(a.page);
  await signIn(a.page, 'alice', 'wonderland');
  await devices(a.page, 2);
  const aAgain = await a.page.evaluate(async () => (await (await fetch('/me')).json()).sessionId as string);
  t.not(aAgain, aId, 'A has a new session');
  await b.page.reload();
  await devices(b.page, 2);
  await new Promise((r) => setTimeout(r, 2500));
  t.same(await notices(b.page), [], 'B shows no notice for A\'s new session: A is not a new device');
  t.same(await notices(a.page), [], 'nor A for B\'s');
  const listed = await b.page.evaluate(async () => (await (await fetch('/sessions')).json()).sessions as
    { id: string; newDevice: boolean }[]);
  t.same(listed.map((s) => [s.id, s.newDevice]).sort(), [[aAgain, false], [bAgain, false]].sort(), 'the device list says so too');

  for (const [name, c] of [['a', a], ['b', b]] as const) {
    t.same(await c.page.evaluate(() => window.__csp), [], `${name}: no CSP violation`);
    t.same(c.errors, [], `${name}: no page error`);
  }
});

interface HistoryItem { id: string; state: string; current: boolean; name: string; text: string }

/** The "Recent sign-ins on this account" list as shown. */
const historyItems = (page: Page) => page.$$eval('#history li', (lis) => lis.map((li) => ({
  id: (li as HTMLElement).dataset.id ?? '',
  state: (li as HTMLElement).dataset.state ?? '',
  current: (li as HTMLElement).dataset.current === 'true',
  name: li.querySelector('.device-name')?.firstChild?.textContent ?? '',
  text: li.textContent ?? '',
})));

/** Wait until the history shows `id` in `state` (the page fetches it again a moment after a change; a person would reload). */
async function historyShows(page: Page, id: string, state: string): Promise<HistoryItem> {
  for (let attempt = 0; ; attempt++) {
    try {
      await page.waitForFunction(([i, s]) =>
        (document.querySelector(`#history li[data-id="${i}"]`) as HTMLElement | null)?.dataset.state === s,
        [id, state], { timeout: 3000 });
      return (await historyItems(page)).find((h) => h.id === id)!;
    } catch (err) {
      if (attempt === 2) throw err;
      await page.reload();
    }
  }
}

test('the operations strip shows the L1 hit rate (with its sparkline), the revocation p99 and the sessions in L1 as numbers', async (t) => {
  const one = await newContext(t, UA.mac);
  const signedIn = () => one.page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  await signIn(one.page, 'bob', 'builder');
  await signedIn();
  // A sign-out is a revocation: the instance hears its own broadcast, so the p99 has a value.
  t.equal(await one.page.evaluate(async () => (await fetch('/logout', { method: 'POST' })).status), 204);
  await signIn(one.page, 'bob', 'builder');
  await signedIn();
  const text = (id: string) => one.page.evaluate((x) => document.getElementById(x)!.textContent ?? '', id);
  await one.page.waitForFunction(() => /^\d+(\.\d+)? ms$/.test(document.getElementById('ops-revocation')!.textContent ?? ''), undefined,
    { timeout: 8000 });
  t.match(await text('ops-hit'), /^\d{1,3}\.\d %$/, 'the hit rate is a percentage');
  t.match(await text('ops-revocation'), /^\d+(\.\d+)? ms$/, 'the revocation p99 in ms');
  t.match(await text('ops-l1'), /^\d+$/, 'the sessions in L1, a count');
  t.match(await one.page.getAttribute('#ops-spark polyline', 'points'), /^\d+(\.\d+)?,\d+(\.\d+)?/, 'the sparkline has points');
  t.same(await one.page.evaluate(() => window.__csp), [], 'no CSP violation');
  t.same(one.errors, [], 'no page error');
});

test('"Recent sign-ins on this account" lists the sessions, and shows a device signed out from another one as ended, with its reason',
  async (t) => {
  const one = await newContext(t, UA.mac);
  const two = await newContext(t, UA.iphone);
  await signIn(one.page, 'alice', 'wonderland');
  await one.page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  const oneId = await one.page.evaluate(async () => (await (await fetch('/me')).json()).sessionId as string);
  await signIn(two.page, 'alice', 'wonderland');
  await two.page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  const twoId = await two.page.evaluate(async () => (await (await fetch('/me')).json()).sessionId as string);
  await two.page.locator('#history-section').waitFor({ state: 'visible', timeout: 5000 });
  t.match(await two.page.textContent('#history-section h2'), 'Recent sign-ins on this account');

  const mac = await historyShows(two.page, oneId, 'active');
  t.equal(mac.name, 'Chrome 131 on macOS');
  t.match(mac.text, /IP 127\.0\.0\.1/);
  t.match(mac.text, /Signed in just now/);
  t.match(mac.text, /Active/);
  t.notOk(mac.current);
  const mine = await historyShows(two.page, twoId, 'active');
  t.ok(mine.current && /this device/.test(mine.text), 'this browser\'s own session is marked "this device"');
  const order = (await historyItems(two.page)).map((h) => h.id);
  t.ok(order.indexOf(twoId) < order.indexOf(oneId), 'the most recent sign-in first');

  // Sign the Mac out from the iPhone: the device list drops it, the history keeps it, ended.
  await two.page.click(`#devices li[data-id="${oneId}"] button`);
  await two.page.waitForFunction((id) => !document.querySelector(`#devices li[data-id="${id}"]`), oneId, { timeout: 5000 });
  const ended = await historyShows(two.page, oneId, 'revoked');
  t.match(ended.text, /Ended just now: signed out from another device \(revoked\)/, 'ended, with its reason');
  t.notMatch(ended.text, /Active/);
  t.equal((await historyShows(two.page, twoId, 'active')).current, true);

  // Sign out here; signed in again, the history shows that ending too, in its own words.
  await two.page.click('#logout');
  await showsForm(two.page);
  await signIn(two.page, 'alice', 'wonderland');
  await two.page.locator('#account').waitFor({ state: 'visible', timeout: 5000 });
  t.match((await historyShows(two.page, twoId, 'sign-out')).text, /signed out \(sign-out\)/);

  // Whatever the server says is text: a history whose every field is markup creates no element.
  await two.page.route('**/sessions/history', async (route) => {
    const real = await route.fetch();
    const body = await real.json();
    body.sessions.push({
      id: `x${XSS}`, current: false,
      device: { name: `Evil ${XSS}`, browser: '<script>window.__xss=5</script>', os: '<b>b</b>', type: '<svg onload="window.__xss=6">' },
      ip: '<iframe src="/"></iframe>', country: '<u>U</u>',
      createdAt: new Date().toISOString(), lastActiveAt: '<i>x</i>', expiresAt: null,
      endedAt: new Date().toISOString(), endReason: '<img src=x onerror="window.__xss=7">',
    });
    await route.fulfill({ response: real, json: body });
  });
  await two.page.reload();
  await two.page.waitForFunction(() => [...document.querySelectorAll('#history li')].some((li) => li.textContent!.includes('Evil <img')),
    null, { timeout: 5000 });
  t.equal(await two.page.locator('#history img, #history script, #history svg, #history b, #history iframe, #history u, #history ' +
    'i').count(), 0, 'no element from a value');
  t.equal(await two.page.evaluate(() => window.__xss), undefined, 'no script ran');

  for (const [name, c] of [['one', one], ['two', two]] as const) {
    t.same(await c.page.evaluate(() => window.__csp), [], `${name}: no CSP violation`);
    t.same(c.errors, [], `${name}: no page error`);
  }
});

for (const [framework, script] of [['Fastify', 'examples/demo/server.ts'], ['Express', 'examples/demo/express.ts']] as const) {
  t.test(`the ${framework} demo (${script})`, async (t) => {
    demo = await startDemo({
      REDIS_URL: redis!.url,
      KEY_PREFIX: `b${randomBytes(4).toString('hex')}:`,
      LOCAL_CACHE_TTL_MS: '2000',
      RECENT_AUTH_MS: String(RECENT_AUTH_MS),
    }, script);
    t.teardown(() => demo?.stop());
    for (const [name, fn] of cases) await t.test(name, fn);
  });
}
