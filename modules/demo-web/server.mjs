// The demo service: answers every request with the node's name. Started by start_both.
import http from 'node:http';

const node = process.env.CROFT_NODE ?? 'unknown';
const port = Number(process.env.DEMO_WEB_PORT ?? 8080);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`hello from ${node}\n`);
}).listen(port, '0.0.0.0');
