// The API answers a CroftError with its code's status (src/errors.ts) and { error, message }; a
// failure that is no CroftError with CROFT_ERR_API and 500 (or fastify's own 4xx).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../top/api/app.js';
import { loadConfig } from '../../src/config/load.js';
import { codes, CroftError, isErrorCode, type ErrorCode } from '../../src/errors.js';
import { Daemon } from '../../top/daemon/daemon.js';
import { silentLogger } from '../../src/log/logger.js';
import { closeApi, writeApiConfig } from './api-fixture.js';

describe('API error answers', () => {
  let dir: string;
  let daemon: Daemon;
  let app: FastifyInstance;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'croft-apierr-'));
    writeApiConfig(dir, 'apierr', []);
    daemon = new Daemon(loadConfig(dir), 'n1', silentLogger());
    // The local socket's API (no credential): the answers to errors are the same over TCP.
    app = buildApi(daemon, { local: true });
    // A route that throws what it is told, beside the real ones (the same error handler).
    app.get<{ Params: { code: string } }>('/test-throw/:code', async (req) => {
      if (isErrorCode(req.params.code)) throw new CroftError(req.params.code, `planted ${req.params.code}`);
      throw new Error('planted plain error');
    });
  });
  afterAll(() => closeApi([app], daemon, dir));

  test('a CroftError of each code is answered with that code\'s status, its code and its message', async () => {
    for (const code of Object.keys(codes) as ErrorCode[]) {
      const r = await app.inject({ method: 'GET', url: `/test-throw/${code}` });
      assert.equal(r.statusCode, codes[code].statusCode, code);
      assert.deepEqual(r.json(), { error: code, message: `planted ${code}` });
    }
  });

  test('the statuses clients rely on: unknown module 404, a mirror\'s refusal 409 (croft prim reads it), usage 400', async () => {
    assert.equal(codes.CROFT_ERR_UNKNOWN_MODULE.statusCode, 404);
    assert.equal(codes.CROFT_ERR_MIRROR_REFUSED.statusCode, 409);
    assert.equal(codes.CROFT_ERR_USAGE.statusCode, 400);
    const unknown = await app.inject({ method: 'GET', url: '/api/v1/modules/nope' });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error, 'CROFT_ERR_UNKNOWN_MODULE');
    // web is a light module: mirror commands on it are a bad request.
    const notMirror = await app.inject({ method: 'POST', url: '/api/v1/modules/web/prim' });
    assert.equal(notMirror.statusCode, 400);
    assert.equal(notMirror.json().error, 'CROFT_ERR_USAGE');
  });

  test('a failure that is no CroftError is CROFT_ERR_API with 500', async () => {
    const r = await app.inject({ method: 'GET', url: '/test-throw/not-a-code' });
    assert.equal(r.statusCode, 500);
    assert.deepEqual(r.json(), { error: 'CROFT_ERR_API', message: 'planted plain error' });
  });
});
