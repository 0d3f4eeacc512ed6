// Reading an HTTP answer of croft's API, for its clients in the top layer (the CLI, the lab): the
// whole body, parsed as JSON when it is JSON, else kept as text.
import type http from 'node:http';

export function readBody(res: http.IncomingMessage, done: (body: unknown, text: string) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = text;
    try { body = JSON.parse(text); } catch { /* plain text */ }
    done(body, text);
  });
}
