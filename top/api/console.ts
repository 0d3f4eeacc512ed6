// The web console's page: a shell whose script (/console.js, console-js.ts) logs in, opens the
// live stream (console-routes.ts) and draws the views; its style is /console.css (console-css.ts).
// No inline script or style: the Content-Security-Policy forbids both (top/api/app.ts). Every
// asset is served by the daemon; nothing comes from a CDN.

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** The page; cluster and node are null on the login page (no names before a credential). */
export function consoleHtml(cluster: string | null, node: string | null): string {
  const title = cluster === null ? 'croft' : `croft · ${escapeHtml(cluster)}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console.css"></head>
<body>
<header><h1>croft${cluster === null ? '' : ` cluster <b>${escapeHtml(cluster)}</b>`}</h1>
<div class="sub">${node === null ? '' : `console of node <b id="self">${escapeHtml(node)}</b> · `}<span id="view"></span> <span id="live"></span> <span id="err"></span> <span id="warn"></span></div>
<div id="me" hidden><span id="who"></span> <button id="logout" type="button">log out</button></div>
<nav id="nav" hidden></nav>
</header>
<main>
<form id="login" hidden>
<h2>Log in</h2>
<label>user <input name="user" autocomplete="username"></label>
<label>password <input name="password" type="password" autocomplete="current-password"></label>
<div class="or">or</div>
<label>token <input name="token" type="password" autocomplete="off"></label>
<button type="submit">log in</button>
<div id="login-err" class="bad"></div>
</form>
<div id="result" hidden></div>
<section id="content"></section>
</main>
<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>
<div class="buttons"><button value="cancel" id="confirm-no">cancel</button> <button value="ok" id="confirm-yes" class="danger">do it</button></div></form></dialog>
<script src="/console.js"></script>
</body></html>
`;
}
