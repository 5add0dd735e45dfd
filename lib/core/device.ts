import UAParser from 'ua-parser-js';

/** What the device list shows about a session's browser, parsed once at sign-in. */
export interface DeviceInfo {
  /** A name a person recognises: "Chrome 131 on macOS", "Safari on iPhone", "Unknown device". */
  name: string;
  /** Browser name and major version ("Chrome 131"), or null when unknown. */
  browser: string | null;
  /** Operating system ("macOS", "Windows 11", "iOS 18"), or null when unknown. */
  os: string | null;
  /** 'desktop', 'mobile', 'tablet', 'bot', … or null when unknown. */
  type: string | null;
}

const FIELD_MAX = 40;
const NAME_MAX = 80;
// C0/C1 controls (\p{Cc}), bidi overrides and isolates, zero-width characters, line/paragraph separators.
const UNSAFE = /[\p{Cc}\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/ug;
const BOT = /bot|crawl|spider|slurp|headless|curl|wget|python-requests|httpclient|go-http-client|okhttp/i;
const DESKTOP_OS = new Set(['Windows', 'macOS', 'Linux', 'Ubuntu', 'Debian', 'Fedora', 'ChromeOS', 'FreeBSD']);
// What names a bot or tool: "Googlebot/2.1" → Googlebot; else the leading product, "curl/8.4.0" → curl.
// Linear in the User-Agent's length: a match may only start where a word starts (the
// lookbehind), and a name is at most 48 characters before its suffix. (An unbounded
// `[A-Za-z][A-Za-z0-9._-]*bot` retries from every position of a long word: quadratic.)
const BOT_WORD = /(?<![A-Za-z0-9._-])([A-Za-z][A-Za-z0-9._-]{0,48}?(?:bot|spider|crawler|slurp)|HeadlessChrome)\b/i;
const PRODUCT = /^(?!Mozilla\/)([A-Za-z][A-Za-z0-9._-]{1,30})\//;

function clean(s: string | undefined, max = FIELD_MAX): string | null {
  if (!s) return null;
  const t = s.replace(UNSAFE, '').replace(/\s+/g, ' ').trim();
  if (!t) return null;
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

function browserName(n: string | undefined): string | undefined {
  if (!n) return n;
  return n.replace(/^Mobile /, '').replace(/ WebView$/, '');
}

function osName(n: string | undefined): string | undefined {
  if (n === 'Mac OS') return 'macOS';
  if (n === 'Chrome OS' || n === 'Chromium OS') return 'ChromeOS';
  return n;
}

/**
 * Parse a User-Agent into a short, inert device description. The input is cut to
 * `maxLength` first (the parser's regular expressions have had ReDoS advisories) and every
 * output field is stripped of control and bidi characters and capped in length.
 */
export function parseDevice(userAgent: string | undefined, maxLength = 512): DeviceInfo {
  const ua = typeof userAgent === 'string' ? userAgent.slice(0, maxLength) : '';
  // Most sign-ins come from a few hundred distinct User-Agents: remember recent answers.
  const hit = recent.get(ua);
  if (hit !== undefined) return { ...hit };
  const d = parse(ua);
  if (recent.size >= RECENT_MAX) recent.delete(recent.keys().next().value!);
  recent.set(ua, Object.freeze(d));
  return { ...d };
}

const RECENT_MAX = 1000;
const recent = new Map<string, Readonly<DeviceInfo>>();

function parse(ua: string): DeviceInfo {
  if (!ua.trim()) return { name: 'Unknown device', browser: null, os: null, type: null };
  const r = new UAParser(ua).getResult();
  const browser = clean(browserName(r.browser.name));
  const os = clean(osName(r.os.name));
  const major = clean(r.browser.version?.split('.')[0], 8);
  // A crawler that copies a phone's User-Agent is still a crawler.
  if (BOT.test(ua)) {
    const who = clean(BOT_WORD.exec(ua)?.[1] ?? PRODUCT.exec(ua)?.[1], 32);
    return { name: !who ? 'Bot' : /bot$/i.test(who) ? who : `${who} (bot)`, browser: null, os, type: 'bot' };
  }
  let type = clean(r.device.type, 16);
  if (!type && os && DESKTOP_OS.has(os)) type = 'desktop';

  // Apple's devices are better known by their model ("iPhone", "iPad") than by "iOS"; other
  // vendors' model strings are codes ("SM-S918B") that a person would not recognise.
  const model = r.device.type === 'mobile' || r.device.type === 'tablet' ? clean(r.device.model, 24) : null;
  const where = model && /^(iPhone|iPad|iPod)/.test(model) ? model : os;
  let name: string;
  if (browser && where) {
    // Safari's version says little to a person; Chrome's and Firefox's help tell devices apart.
    name = `${browser}${major && !/Safari/.test(browser) ? ` ${major}` : ''} on ${where}`;
  } else if (browser) name = browser;
  else if (where) name = `Unknown browser on ${where}`;
  else name = 'Unknown device';
  return { name: clean(name, NAME_MAX) ?? 'Unknown device', browser, os, type };
}
