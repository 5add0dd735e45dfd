// The cross-site rule on plain header values (lib/core/cross-site.ts), decided as Go's
// net/http.CrossOriginProtection decides it. Both adapters feed it the same facts; the routes
// tests drive it over HTTP on each.
import t from 'tap';
import { isCrossSite, type CrossSiteFacts } from '../../lib/core/cross-site.js';

const allowed = new Set(['https://trusted.example']);
const req = (over: Partial<CrossSiteFacts>): CrossSiteFacts =>
  ({ method: 'POST', origin: undefined, secFetchSite: undefined, host: 'example.com', ...over });

t.test('Sec-Fetch-Site decides first: same-origin and none pass, cross-site and same-site are refused unless the Origin is listed',
  async (t) => {
  const cases: [Partial<CrossSiteFacts>, boolean, string][] = [
    [{ secFetchSite: 'same-origin' }, false, 'same-origin'],
    [{ secFetchSite: 'none' }, false, 'none (typed URL, bookmark)'],
    [{ secFetchSite: 'same-origin', origin: 'https://elsewhere.example' }, false,
      'same-origin even with an Origin the Host does not match (a proxy rewrote Host)'],
    [{ secFetchSite: 'same-origin', origin: 'https://app.example.com', host: '10.0.0.5:3000' }, false,
      'a TLS-terminating proxy without trustProxy'],
    [{ secFetchSite: 'cross-site' }, true, 'cross-site'],
    [{ secFetchSite: 'same-site', origin: 'https://sub.example.com' }, true, 'same-site (a sibling subdomain is another origin)'],
    [{ secFetchSite: 'cross-site', origin: 'https://example.com' }, true, 'cross-site even when the Origin matches the Host'],
    [{ secFetchSite: 'cross-site', origin: 'https://trusted.example' }, false, 'cross-site from a listed origin'],
    [{ secFetchSite: 'cross-site', origin: 'https://TRUSTED.example' }, false, 'a listed origin in another case'],
    [{ secFetchSite: 'something-new' }, true, 'an unknown value is refused'],
  ];
  for (const [over, refused, why] of cases) t.equal(isCrossSite(req(over), allowed), refused, `${refused ? 'refused' : 'passes'}: ${why}`);
});

t.test('without Sec-Fetch-Site, the Origin\'s host[:port] is compared with the Host header, scheme ignored', async (t) => {
  const cases: [Partial<CrossSiteFacts>, boolean, string][] = [
    [{}, false, 'neither header (not a browser)'],
    [{ origin: 'https://example.com' }, false, 'https Origin, plain-HTTP app with the same Host'],
    [{ origin: 'http://example.com' }, false, 'http Origin, same Host'],
    [{ origin: 'http://example.com:8080', host: 'example.com:8080' }, false, 'same host and port'],
    [{ origin: 'http://example.com:8080' }, true, 'another port'],
    [{ origin: 'https://evil.example' }, true, 'another host'],
    [{ origin: 'https://example.com.evil.example' }, true, 'a host that only starts like ours'],
    [{ origin: 'null' }, true, 'an opaque origin'],
    [{ origin: 'https://example.com/path' }, true, 'not a serialised origin'],
    [{ origin: 'https://EXAMPLE.com' }, false, 'host compared case-insensitively'],
    [{ origin: 'https://trusted.example' }, false, 'a listed origin'],
    [{ origin: 'https://example.com', host: undefined }, true, 'an Origin but no Host to compare with'],
  ];
  for (const [over, refused, why] of cases) t.equal(isCrossSite(req(over), allowed), refused, `${refused ? 'refused' : 'passes'}: ${why}`);
});

t.test('GET, HEAD and OPTIONS never change state and always pass', async (t) => {
  for (const method of ['GET', 'HEAD', 'OPTIONS']) {
    t.equal(isCrossSite(req({ method, secFetchSite: 'cross-site', origin: 'https://evil.example' }), allowed), false, method);
  }
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    t.equal(isCrossSite(req({ method, secFetchSite: 'cross-site', origin: 'https://evil.example' }), allowed), true, method);
  }
});
