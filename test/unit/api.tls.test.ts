// The API over TLS: api.tls in cluster.yaml makes the daemon's API HTTPS, and the CLI's client
// trusts the configured certificate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'vitest';
import { buildApi } from '../../top/api/app.js';
import { apiRequest, targetFromConfig } from '../../top/cli/client.js';
import { loadConfig } from '../../src/config/load.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { silentLogger } from '../../src/log/logger.js';

test('with api.tls the API speaks HTTPS with the configured certificate, and the CLI client uses it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    fs.writeFileSync(path.join(dir, 'cluster.yaml'), [
      'name: tlstest',
      `key: "${'k'.repeat(40)}"`,
      'nodes:',
      '  n1: { addresses: [127.0.0.1] }',
      'api:',
      '  host: 127.0.0.1',
      '  port: 9450',  // the test listens on a free port itself
      `  socket: ${dir}/none.sock`,
      '  tokens: [tls-token-0123456789abcdef]',
      '  tls: { cert: cert.pem, key: key.pem }',
    ].join('\n'), { mode: 0o600 });
    const config = loadConfig(dir);
    const daemon = new Daemon(config, 'n1', silentLogger());
    const app = buildApi(daemon);
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (app.server.address() as { port: number }).port;
      const target = targetFromConfig(dir, `https://127.0.0.1:${port}`);
      assert.equal(target.socketPath, undefined);
      const st = await apiRequest<{ cluster: string }>(target, 'GET', '/api/v1/status');
      assert.equal(st.cluster, 'tlstest');
      // Plain HTTP on the same port is not served.
      await assert.rejects(apiRequest({ url: new URL(`http://127.0.0.1:${port}`) }, 'GET', '/api/v1/status', 1000));
      // A client that does not trust the certificate is refused.
      await assert.rejects(apiRequest({ ...target, ca: undefined }, 'GET', '/api/v1/status', 1000));
    } finally {
      await app.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
