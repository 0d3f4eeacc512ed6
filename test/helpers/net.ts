// Small network helpers of the unit tests.
import net from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago (listened on, then closed). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', resolve);
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
