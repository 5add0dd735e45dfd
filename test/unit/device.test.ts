import t from 'tap';
import { parseDevice, type DeviceInfo } from '../../lib/core/device.js';

// Control characters, bidi overrides and isolates, zero-width characters, line separators.
const UNSAFE = /[\p{Cc}\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;

const CHROME_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

interface Case {
  what: string;
  ua: string | undefined;
  expect: DeviceInfo;
}

const desktop = (name: string, browser: string, os: string): DeviceInfo => ({ name, browser, os, type: 'desktop' });
const mobile = (name: string, browser: string, os: string): DeviceInfo => ({ name, browser, os, type: 'mobile' });
const bot = (name: string, os: string | null = null): DeviceInfo => ({ name, browser: null, os, type: 'bot' });
const UNKNOWN: DeviceInfo = { name: 'Unknown device', browser: null, os: null, type: null };

const cases: Case[] = [
  { what: 'Chrome on Windows', ua: CHROME_WINDOWS, expect: desktop('Chrome 131 on Windows', 'Chrome', 'Windows') },
  {
    what: 'Chrome on macOS',
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    expect: desktop('Chrome 131 on macOS', 'Chrome', 'macOS'),
  },
  {
    what: 'Safari on macOS (no version in the name)',
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
    expect: desktop('Safari on macOS', 'Safari', 'macOS'),
  },
  {
    what: 'Firefox on Linux',
    ua: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    expect: desktop('Firefox 133 on Linux', 'Firefox', 'Linux'),
  },
  {
    what: 'Firefox on Ubuntu',
    ua: 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    expect: desktop('Firefox 133 on Ubuntu', 'Firefox', 'Ubuntu'),
  },
  {
    what: 'Edge on Windows',
    ua: `${CHROME_WINDOWS} Edg/131.0.2903.70`,
    expect: desktop('Edge 131 on Windows', 'Edge', 'Windows'),
  },
  {
    what: 'Opera on Windows',
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0',
    expect: desktop('Opera 115 on Windows', 'Opera', 'Windows'),
  },
  {
    what: 'Safari on iPhone (the model, not "iOS")',
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 ' +
      'Safari/604.1',
    expect: mobile('Safari on iPhone', 'Safari', 'iOS'),
  },
  {
    what: 'Chrome on iPhone',
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 ' +
      'Mobile/15E148 Safari/604.1',
    expect: mobile('Chrome 131 on iPhone', 'Chrome', 'iOS'),
  },
  {
    what: 'Safari on iPad',
    ua: 'Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1',
    expect: { name: 'Safari on iPad', browser: 'Safari', os: 'iOS', type: 'tablet' },
  },
  {
    what: 'Chrome on an Android phone (reduced UA)',
    ua: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
    expect: mobile('Chrome 131 on Android', 'Chrome', 'Android'),
  },
  {
    what: 'Chrome on a Pixel 8',
    ua: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36',
    expect: mobile('Chrome 131 on Android', 'Chrome', 'Android'),
  },
  {
    what: 'Samsung Internet',
    ua: 'Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 ' +
      'Mobile Safari/537.36',
    expect: mobile('Samsung Internet 26 on Android', 'Samsung Internet', 'Android'),
  },
  {
    what: 'Firefox on Android',
    ua: 'Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0',
    expect: mobile('Firefox 133 on Android', 'Firefox', 'Android'),
  },
  {
    what: 'Chrome on a Chromebook',
    ua: 'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    // ua-parser-js 1.x says "Chromium OS"; people call it ChromeOS.
    expect: desktop('Chrome 131 on ChromeOS', 'Chrome', 'ChromeOS'),
  },
  {
    what: 'headless Chrome counts as a bot',
    ua: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36',
    expect: bot('HeadlessChrome (bot)', 'Linux'),
  },
  { what: 'Googlebot', ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', expect: bot('Googlebot') },
  { what: 'bingbot', ua: 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', expect: bot('bingbot') },
  { what: 'curl', ua: 'curl/8.5.0', expect: bot('curl (bot)') },
  { what: 'python-requests', ua: 'python-requests/2.32.3', expect: bot('python-requests (bot)') },
  { what: 'an empty User-Agent', ua: '', expect: UNKNOWN },
  { what: 'a blank User-Agent', ua: '   \t ', expect: UNKNOWN },
  { what: 'no User-Agent at all', ua: undefined, expect: UNKNOWN },
  {
    what: 'a 15 KB User-Agent (cut before parsing)',
    ua: `${CHROME_WINDOWS} ${'A'.repeat(15 * 1024)}`,
    expect: desktop('Chrome 131 on Windows', 'Chrome', 'Windows'),
  },
  { what: 'a 15 KB User-Agent of junk', ua: `${'X('.repeat(7680)} Chrome/131.0.0.0`, expect: UNKNOWN },
  {
    what: 'an HTML/script payload alone',
    ua: 'Mozilla/5.0 <script>alert(1)</script><img src=x onerror="window.__xss=1">',
    expect: UNKNOWN,
  },
  {
    what: 'an HTML payload appended to a real User-Agent',
    ua: `${CHROME_WINDOWS} <img src=x onerror="window.__xss=1"><svg onload=alert(1)>`,
    expect: desktop('Chrome 131 on Windows', 'Chrome', 'Windows'),
  },
  {
    what: 'an HTML payload in place of the browser',
    ua: 'Mozilla/5.0 (Windows NT 10.0) <b>Firefox</b>/1',
    expect: { name: 'Unknown browser on Windows', browser: null, os: 'Windows', type: 'desktop' },
  },
  {
    what: 'control and bidi characters (U+202E, U+0000, \\n) around a real User-Agent',
    ua: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\u202e\u0000\n',
    expect: desktop('Firefox 133 on Linux', 'Firefox', 'Linux'),
  },
  {
    what: 'control and bidi characters inside the tokens',
    ua: 'Mozilla/5.0 (Linux; Android 14; \u202eSM-S918B\u0000) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/1\u2066\u202e31.0.0.0\r\n ' +
      'Mobile Safari/537.36',
    expect: mobile('Chrome 1 on Android', 'Chrome', 'Android'),
  },
  {
    what: 'a made-up browser with bidi and NUL characters',
    ua: 'Evil\u202eBrowser\u0000/1.0\n(Windows NT 10.0)',
    expect: { name: 'Unknown browser on Windows', browser: null, os: 'Windows', type: 'desktop' },
  },
];

t.test('parseDevice turns real and hostile User-Agents into short, inert, recognisable names', async (t) => {
  for (const c of cases) {
    const d = parseDevice(c.ua);
    t.same(d, c.expect, c.what);
    t.ok(d.name.length > 0 && d.name.length <= 80, `${c.what}: name is 1-80 characters (${d.name.length})`);
    for (const [k, v] of Object.entries(d)) {
      if (v === null) continue;
      t.type(v, 'string', `${c.what}: ${k} is a string or null`);
      t.notMatch(v, UNSAFE, `${c.what}: ${k} has no control or bidi characters`);
      t.ok(v.length <= 80, `${c.what}: ${k} is short`);
    }
    t.notMatch(d.name, /[<>]/, `${c.what}: no markup in the name`);
  }
});

t.test('a clear browser and OS are never shown as "Unknown device"', async (t) => {
  for (const c of cases) {
    const d = parseDevice(c.ua);
    if (d.browser !== null && d.os !== null) t.not(d.name, 'Unknown device', c.what);
  }
});

t.test('maxLength cuts the User-Agent before it is parsed', async (t) => {
  const ua = `${'A'.repeat(100)} ${CHROME_WINDOWS}`;
  t.equal(parseDevice(ua).browser, 'Chrome', 'the default 512 characters reach the browser token');
  t.same(parseDevice(ua, 64), UNKNOWN, 'cut at 64 characters, nothing is left to recognise');
});

t.test('parseDevice answers a thousand hostile 15 KB User-Agents quickly (no catastrophic backtracking)', async (t) => {
  const hostile = ['('.repeat(15 * 1024), `Mozilla/5.0 (${';'.repeat(15 * 1024)}`, `${'a/1 '.repeat(3840)}`, `${' '.repeat(15 * 1024)}x`];
  const started = performance.now();
  for (let i = 0; i < 250; i++) for (const ua of hostile) parseDevice(ua);
  const ms = performance.now() - started;
  t.ok(ms < 5000, `1,000 parses took ${ms.toFixed(0)} ms`);
});

t.test('a crawler that copies a phone\'s User-Agent is still a bot', async (t) => {
  const d = parseDevice('Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)');
  t.equal(d.type, 'bot');
  t.equal(d.name, 'Googlebot');
});
