// The web console: a page that polls /api/v1/status (same origin, same credentials) and shows
// nodes, the view, and every module's state on every node. Its script and style are served as
// files (/console.js, /console.css), never inline, so that the Content-Security-Policy can forbid
// every inline script and style (top/api/app.ts).

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

export function consoleHtml(cluster: string, node: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>croft · ${escapeHtml(cluster)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console.css"></head>
<body>
<h1>croft cluster <b>${escapeHtml(cluster)}</b></h1>
<div class="sub">console of node <b>${escapeHtml(node)}</b> · <span id="view"></span> <span id="err"></span> <span id="warn"></span></div>
<h2>Nodes</h2><table id="nodes"></table>
<h2>Modules</h2><table id="modules"></table>
<div id="maint" class="sub"></div>
<script src="/console.js"></script>
</body></html>
`;
}

/** The console's script (served at /console.js). */
export const consoleJs = `const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'})[c]);
const badge = (s, known = true) => '<span class="s ' + esc(s) + '"' + (known ? '' : ' title="not known: that node is down or has not announced it"') + '>' + esc(s) + (known ? '' : '?') + '</span>';
async function refresh() {
  try {
    const r = await fetch('/api/v1/status', { credentials: 'same-origin' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const st = await r.json();
    document.getElementById('err').textContent = '';
    document.getElementById('view').textContent = 'view epoch ' + st.view.epoch + ' [' + st.view.members.join(' ') + ']' + (st.converged ? ' converged' : ' converging');
    document.getElementById('nodes').innerHTML = '<tr><th>node</th><th>state</th><th>last heartbeat per LAN</th><th>version</th><th>config</th></tr>' +
      st.nodes.map((n) => '<tr><td>' + esc(n.name) + (n.self ? ' (this node)' : '') + '</td><td>' + badge(n.state) + '</td><td>' +
        (n.self ? '' : (n.lastHeardAgoMs || []).map((ms, i) => esc(st.lans[i]) + ': ' + (ms === null ? 'never' : ms + ' ms ago')).join(', ')) + '</td><td>' +
        (n.protocol == null ? '' : esc((n.package ? n.package + ' ' : '') + 'p' + n.protocol)) + '</td><td>' +
        (n.self ? 'reference' : n.configDiffers == null ? '' : n.configDiffers.length === 0 ? 'same'
          : '<span class="differs">differs: ' + esc(n.configDiffers.join(', ')) + '</span>') + '</td></tr>').join('');
    document.getElementById('warn').textContent = (st.mixedVersions ? 'mixed versions (rolling upgrade under way?) ' : '') +
      (st.configMismatch || []).map((m) => 'config mismatch: ' + m.node + ' (' + m.differs.join(', ') + ')').join('; ');
    const names = st.nodes.map((n) => n.name);
    document.getElementById('modules').innerHTML = '<tr><th>module</th><th>kind</th>' + names.map((n) => '<th>' + esc(n) + '</th>').join('') + '</tr>' +
      Object.entries(st.modules).map(([m, v]) => '<tr><td>' + esc(m) + '</td><td>' + esc(v.kind) + '</td>' +
        names.map((n) => '<td>' + (v.nodes[n] ? badge(v.nodes[n].state, v.nodes[n].known) : '') +
          ((v.configDiffers || []).includes(n) ? ' <span class="differs">config differs</span>' : '') + '</td>').join('') + '</tr>').join('');
    const mt = st.maintenance || { node: null, modules: {} };
    const inMaint = (m) => mt.node !== null || Object.prototype.hasOwnProperty.call(mt.modules, m);
    document.querySelectorAll('#modules tr').forEach((tr, i) => { if (i === 0) return; const m = Object.keys(st.modules)[i - 1];
      if (st.modules[m].nodes[st.node] && inMaint(m)) tr.children[0].insertAdjacentHTML('beforeend', ' <span class="s MAINT" title="maintenance on ' + esc(st.node) + ': checkers suspended">maintenance</span>'); });
    document.getElementById('maint').textContent = mt.node !== null ? 'node ' + st.node + ' in maintenance since ' + mt.node.since + ' (' + mt.node.by + '): checkers and automatic failover suspended'
      : Object.keys(mt.modules).length ? 'in maintenance on ' + st.node + ': ' + Object.keys(mt.modules).join(', ') : '';
  } catch (e) { document.getElementById('err').textContent = 'cannot reach the daemon: ' + e.message; }
}
refresh(); setInterval(refresh, 1000);
`;

/** The console's style (served at /console.css). */
export const consoleCss = ` body{font:14px system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
 h1{font-size:1.4em;margin:0 0 .2em} .sub{color:#666;margin-bottom:1.5em}
 table{border-collapse:collapse;margin:0 0 2em;background:#fff;box-shadow:0 1px 2px #0002}
 th,td{padding:.45em 1em;border-bottom:1px solid #eee;text-align:left} th{background:#f0f0f0}
 .s{display:inline-block;min-width:4.5em;text-align:center;border-radius:3px;padding:.1em .4em;font-weight:600;color:#fff}
 .UP,.PRIM,.ALONE{background:#2e7d32} .SECOND{background:#1565c0} .WAIT{background:#ef6c00} .STOP,.DOWN{background:#9e9e9e}
 #err{color:#b71c1c} #warn,.differs{color:#e65100;font-weight:600}
 .MAINT{background:#6a1b9a;min-width:0;font-size:.8em}
`;
