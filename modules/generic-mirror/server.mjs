// generic-mirror's default application: a tiny HTTP key/value store whose data lives in the
// replicated directory, to show what a mirror module needs from a program (and to test it).
//   PUT /kv/<key>  (body: the value)  appends "<key>\t<base64 value>\n" to kv.log and fsyncs it
//                                      before answering 204: an answered write survives a failover.
//   GET /kv/<key>                     the value (404 if none); GET / answers "node <name>".
// Settings from the environment (lib.sh sets them): CROFT_MIRROR_DIR (where kv.log is),
// GENERIC_MIRROR_PORT, GENERIC_MIRROR_LISTEN (addresses, comma-separated), CROFT_NODE.
// Replace it by setting COMMAND in lib.sh or in app.env.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const node = process.env.CROFT_NODE ?? 'unknown';
const dir = process.env.CROFT_MIRROR_DIR;
if (!dir) throw new Error('CROFT_MIRROR_DIR is not set');
const port = Number(process.env.GENERIC_MIRROR_PORT ?? 8082);
const listen = (process.env.GENERIC_MIRROR_LISTEN ?? '127.0.0.1').split(',').filter(Boolean);
if (listen.length === 0) throw new Error('GENERIC_MIRROR_LISTEN names no address');
const file = path.join(dir, 'kv.log');

// The store is read once at start: the log is the truth, the map a cache of it.
const kv = new Map();
if (fs.existsSync(file)) {
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) kv.set(line.slice(0, tab), Buffer.from(line.slice(tab + 1), 'base64').toString());
  }
}
const fd = fs.openSync(file, 'a', 0o600);

function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://x');
  const m = /^\/kv\/([A-Za-z0-9_.-]{1,200})$/.exec(url.pathname);
  if (url.pathname === '/' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`node ${node}\n`);
  } else if (m && req.method === 'GET') {
    const v = kv.get(m[1]);
    if (v === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(v);
  } else if (m && req.method === 'PUT') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const value = Buffer.concat(chunks);
      fs.writeSync(fd, `${m[1]}\t${value.toString('base64')}\n`);
      fs.fsyncSync(fd); // durable (on both nodes, through the mirror) before the answer
      kv.set(m[1], value.toString());
      res.writeHead(204).end();
    });
  } else {
    res.writeHead(404).end();
  }
}

// One server per address: the VIP and 127.0.0.1, not every address of the node.
for (const host of listen) {
  const s = http.createServer(handle);
  s.on('error', (e) => {
    console.error(`${host}:${port}: ${e.message}`);
    process.exit(1);
  });
  s.listen(port, host, () => console.log(`listening on ${host}:${port} as ${node}, data in ${file} (${kv.size} keys)`));
}
process.on('SIGTERM', () => {
  fs.fsyncSync(fd);
  process.exit(0);
});
