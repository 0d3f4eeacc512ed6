// The web console's script (served at /console.js): plain JavaScript run as is by the browser, no
// framework and no build step (the page is a few views of one JSON snapshot; a framework would be
// more code than the views). It logs in (POST /api/v1/login: a session cookie), follows the live
// stream (/api/v1/console/stream, server-sent events), draws the cluster, farm, mirror, events and
// log views, and calls the API's own commands with a confirmation saying what each will do.
// Kept as a string here (String.raw: backslashes as written) so that dist/ and the .deb carry it
// with the code; it holds no backquote and no dollar-brace.
export const consoleJs = String.raw`'use strict';
// croft web console (served at /console.js): plain DOM, no framework. Reads the live stream
// (/api/v1/console/stream, server-sent events) and calls the API's commands as the CLI does.
const $ = (s) => document.querySelector(s);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const H = { 'x-croft-console': '1' };
const RANK = { viewer: 0, operator: 1, admin: 2 };
let me = null, snap = null, events = [], logLines = [], stream = null, lastHit = null, whoResult = null;
const filters = { module: '', node: '', kind: '' };
let logFilter = '';

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { ...H } };
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  const r = await fetch(path, init);
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  return { ok: r.ok, status: r.status, body: j };
}

const badge = (s, known) => '<span class="s ' + esc(s) + '"' + (known === false ? ' title="not known: that node is down or has not announced it"' : '') + '>' + esc(s) + (known === false ? '?' : '') + '</span>';
const bytes = (n) => { if (n === null || n === undefined) return '-'; const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0; let v = n; while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (i ? v.toFixed(1) : v) + ' ' + u[i]; };
const dur = (ms) => { if (ms === null || ms === undefined) return '-'; if (ms < 1000) return ms + ' ms'; const s = Math.round(ms / 1000); return s < 120 ? s + ' s' : Math.floor(s / 60) + ' min ' + (s % 60) + ' s'; };
const ago = (t) => { const d = Date.now() - t; return d < 0 ? 'now' : dur(d) + ' ago'; };
const p2 = (n, w) => String(n).padStart(w || 2, '0');
const time = (iso) => { const d = new Date(iso); const today = d.toDateString() === new Date().toDateString();
  return (today ? '' : d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + ' ') + p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + '.' + p2(d.getMilliseconds(), 3); };
const self = () => (snap ? snap.status.node : me && me.node);

// ---- login --------------------------------------------------------------------------------
async function boot() {
  const r = await api('GET', '/api/v1/whoami');
  if (!r.ok) return showLogin(r.status === 401 ? '' : (r.body && r.body.message) || 'HTTP ' + r.status);
  me = r.body;
  if (!$('#self')) { location.reload(); return; } // logged in by cookie on a login page: get the names
  $('#who').textContent = me.who + ' (' + me.role + ')';
  $('#me').hidden = false;
  $('#nav').hidden = false;
  connect();
  window.addEventListener('hashchange', render);
  render();
}
function showLogin(msg) {
  const f = $('#login');
  f.hidden = false;
  $('#login-err').textContent = msg || '';
  f.onsubmit = async (e) => {
    e.preventDefault();
    const d = new FormData(f);
    const body = d.get('token') ? { token: d.get('token') } : { user: d.get('user'), password: d.get('password') };
    const r = await api('POST', '/api/v1/login', body);
    if (!r.ok) { $('#login-err').textContent = (r.body && r.body.message) || 'HTTP ' + r.status; return; }
    location.reload();
  };
}
$('#logout').onclick = async () => { await api('POST', '/api/v1/logout'); if (stream) stream.close(); location.reload(); };

// ---- live stream --------------------------------------------------------------------------
function connect() {
  stream = new EventSource('/api/v1/console/stream');
  const live = $('#live');
  stream.onopen = () => { live.textContent = '● live'; live.className = ''; };
  stream.onerror = () => {
    live.textContent = '● disconnected, retrying'; live.className = 'off';
    // The browser retries a dropped stream by itself, but not one refused (a session that ended):
    // then ask who we are; logged out, the login page; else open it again.
    if (stream.readyState !== EventSource.CLOSED) return;
    setTimeout(async () => {
      const r = await api('GET', '/api/v1/whoami').catch(() => ({ status: 0 }));
      if (r.status === 401) location.reload(); else connect();
    }, 2000);
  };
  stream.addEventListener('snapshot', (e) => { snap = JSON.parse(e.data); $('#err').textContent = ''; render(); });
  stream.addEventListener('problem', (e) => { $('#err').textContent = JSON.parse(e.data).message; });
  stream.addEventListener('events', (e) => { events = JSON.parse(e.data); if (view().name === 'events') render(); });
  stream.addEventListener('event', (e) => { events.push(JSON.parse(e.data)); if (events.length > 2000) events.splice(0, events.length - 2000); if (view().name === 'events') render(); });
  stream.addEventListener('log', (e) => {
    const d = JSON.parse(e.data);
    if (Array.isArray(d)) logLines = d; else logLines.push(d);
    if (logLines.length > 1000) logLines.splice(0, logLines.length - 1000);
    const v = view().name;
    if (v === 'log') renderLog(); else if (v === 'events') render();
  });
}

// ---- actions ------------------------------------------------------------------------------
const ACTIONS = {
  start: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/start',
  stop: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/stop',
  restart: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/restart',
  prim: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/prim',
  second: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/second',
  swap: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/swap',
  verify: (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/mirror/verify',
  'maintenance-on': (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/maintenance/on',
  'maintenance-off': (m) => '/api/v1/modules/' + encodeURIComponent(m) + '/maintenance/off',
};
function actionsFor(m) {
  const kind = snap.status.modules[m].kind;
  const base = kind === 'mirror' ? ['start', 'stop', 'restart', 'prim', 'second', 'swap', 'verify'] : ['start', 'stop', 'restart'];
  return base.concat(inMaint(m) ? ['maintenance-off'] : ['maintenance-on']);
}
function others(m) { return Object.keys(snap.status.modules[m].nodes).filter((n) => n !== self()); }
/** What an action will do, in words (the confirmation). */
function describe(a, m) {
  const kind = snap.status.modules[m].kind, me_ = self(), rest = others(m).join(', ') || 'no other node';
  const st = (snap.status.modules[m].nodes[me_] || {}).state;
  const peer = kind === 'mirror' && snap.mirrors[m] ? snap.mirrors[m].peer : rest;
  const farm = snap.farms[m];
  const mine = farm ? (farm.map.map.filter((o) => o === me_).length) : 0;
  switch (a) {
    case 'swap': if (st !== 'PRIM') return 'swap is sent to the PRIM: ' + m + ' is ' + st + ' on ' + me_ + ', so this node will refuse it (open the PRIM\'s console to swap from there). Send it anyway?';
      return 'swap moves ' + m + ' to ' + peer + ': the application stops on ' + me_ + ' and starts on ' + peer + ', which becomes PRIM; clients reconnect.';
    case 'prim': return me_ + ' becomes the primary of ' + m + ': the application starts here (its data wins); ' + peer + ' follows as SECOND after a reintegration.';
    case 'second': return me_ + ' hands ' + m + ' over to ' + peer + ': the application stops here and starts on ' + peer + '; clients reconnect.';
    case 'verify': if (st !== 'PRIM') return 'verify runs on the PRIM: ' + m + ' is ' + st + ' on ' + me_ + ', so this node will refuse it. Send it anyway?';
      return 'verify ' + m + ': every file on ' + me_ + ' and ' + peer + ' is compared by checksum (reads all the data; the application keeps running; runs on the PRIM only).';
    case 'maintenance-on': return 'maintenance of ' + m + ' on ' + me_ + ': its checkers stop acting (no restart, no failover) until maintenance is turned off.';
    case 'maintenance-off': return 'end the maintenance of ' + m + ' on ' + me_ + ': its checkers act again (a failing one restarts or fails over).';
  }
  let what;
  if (kind === 'farm') what = a === 'start' ? me_ + ' joins the farm and takes its share of the buckets back from ' + rest + '.' : me_ + ' leaves the farm: its ' + mine + ' buckets move to ' + rest + '; the clients it served reconnect there.';
  else if (kind === 'mirror') what = a === 'start' ? me_ + ' starts ' + m + ': it waits for ' + peer + ', or joins as SECOND after a reintegration.'
    : (st === 'PRIM' || st === 'ALONE' ? 'the application stops on ' + me_ + (st === 'PRIM' ? '; ' + peer + ' takes over ALONE; clients reconnect.' : ': nobody serves ' + m + ' until it starts again.')
      : me_ + ' stops replicating ' + m + '; ' + peer + ' runs without a copy.');
  else what = a === 'start' ? m + ' starts on ' + me_ + '.' : m + ' stops on ' + me_ + (rest !== 'no other node' ? '; ' + rest + ' may take it over.' : '.');
  if (a === 'restart') return 'restart ' + m + ' on ' + me_ + ': stop, then start. ' + (kind === 'mirror' && st === 'PRIM' ? 'The application moves to ' + peer + ' while this node restarts.' : 'Meanwhile: ' + what);
  return a + ' ' + m + ' on ' + me_ + ': ' + what;
}
function confirmThen(text) {
  return new Promise((resolve) => {
    const d = $('#confirm');
    $('#confirm-text').textContent = text;
    d.onclose = () => resolve(d.returnValue === 'ok');
    d.returnValue = '';
    d.showModal();
  });
}
async function act(a, m) {
  if (!(await confirmThen(describe(a, m)))) return;
  const res = $('#result');
  res.hidden = false; res.className = ''; res.textContent = a + ' ' + m + ' on ' + self() + ': sent…';
  const r = await api('POST', ACTIONS[a](m));
  const b = r.body || {};
  if (r.ok) {
    res.className = 'ok';
    res.textContent = a + ' ' + m + ' on ' + self() + ': ' + (r.status === 202 ? 'accepted' : 'done') +
      (a === 'verify' ? ' — ' + (b.identical ? 'identical' : (b.differences + ' difference(s)')) + ' (' + b.entriesCompared + ' entries, ' + dur(b.durationMs) + ')' : '') +
      (b.changed === false ? ' (nothing to change)' : '');
  } else {
    res.className = 'bad';
    res.textContent = a + ' ' + m + ' on ' + self() + ': refused (' + r.status + (b.error ? ' ' + b.error : '') + '): ' + (b.message || '');
  }
}
function buttons(m) {
  const can = me && RANK[me.role] >= 1;
  return actionsFor(m).map((a) => '<button type="button" class="act' + (can ? '' : ' locked') + '" data-act="' + esc(a) + '" data-module="' + esc(m) + '"' +
    (can ? '' : ' title="your role (' + esc(me ? me.role : '?') + ') may not do this: it needs operator"') + '>' + esc(a.replace('-', ' ')) + '</button>').join('');
}
document.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-act]');
  if (b) act(b.dataset.act, b.dataset.module);
});
function inMaint(m) { const mt = snap.status.maintenance || { node: null, modules: {} }; return mt.node !== null || Object.prototype.hasOwnProperty.call(mt.modules, m); }

// ---- views --------------------------------------------------------------------------------
function view() {
  const h = location.hash.replace(/^#\/?/, '').split('/');
  return { name: h[0] || 'cluster', module: decodeURIComponent(h[1] || '') };
}
function nav() {
  const v = view();
  const links = [['cluster', '', 'Cluster']];
  for (const m of Object.keys(snap.farms)) links.push(['farm', m, 'Farm ' + m]);
  for (const m of Object.keys(snap.mirrors)) links.push(['mirror', m, 'Mirror ' + m]);
  links.push(['events', '', 'Events'], ['log', '', 'Log']);
  const html = links.map(([n, m, t]) => '<a href="#/' + n + (m ? '/' + encodeURIComponent(m) : '') + '" data-view="' + n + (m ? '-' + esc(m) : '') + '"' + (v.name === n && (v.module || '') === m ? ' class="on"' : '') + '>' + esc(t) + '</a>').join('');
  if ($('#nav').innerHTML !== html) $('#nav').innerHTML = html;
}
function render() {
  if (!snap) return;
  const st = snap.status;
  $('#view').textContent = 'view epoch ' + st.view.epoch + ' [' + st.view.members.join(' ') + ']' + (st.converged ? ' converged' : ' converging');
  $('#warn').textContent = (st.mixedVersions ? 'mixed versions (rolling upgrade under way?) ' : '') +
    (st.configMismatch || []).map((m) => 'config mismatch: ' + m.node + ' (' + m.differs.join(', ') + ')').join('; ');
  nav();
  const v = view();
  const c = $('#content');
  // Not under a click in progress or an open confirmation: the button would be replaced under it.
  if (pointerDown || $('#confirm').open) { renderLater = true; return; }
  c.dataset.view = v.name;
  if (v.name === 'farm' && snap.farms[v.module]) {
    // The who form is kept (a re-render must not wipe what is being typed): only the rest is redrawn.
    const html = farmView(v.module), live = c.querySelector('#farm-live');
    if (live && c.dataset.module === v.module) {
      const t = document.createElement('div'); t.innerHTML = html;
      live.replaceWith(t.querySelector('#farm-live'));
      $('#who-out').innerHTML = whoResult && whoResult.module === v.module ? whoText(whoResult) : '';
    } else c.innerHTML = html;
  }
  else if (v.name === 'mirror' && snap.mirrors[v.module]) c.innerHTML = mirrorView(v.module);
  else if (v.name === 'events') { if (!c.querySelector('#ev-table')) c.innerHTML = eventsShell(); fillEvents(); }
  else if (v.name === 'log') { if (!c.querySelector('pre.log')) { c.innerHTML = logShell(); } renderLog(); }
  else c.innerHTML = clusterView();
  c.dataset.module = v.module;
}
let pointerDown = false, renderLater = false;
document.addEventListener('pointerdown', () => { pointerDown = true; });
document.addEventListener('pointerup', () => { pointerDown = false; if (renderLater) { renderLater = false; setTimeout(render, 0); } });
$('#confirm').addEventListener('close', () => { if (renderLater) { renderLater = false; setTimeout(render, 0); } });
function lastCause(m) {
  for (let i = events.length - 1; i >= 0; i--) { const e = events[i]; if (e.module === m && (e.kind === 'state' || e.kind === 'failover' || e.kind === 'reintegration_done')) return e.cause; }
  return '';
}
function clusterView() {
  const st = snap.status, names = st.nodes.map((n) => n.name);
  let h = '<h2>Nodes</h2><div class="wrap"><table id="nodes"><tr><th>node</th><th>state</th><th>last heartbeat per LAN</th><th>version</th><th>config</th></tr>' +
    st.nodes.map((n) => '<tr data-node="' + esc(n.name) + '"><td>' + esc(n.name) + (n.self ? ' (this node)' : '') + '</td><td>' + badge(n.state) + '</td><td>' +
      (n.self ? '' : (n.lastHeardAgoMs || []).map((ms, i) => esc(st.lans[i]) + ': ' + (ms === null ? 'never' : ms + ' ms ago')).join(', ')) + '</td><td>' +
      (n.protocol == null ? '' : esc((n.package ? n.package + ' ' : '') + 'p' + n.protocol)) + '</td><td>' +
      (n.configSignature ? '<code title="signature of its cluster.yaml">' + esc(n.configSignature.slice(0, 8)) + '</code> ' : '') +
      (n.self ? 'reference' : n.configDiffers == null ? '' : n.configDiffers.length === 0 ? 'same' : '<span class="differs">differs: ' + esc(n.configDiffers.join(', ')) + '</span>') + '</td></tr>').join('') + '</table></div>';
  h += '<h2>Modules</h2><div class="wrap"><table id="modules"><tr><th>module</th><th>kind</th>' + names.map((n) => '<th>' + esc(n) + '</th>').join('') + '<th class="hide-s">last change here</th><th class="hide-s">actions on ' + esc(st.node) + '</th></tr>' +
    Object.entries(st.modules).map(([m, v]) => '<tr data-module="' + esc(m) + '"><td>' +
      (snap.farms[m] ? '<a href="#/farm/' + encodeURIComponent(m) + '">' + esc(m) + '</a>' : snap.mirrors[m] ? '<a href="#/mirror/' + encodeURIComponent(m) + '">' + esc(m) + '</a>' : esc(m)) +
      (v.nodes[st.node] && inMaint(m) ? ' <span class="s MAINT">maintenance</span>' : '') + '</td><td>' + esc(v.kind) + '</td>' +
      names.map((n) => '<td data-node="' + esc(n) + '">' + (v.nodes[n] ? badge(v.nodes[n].state, v.nodes[n].known) : '') + ((v.configDiffers || []).includes(n) ? ' <span class="differs">config differs</span>' : '') + '</td>').join('') +
      '<td class="hide-s muted">' + esc(lastCause(m)) + '</td><td class="hide-s">' + (v.nodes[st.node] ? buttons(m) : '') + '</td></tr>' +
      // On a phone the actions take a row of their own under the module.
      (v.nodes[st.node] ? '<tr class="show-s"><td colspan="' + (names.length + 2) + '">' + buttons(m) + '</td></tr>' : '')).join('') + '</table></div>';
  const mt = st.maintenance || { node: null, modules: {} };
  if (mt.node !== null) h += '<p class="differs">node ' + esc(st.node) + ' in maintenance since ' + esc(mt.node.since) + ' (' + esc(mt.node.by) + '): checkers and automatic failover suspended</p>';
  return h;
}
function colorOf(f, node) { const i = f.map.members.findIndex((x) => x.name === node); return i < 0 ? 'cn' : 'c' + (i % 8); }
function farmView(m) {
  const f = snap.farms[m], map = f.map, st = snap.status;
  let h = '<div id="farm-live"><h2>Farm ' + esc(m) + '</h2><p>vip ' + esc(map.vip === null ? 'none (cloud mode)' : map.vips.join(' ')) + ' · balance ' + esc(map.balance) + ' · ' + map.buckets + ' buckets · members (UP): ' +
    (map.members.map((x) => esc(x.name)).join(', ') || 'none') + '</p>';
  h += '<div class="wrap"><table id="farm-load"><tr><th>node</th><th>state</th><th>weight</th><th>buckets</th><th>share</th><th>connections</th></tr>' +
    Object.keys(st.modules[m].nodes).map((n) => { const l = map.load.find((x) => x.node === n); const s = st.modules[m].nodes[n];
      return '<tr data-node="' + esc(n) + '"><td><span class="sw ' + colorOf(f, n) + '"></span>' + esc(n) + '</td><td>' + badge(s.state, s.known) + '</td><td>' + (l ? l.weight : '-') + '</td><td class="nb">' + (l ? l.buckets : 0) + '</td><td>' + (l ? l.percent.toFixed(1) + '%' : '0%') + '</td><td>' +
        (n === st.node ? (f.connections === null ? '-' : f.connections) : peerConnections(n, m)) + '</td></tr>'; }).join('') +
    (map.unowned > 0 ? '<tr><td><span class="sw cn"></span>(none)</td><td></td><td></td><td>' + map.unowned + '</td><td colspan="2" class="bad">no owner: their clients get no answer</td></tr>' : '') + '</table></div>';
  h += '<div class="map" id="bucket-map">' + map.map.map((o, b) => '<i class="' + (o ? colorOf(f, o) : 'cn') + (whoResult && whoResult.module === m && whoResult.bucket === b ? ' hit' : '') + '" title="bucket ' + b + ': ' + esc(o || 'no owner') + '" data-owner="' + esc(o) + '"></i>').join('') + '</div>';
  h += '<h2>Actions on ' + esc(st.node) + '</h2><p>' + buttons(m) + '</p></div>';
  h += '<h2>Who serves this client?</h2><form class="who" id="who-form" data-module="' + esc(m) + '"><input name="client" placeholder="client IP address" value="' + esc(whoResult && whoResult.module === m ? whoResult.client : '') + '">' +
    (map.balance === 'source-ip-port' ? ' <input name="port" placeholder="port" size="6">' : '') + ' <button type="submit">find</button> <span id="who-out">' + (whoResult && whoResult.module === m ? whoText(whoResult) : '') + '</span></form>';
  return h;
}
function peerConnections(n, m) {
  const p = (snap.peers || {})[n];
  if (p && !p.problem && p.connections[m] !== undefined && p.connections[m] !== null) return String(p.connections[m]);
  return '<span class="muted" title="' + esc(p && p.problem ? p.problem : 'not read yet') + '">?</span>';
}
function peerProblems() {
  const ps = Object.entries(snap.peers || {}).filter(([, p]) => p.problem);
  return ps.length ? '<p class="muted" id="peer-problems">' + ps.map(([, p]) => esc(p.problem)).join('; ') + '</p>' : '';
}
function whoText(w) { return w.error ? '<span class="bad">' + esc(w.error) + '</span>' : '<b>' + esc(w.client) + (w.port !== null ? ' port ' + w.port : '') + '</b> → bucket ' + w.bucket + ' → <b class="who-node">' + esc(w.node || 'no node') + '</b>'; }
document.addEventListener('submit', async (e) => {
  if (e.target.id !== 'who-form') return;
  e.preventDefault();
  const d = new FormData(e.target), m = e.target.dataset.module;
  const q = new URLSearchParams({ client: d.get('client') || '' });
  if (d.get('port')) q.set('port', d.get('port'));
  const r = await api('GET', '/api/v1/farm/' + encodeURIComponent(m) + '/who?' + q);
  whoResult = r.ok ? { ...r.body, module: m } : { module: m, client: d.get('client'), error: (r.body && r.body.message) || 'HTTP ' + r.status };
  render();
});
function mirrorView(m) {
  const d = snap.mirrors[m], st = snap.status, pv = d.peerView, peerSt = (st.modules[m].nodes[d.peer] || {});
  const card = (node, state, role, gen, data, extra) => '<div class="card" data-node="' + esc(node) + '"><h3>' + esc(node) + (node === st.node ? ' (this node)' : '') + '</h3><dl class="kv">' +
    '<dt>state</dt><dd class="state">' + badge(state) + '</dd><dt>role</dt><dd class="role">' + esc(role) + '</dd><dt>data generation</dt><dd>' + esc(gen) + '</dd><dt>data</dt><dd>' + esc(data) + '</dd>' + (extra || '') + '</dl></div>';
  const roleOf = (s) => (s === 'PRIM' || s === 'ALONE' ? 'primary' : s === 'SECOND' ? 'secondary' : 'none');
  const peerState = pv ? pv.state : (peerSt.state || 'STOP');
  let h = '<h2>Mirror ' + esc(m) + '</h2><div class="cards">' +
    card(d.node, d.state, d.role, d.generation, d.data, '<dt>application</dt><dd>' + esc(d.application) + '</dd><dt>VIP</dt><dd>' + esc((d.vips || []).join(' ') || '-') + (d.vipHeld ? ' (held here)' : '') + '</dd><dt>cause</dt><dd>' + esc(d.cause) + '</dd>') +
    card(d.peer, peerState, roleOf(peerState), pv ? pv.generation : d.peerGeneration, pv ? (pv.dataUpToDate ? 'up to date' : 'not up to date') : 'not heard', pv ? '' : '<dt>link</dt><dd class="bad">peer not heard</dd>') + '</div>';
  const links = d.links || [];
  h += '<div class="cards"><div class="card"><h3>Replication</h3><dl class="kv"><dt>link</dt><dd id="link">' + (d.link ? '<span class="ok">connected</span>' : '<span class="bad">down</span>') +
    (!d.link && links.some((l) => l.lostReason) ? ' (' + esc(links.map((l) => l.lostReason).filter(Boolean).join('; ')) + ')' : '') + '</dd><dt>ack level</dt><dd>' + esc(d.ack) + '</dd><dt>mode</dt><dd>' + esc(d.mode) + '</dd>' +
    '<dt>dirty bytes</dt><dd id="dirty">' + (d.dirtyBytes === null ? '-' : bytes(d.dirtyBytes)) + '</dd><dt>dirs</dt><dd>' + esc(d.dirs.join(' ')) + '</dd>' +
    '<dt>reintegration cap</dt><dd>' + (d.resyncMaxBytesPerS ? bytes(d.resyncMaxBytesPerS) + '/s' : 'none') + '</dd></dl></div>';
  const r = d.reintegration;
  h += '<div class="card" id="reint"><h3>Reintegration</h3>';
  if (r && r.running) {
    const total = r.bytesCopied + r.bytesToGo, pct = total > 0 ? Math.floor((100 * r.bytesCopied) / total) : 0;
    h += '<p>' + esc(d.reintegrating) + ' · ' + (r.full ? 'full sync' : 'dirty zones') + ' · phase ' + esc(r.phase) + '</p><progress id="reint-bar" max="100" value="' + pct + '"></progress>' +
      '<p><b id="reint-pct">' + pct + '%</b> · ' + bytes(r.bytesCopied) + ' copied, ' + bytes(r.bytesToGo) + ' to go · ' + bytes(r.rateBytesPerSec) + '/s · ETA ' + (r.etaMs === null ? '-' : dur(r.etaMs)) + '</p>';
  } else h += '<p class="muted" id="reint-idle">' + (d.reintegrating !== 'none' ? esc(d.reintegrating) + ' (waiting)' : 'none running') + (r && r.error ? ' · last error: ' + esc(r.error) : '') + '</p>';
  const lr = d.lastReintegration;
  if (lr) h += '<p id="reint-last">last: ' + (lr.full ? 'full sync' : 'dirty zones') + ', ' + bytes(lr.bytesCopied) + ' copied in ' + dur(lr.durationMs) + ', finished ' + ago(lr.finishedAtMs) + '</p>';
  h += '<p class="muted">since start: ' + d.reintegrationTotals.done + ' done, ' + d.reintegrationTotals.failed + ' failed</p></div>';
  const v = d.verify.last;
  h += '<div class="card"><h3>Verify</h3><p id="verify-last">' + (v ? (v.identical === null ? '<span class="bad">could not finish: ' + esc(v.error) + '</span>' : v.identical ? '<span class="ok">identical</span>' : '<span class="bad">' + v.differences + ' difference(s)</span>') +
    ' · ' + v.entriesCompared + ' entries, ' + bytes(v.bytesCompared) + ' in ' + dur(v.durationMs) + ' · ' + ago(v.atMs) + (v.scheduled ? ' (scheduled)' : '') : 'never run since the daemon started') + '</p>' +
    '<p class="muted">' + (d.verify.everyMs ? 'scheduled every ' + dur(d.verify.everyMs) : 'on demand only') + '</p>' +
    '<h3>Quarantine</h3>' + (d.quarantine.length ? '<ul>' + d.quarantine.map((q) => '<li>' + esc(q) + '</li>').join('') + '</ul>' : '<p class="muted">none</p>') + '</div></div>';
  h += '<h2>Actions on ' + esc(st.node) + '</h2><p>' + buttons(m) + '</p>';
  return h;
}
// ---- events -------------------------------------------------------------------------------
function eventsShell() {
  return '<h2>Events</h2><div id="ev-peers"></div><div class="filters"><label>module <select id="f-module"></select></label><label>node <select id="f-node"></select></label><label>kind <select id="f-kind"></select></label></div>' +
    '<div class="wrap"><table id="ev-table"></table></div>';
}
function scriptRuns() {
  // Script runs from the log (start, output lines, end), folded into one row each.
  const runs = [], open = {};
  for (const l of logLines) {
    let j; try { j = JSON.parse(l); } catch (e) { continue; }
    if (!j.script || !j.module) continue;
    const k = j.module + '/' + j.script;
    if (j.msg === 'script start' || !open[k]) { open[k] = { kind: 'script', time: j.time, node: j.node, module: j.module, from: null, to: null, cause: j.script, out: [], end: '' }; runs.push(open[k]); if (j.msg === 'script start') continue; }
    if (j.stream) open[k].out.push(j.msg);
    else { open[k].end = j.msg + (j.code ? ' (' + j.code + ')' : ''); delete open[k]; }
  }
  return runs;
}
function fillEvents() {
  $('#ev-peers').innerHTML = peerProblems();
  const all = events.map((e) => ({ ...e })).concat(scriptRuns()).sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  const opts = (id, vals, cur) => { const el = $(id); const html = '<option value="">all</option>' + vals.map((v) => '<option' + (v === cur ? ' selected' : '') + '>' + esc(v) + '</option>').join(''); if (el.innerHTML !== html) el.innerHTML = html; };
  const uniq = (f) => Array.from(new Set(all.map(f).filter((x) => x))).sort();
  opts('#f-module', uniq((e) => e.module).concat(Object.keys(snap.status.modules)).filter((v, i, a) => a.indexOf(v) === i), filters.module);
  opts('#f-node', snap.status.nodes.map((n) => n.name), filters.node);
  opts('#f-kind', uniq((e) => e.kind), filters.kind);
  for (const k of ['module', 'node', 'kind']) $('#f-' + k).onchange = (e) => { filters[k] = e.target.value; fillEvents(); };
  const shown = all.filter((e) => (!filters.module || e.module === filters.module) && (!filters.node || e.node === filters.node || e.peer === filters.node) && (!filters.kind || e.kind === filters.kind)).reverse().slice(0, 500);
  $('#ev-table').innerHTML = '<tr><th>time</th><th>node</th><th>module</th><th>kind</th><th>change</th><th>cause</th></tr>' + shown.map((e) =>
    '<tr class="ev k-' + esc(e.kind) + '" data-kind="' + esc(e.kind) + '" data-module="' + esc(e.module || '') + '"><td>' + esc(time(e.time)) + '</td><td>' + esc(e.node) + '</td><td>' + esc(e.module || (e.peer ? 'peer ' + e.peer : 'node')) + '</td><td>' + esc(e.kind) + (e.checker ? ' ' + esc(e.checker) : '') + (e.suppressed ? ' (suppressed)' : '') +
    '</td><td>' + (e.from !== null || e.to !== null ? esc((e.from || '-') + ' → ' + (e.to || '-')) : '') + '</td><td class="cause">' + esc(e.cause) + (e.kind === 'script' ? ' · ' + esc(e.end || 'running') + (e.out.length ? '<pre class="out">' + esc(e.out.join('\n')) + '</pre>' : '') : '') + '</td></tr>').join('');
}
// ---- log ----------------------------------------------------------------------------------
function logShell() { return '<h2>Log of ' + esc(self()) + ' (live)</h2><div class="filters"><input id="log-filter" placeholder="filter (text)" value="' + esc(logFilter) + '"></div><pre class="log" id="log"></pre>'; }
function fmtLog(l) {
  try { const j = JSON.parse(l); const extra = ['module', 'event', 'from', 'to', 'cause', 'script', 'peer'].filter((k) => j[k] !== undefined).map((k) => k + '=' + j[k]).join(' ');
    return (j.time || '').slice(11, 23) + ' ' + (j.level || '').padEnd(5) + ' ' + j.msg + (extra ? '  ' + extra : ''); } catch (e) { return l; }
}
function renderLog() {
  const pre = $('#log');
  if (!pre) return;
  const f = $('#log-filter');
  f.oninput = () => { logFilter = f.value; renderLog(); };
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
  pre.textContent = logLines.map(fmtLog).filter((l) => !logFilter || l.includes(logFilter)).join('\n');
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}
boot();
`;
