// farm/connections.ts: the kernel's socket table read for one address (the drain before a planned stop).
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'vitest';
import { countLiveConnections, liveConnectionsTo, LiveConnectionsWatch, procHexAddress } from '../../farm/connections.js';

test('addresses as /proc/net/tcp{,6} writes them', () => {
  assert.equal(procHexAddress('127.0.0.1'), '0100007F');
  assert.equal(procHexAddress('10.77.0.100'), '64004D0A');
  assert.equal(procHexAddress('::1'), '00000000000000000000000001000000');
  assert.equal(procHexAddress('fd00::1:2'), '000000FD000000000000000002000100');
});

test('only live states of the address count (listening, TIME_WAIT and other addresses do not)', () => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 64004D0A:0050 0A004D0A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1',
    '   2: 64004D0A:0050 0B004D0A:C351 06 00000000:00000000 03:00000DB6 00000000     0        0 0 3 0',
    '   3: 64004D0A:0050 0C004D0A:C352 08 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1',
    '   4: 0100007F:0050 0100007F:C353 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1',
  ].join('\n');
  assert.equal(countLiveConnections(text, '10.77.0.100'), 2);
  assert.equal(countLiveConnections(text, '127.0.0.1'), 1);
  assert.equal(countLiveConnections(text, '10.77.0.1'), 0);
});

test('a real connection on loopback is counted while open, not after', async () => {
  // An address of the loopback network nobody else uses here.
  const addr = '127.0.0.77';
  const server = net.createServer((s) => s.on('data', () => undefined));
  await new Promise<void>((r) => server.listen(0, addr, r));
  const before = liveConnectionsTo(addr);
  assert.equal(before, 0);
  const port = (server.address() as net.AddressInfo).port;
  const c = net.connect({ port, host: addr, localAddress: addr });
  await new Promise<void>((r) => c.on('connect', () => r()));
  await new Promise((r) => setTimeout(r, 50));
  // Both ends are local: the client's socket and the server's accepted one.
  assert.equal(liveConnectionsTo(addr), 2);
  c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  await new Promise((r) => setTimeout(r, 50));
  // The side that closed first keeps a TIME_WAIT entry, which is not live.
  assert.equal(liveConnectionsTo(addr), 0);
});

test('the metrics\' watch reads off the JS thread, at most once per period, and shows the last count', async () => {
  const addr = '127.0.0.78';
  const server = net.createServer((s) => s.on('data', () => undefined));
  await new Promise<void>((r) => server.listen(0, addr, r));
  let now = 0;
  const w = new LiveConnectionsWatch(addr, 1000, () => now);
  assert.equal(w.value(), null, 'nothing read yet');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.value(), 0);
  const port = (server.address() as net.AddressInfo).port;
  const c = net.connect({ port, host: addr, localAddress: addr });
  await new Promise<void>((r) => c.on('connect', () => r()));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.value(), 0, 'within the period: the last count, not read again');
  now = 1000;
  w.value(); // due: reads again
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.value(), 2);
  c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});
