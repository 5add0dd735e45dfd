// The cookie scan (lib/core/token.ts: readCookie and tokenAt share one in-place scan) and the
// Set-Cookie line (lib/core/cookie.ts), on plain strings.
import t from 'tap';
import { setCookieLine } from '../../lib/core/cookie.js';
import type { ResolvedCookie } from '../../lib/core/options.js';
import { ID_LENGTH, TOKEN_LENGTH, readCookie, tokenAt } from '../../lib/core/token.js';

const TOKEN = `${'a'.repeat(ID_LENGTH)}.${'b'.repeat(TOKEN_LENGTH - ID_LENGTH - 1)}`;

t.test('readCookie: absent, present, empty', async (t) => {
  t.equal(readCookie('', 'sid'), undefined, 'empty header');
  t.equal(readCookie('a=1; b=2', 'sid'), undefined, 'absent');
  t.equal(readCookie('sid=x', 'sid'), 'x', 'alone');
  t.equal(readCookie('a=1; sid=x; b=2', 'sid'), 'x', 'in the middle');
  t.equal(readCookie('a=1;sid=x', 'sid'), 'x', 'no space after the semicolon');
  t.equal(readCookie('sid=', 'sid'), '', 'an empty value');
  t.equal(readCookie('sid=a=b', 'sid'), 'a=b', 'the value runs to the semicolon');
});

t.test('readCookie: only a whole name matches', async (t) => {
  t.equal(readCookie('sidx=1; xsid=2', 'sid'), undefined, 'a longer name is another cookie');
  t.equal(readCookie('sidx=1; sid=2', 'sid'), '2', 'the right one after a longer name');
  t.equal(readCookie('a=sid=3', 'sid'), undefined, 'the name inside another value');
  t.equal(readCookie('SID=4', 'sid'), undefined, 'names are case-sensitive');
  t.equal(readCookie('sid', 'sid'), undefined, 'a name without =');
  t.equal(readCookie('sid =5', 'sid'), undefined, 'a space before = (strict: not that cookie)');
});

t.test('readCookie: a duplicated cookie is null (ambiguous), wherever the copies are', async (t) => {
  t.equal(readCookie('sid=1; sid=2', 'sid'), null);
  t.equal(readCookie('sid=1; a=0; sid=1', 'sid'), null, 'even with the same value');
  t.equal(readCookie('a=0; sid=; sid=2', 'sid'), null, 'an empty first copy counts');
  t.equal(readCookie('sid=1;sid=2;sid=3', 'sid'), null);
});

t.test('readCookie: whitespace around pairs is skipped, none is decoded', async (t) => {
  t.equal(readCookie('   sid=x', 'sid'), 'x', 'leading spaces');
  t.equal(readCookie('\tsid=x', 'sid'), 'x', 'a leading tab');
  t.equal(readCookie('a=1;  \t sid=x  ; b=2', 'sid'), 'x', 'spaces and tabs on both sides');
  t.equal(readCookie('sid=x \t', 'sid'), 'x', 'trailing whitespace at the end of the header');
  t.equal(readCookie('sid=a b', 'sid'), 'a b', 'inner whitespace is kept');
  t.equal(readCookie('sid="x"', 'sid'), '"x"', 'quotes are kept (no decoding)');
  t.equal(readCookie('sid=a%20b', 'sid'), 'a%20b', 'no percent-decoding');
});

t.test('readCookie: malformed headers', async (t) => {
  t.equal(readCookie(';;;', 'sid'), undefined);
  t.equal(readCookie('; ; sid=x;;', 'sid'), 'x', 'empty pairs around it');
  t.equal(readCookie('=x; sid=y', 'sid'), 'y', 'a pair without a name');
  t.equal(readCookie('sid=x;', 'sid'), 'x', 'a trailing semicolon');
});

t.test('tokenAt: where a value of a token\'s length starts, -1 otherwise', async (t) => {
  t.equal(tokenAt(`sid=${TOKEN}`, 'sid'), 4);
  const h = `a=1; sid=${TOKEN}; b=2`;
  t.equal(tokenAt(h, 'sid'), 9);
  t.equal(h.slice(9, 9 + TOKEN_LENGTH), TOKEN);
  t.equal(tokenAt(`sid=${TOKEN}  `, 'sid'), 4, 'trailing whitespace does not count toward the length');
  t.equal(tokenAt('sid=short', 'sid'), -1, 'another length');
  t.equal(tokenAt(`sid=${TOKEN}x`, 'sid'), -1, 'one character too long');
  t.equal(tokenAt(`sid="${TOKEN}"`, 'sid'), -1, 'quoted');
  t.equal(tokenAt(`sid=${TOKEN}; sid=${TOKEN}`, 'sid'), -1, 'duplicated');
  t.equal(tokenAt(`sid=${TOKEN}; a=1; sid=x`, 'sid'), -1, 'duplicated with another value');
  t.equal(tokenAt('a=1', 'sid'), -1, 'absent');
});

const COOKIE: ResolvedCookie = { name: 'sid', secure: true, httpOnly: true, sameSite: 'lax', path: '/', domain: undefined };

t.test('setCookieLine: attributes and Max-Age', async (t) => {
  t.equal(setCookieLine(COOKIE, 'v', null), 'sid=v; Path=/; HttpOnly; Secure; SameSite=Lax', 'a browser-session cookie: no Max-Age');
  t.equal(setCookieLine(COOKIE, 'v', 90_999), 'sid=v; Max-Age=90; Path=/; HttpOnly; Secure; SameSite=Lax', 'whole seconds, rounded down');
  t.equal(setCookieLine(COOKIE, '', 0), 'sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; Secure; SameSite=Lax',
    'cleared');
  t.equal(setCookieLine(COOKIE, '', -5000),
    'sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; Secure; SameSite=Lax', 'negative: cleared');
  t.equal(setCookieLine(COOKIE, 'v', 999),
    'sid=v; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; Secure; SameSite=Lax', 'under a second: cleared');
  t.equal(
    setCookieLine({ name: '__Host-s', secure: false, httpOnly: false, sameSite: 'strict', path: '/app', domain: 'example.com' }, 'v', null),
    '__Host-s=v; Path=/app; Domain=example.com; SameSite=Strict',
  );
  t.match(setCookieLine({ ...COOKIE, sameSite: 'none' }, 'v', null), /; SameSite=None$/);
});
