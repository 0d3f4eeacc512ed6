// generic-farm's default application: a tiny HTTP server answering every request with the node's
// name, one line per request on stdout (start_both sends it to /var/log/croft/<module>.log).
// Replace it by setting COMMAND in lib.sh.
import http from 'node:http';

const node = process.env.CROFT_NODE ?? 'unknown';
const port = Number(process.env.GENERIC_FARM_PORT ?? 8081);
const server = http.createServer((req, res) => {
  console.log(`${new Date().toISOString()} ${req.socket.remoteAddress} ${req.method} ${req.url}`);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`node ${node}\n`);
});
// 0.0.0.0: every address of the node, the farm's VIP included.
server.listen(port, '0.0.0.0', () => console.log(`listening on 0.0.0.0:${port} as ${node}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
