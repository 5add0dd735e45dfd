// The demo page. Every value from the server is rendered with textContent / createElement:
// a device name is whatever User-Agent signed in, so it is text, never HTML.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const signin = $('signin');
  const account = $('account');
  const form = $('login-form');
  const list = $('devices');
  const notices = $('notices');
  const history = $('history');
  const historySection = $('history-section');
  const historyMessage = $('history-message');
  const message = $('message');
  const nameForm = $('name-form');
  const confirmForm = $('confirm-form');
  let pendingName = null;

  function say(text, isError) {
    message.textContent = text || '';
    message.className = isError ? 'error' : '';
  }

  // fetch() on the same origin: the browser sends the session cookie and Sec-Fetch-Site/Origin,
  // which the server checks on every state-changing route.
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let data = null;
    if (res.status !== 204 && /json/.test(res.headers.get('content-type') || '')) data = await res.json();
    return { status: res.status, data };
  }

  function showForm(text, isError) {
    account.hidden = true;
    signin.hidden = false;
    list.replaceChildren();
    notices.replaceChildren();
    history.replaceChildren();
    historySection.hidden = true;
    $('username').textContent = '';
    say(text, isError);
    form.elements.username.focus();
  }

  function failed(res, what) {
    if (res.status === 401) return showForm('Your session has ended. Please sign in again.', true);
    const why = res.data && typeof res.data.message === 'string' ? res.data.message : `HTTP ${res.status}`;
    say(`${what} failed: ${why}`, true);
  }

  function ago(iso) {
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(s)) return 'unknown';
    if (s < 60) return 'just now';
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} days ago`;
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function deviceItem(s) {
    const li = el('li');
    li.dataset.id = s.id;
    if (s.current) li.dataset.current = 'true';

    const info = el('div');
    const name = el('div', 'device-name', s.device.name);
    if (s.current) name.append(el('span', 'badge', 'this device'));
    if (s.remembered === false) name.append(el('span', 'badge', 'not remembered'));
    const kind = [s.device.browser, s.device.os, s.device.type].filter(Boolean).join(' · ') || 'unknown browser';
    const where = [s.ip ? `IP ${s.ip}` : null, s.country].filter(Boolean).join(', ') || 'unknown location';
    const active = el('div', 'device-meta', `Last active ${ago(s.lastActiveAt)}`);
    active.title = s.lastActiveAt;
    info.append(name, el('div', 'device-meta', kind), el('div', 'device-meta', where), active);
    li.append(info);

    if (!s.current) {
      const b = el('button', null, 'Sign out');
      b.type = 'button';
      b.addEventListener('click', () => revoke(s, b));
      li.append(b);
    }
    return li;
  }

  // New sign-ins: every other session of this user signed in from a device new to them (the
  // package's `newDevice`) in the last NEW_SIGN_IN_MS. The device list is read again every couple
  // of seconds, so a sign-in elsewhere shows here without a reload.
  const NEW_SIGN_IN_MS = 10 * 60_000;

  function signedInAgo(iso) {
    const min = Math.floor((Date.now() - Date.parse(iso)) / 60_000);
    return min < 1 ? 'just now' : min === 1 ? '1 minute ago' : `${min} minutes ago`;
  }

  function noticeItem(s) {
    const li = el('li');
    li.dataset.id = s.id;
    const info = el('div');
    info.append(
      el('div', 'notice-title', `New sign-in: ${s.device.name}, ${signedInAgo(s.createdAt)}`),
      el('div', 'device-meta', [s.ip ? `IP ${s.ip}` : null, s.country].filter(Boolean).join(', ') || 'unknown location'),
      el('div', 'device-meta', `A real app would also email: "New sign-in to your account from ${s.device.name}. If this wasn't you, ` +
        'sign that device out and change your password."'),
    );
    const b = el('button', 'danger', 'This wasn\'t me');
    b.type = 'button';
    b.addEventListener('click', () => revoke(s, b));
    li.append(info, b);
    return li;
  }

  function showNotices(sessions) {
    const now = Date.now();
    notices.replaceChildren(...sessions.filter((s) => !s.current && s.newDevice === true &&
      now - Date.parse(s.createdAt) < NEW_SIGN_IN_MS).map(noticeItem));
  }

  /** The device list again, for the notices only: a failure (Redis away, the session ended) waits for the next round or action. */
  async function pollNotices() {
    if (account.hidden) return;
    try {
      const res = await api('GET', '/sessions');
      if (res.status === 200 && !account.hidden) showNotices(res.data.sessions);
    } catch { /* the next round */ }
  }
  setInterval(pollNotices, 2000);

  // Why a session ended, as a person would say it (the reason's code follows in brackets).
  const ENDED = {
    'sign-out': 'signed out',
    revoked: 'signed out from another device',
    everywhere: 'signed out everywhere',
    cap: 'too many sessions: the oldest was signed out',
    replaced: 'replaced by a new sign-in',
    expired: 'expired',
  };

  function historyItem(s) {
    const li = el('li');
    li.dataset.id = s.id;
    li.dataset.state = s.endReason || 'active';
    if (s.current) li.dataset.current = 'true';

    const info = el('div');
    const name = el('div', 'device-name', s.device.name);
    if (s.current) name.append(el('span', 'badge', 'this device'));
    const where = [s.ip ? `IP ${s.ip}` : null, s.country].filter(Boolean).join(', ') || 'unknown location';
    const started = el('div', 'device-meta', `Signed in ${ago(s.createdAt)}`);
    started.title = s.createdAt || '';
    const active = el('div', 'device-meta', `Last active ${ago(s.lastActiveAt)}`);
    active.title = s.lastActiveAt || '';
    info.append(name, el('div', 'device-meta', where), started, active);

    let state;
    if (s.endedAt) {
      const why = Object.hasOwn(ENDED, s.endReason) ? ENDED[s.endReason] : 'ended';
      state = el('div', 'state ended', `Ended ${ago(s.endedAt)}: ${why} (${s.endReason})`);
      state.title = s.endedAt;
    } else state = el('div', 'state', 'Active');
    li.append(info, state);
    return li;
  }

  // The history comes from PostgreSQL: 404 when the server has no audit trail (then the section
  // stays hidden); a failure here never hides the device list.
  async function loadHistory() {
    const res = await api('GET', '/sessions/history');
    if (res.status === 404) {
      historySection.hidden = true;
      return;
    }
    historySection.hidden = false;
    if (res.status === 200) {
      history.replaceChildren(...res.data.sessions.map(historyItem));
      historyMessage.hidden = true;
    } else {
      historyMessage.textContent = res.status === 401 ? '' : `History unavailable (HTTP ${res.status}).`;
      historyMessage.hidden = false;
    }
  }

  let historyAgain = null;
  /** Now, and once more a moment later: the audit trail is written within a second or so of a change. */
  function refreshHistory() {
    clearTimeout(historyAgain);
    loadHistory().catch(() => {});
    historyAgain = setTimeout(() => { if (!account.hidden) loadHistory().catch(() => {}); }, 1500);
  }

  async function refresh() {
    const me = await api('GET', '/me');
    if (me.status !== 200) return me.status === 401 ? showForm() : failed(me, 'Loading your account');
    const res = await api('GET', '/sessions');
    if (res.status !== 200) return failed(res, 'Loading your devices');
    $('username').textContent = me.data.userId;
    $('display-name').textContent = me.data.displayName || 'not set';
    list.replaceChildren(...res.data.sessions.map(deviceItem));
    showNotices(res.data.sessions);
    signin.hidden = true;
    account.hidden = false;
    refreshHistory();
  }

  async function revoke(s, button) {
    button.disabled = true;
    const res = await api('DELETE', `/sessions/${encodeURIComponent(s.id)}`);
    if (res.status === 204 || res.status === 404) {
      say(res.status === 204 ? `Signed out ${s.device.name}.` : 'That device was already signed out.');
      return refresh();
    }
    button.disabled = false;
    failed(res, 'Signing that device out');
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const res = await api('POST', '/login', {
        username: form.elements.username.value,
        password: form.elements.password.value,
        remember: form.elements.remember.checked,
      });
      if (res.status === 200) {
        form.reset();
        say('');
        await refresh();
      } else if (res.status === 401) say('Wrong username or password.', true);
      else failed(res, 'Signing in');
    } finally {
      button.disabled = false;
    }
  });

  $('logout').addEventListener('click', async () => {
    const res = await api('POST', '/logout');
    if (res.status === 204 || res.status === 401) showForm('Signed out.');
    else failed(res, 'Signing out');
  });

  $('logout-everywhere').addEventListener('click', async () => {
    const res = await api('POST', '/sessions/logout-everywhere', {});
    if (res.status === 200) {
      const n = res.data.revoked;
      showForm(`Signed out everywhere (${n} ${n === 1 ? 'session' : 'sessions'}).`);
    } else failed(res, 'Signing out everywhere');
  });

  // Changing the display name is a sensitive action: the server answers 403
  // …_REAUTHENTICATION_REQUIRED when the sign-in is not recent; then the page asks for the
  // password, confirms it, and retries.
  async function saveName(displayName) {
    const res = await api('POST', '/account/display-name', { displayName });
    if (res.status === 200) {
      pendingName = null;
      nameForm.hidden = true;
      confirmForm.hidden = true;
      $('display-name').textContent = res.data.displayName;
      say('Display name changed.');
    } else if (res.status === 403 && res.data && res.data.code === 'ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED') {
      pendingName = displayName;
      nameForm.hidden = true;
      confirmForm.hidden = false;
      confirmForm.elements.password.focus();
    } else failed(res, 'Changing the display name');
  }

  $('change-name').addEventListener('click', () => {
    confirmForm.hidden = true;
    nameForm.hidden = false;
    nameForm.elements.displayName.focus();
  });
  $('name-cancel').addEventListener('click', () => { nameForm.hidden = true; });
  $('confirm-cancel').addEventListener('click', () => { confirmForm.hidden = true; pendingName = null; });
  nameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    saveName(nameForm.elements.displayName.value);
  });
  confirmForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const res = await api('POST', '/account/confirm-password', { password: confirmForm.elements.password.value });
    confirmForm.reset();
    if (res.status === 204) {
      if (pendingName !== null) await saveName(pendingName);
    } else if (res.status === 401 && res.data && res.data.code === 'DEMO_WRONG_PASSWORD') say('Wrong password.', true);
    else failed(res, 'Confirming your password');
  });

  // The operations strip: GET /ops every 2 s (aggregates of this instance), the hit rate drawn
  // as a sparkline of its last 40 readings. Numbers only, written as text and SVG attributes.
  const hitRates = [];
  const spark = $('ops-spark').querySelector('polyline');
  function drawSpark() {
    const n = hitRates.length;
    spark.setAttribute('points', hitRates.map((v, i) =>
      `${n === 1 ? 120 : (i * 120 / (n - 1)).toFixed(1)},${(22 - v * 20).toFixed(1)}`).join(' '));
  }
  async function operations() {
    try {
      const res = await api('GET', '/ops');
      if (res.status !== 200 || res.data === null) return;
      const o = res.data;
      if (typeof o.hitRatio === 'number') {
        $('ops-hit').textContent = `${(o.hitRatio * 100).toFixed(1)} %`;
        hitRates.push(Math.min(1, Math.max(0, o.hitRatio)));
        if (hitRates.length > 40) hitRates.shift();
        drawSpark();
      }
      if (typeof o.revocationP99Ms === 'number') {
        const p99 = o.revocationP99Ms;
        $('ops-revocation').textContent = `${p99 < 1 ? p99.toFixed(2) : p99.toFixed(0)} ms`;
      }
      if (typeof o.l1Entries === 'number') $('ops-l1').textContent = String(o.l1Entries);
    } catch { /* the strip waits for the next reading */ }
  }
  operations();
  setInterval(operations, 2000);

  refresh().catch((err) => say(`Could not reach the server: ${err.message}`, true));
})();
