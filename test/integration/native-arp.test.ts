// The Rust ARP responder and gratuitous ARP, against real Linux neighbours: namespace A runs an
// ArpResponder (in a child process, since a packet socket belongs to its process's namespace) for
// a VIP; namespace B asks for it with ping and checks its neighbour table, and a netdev ingress
// chain in B counts which Ethernet source the replies had. The same for an IPv6 VIP: neighbour
// solicitations answered with the virtual MAC, unsolicited advertisements, garbage refused.
import { describe, it, beforeAll, afterAll } from 'vitest';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import readline from 'node:readline';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { fixtures, repoRoot } from '../helpers/paths.js';
import { ArpResponder, arpSendGratuitous } from '../../src/native/index.js';
import { CroftError } from '../../src/errors.js';

const run = promisify(execFile);

const tag = `crofttest-arp-${process.pid}`;
const nsA = `${tag}-a`;
const nsB = `${tag}-b`;
const VIP = '10.99.0.100';
const VIP2 = '10.99.0.101';
const VMAC = '02:00:5e:00:00:01';
const VMAC2 = '02:00:5e:00:00:02';
const VMAC3 = '02:00:5e:00:00:03';
const VIP6 = 'fd00:99::100';

function sh(args: string[], input?: string): string {
  return execFileSync(args[0] as string, args.slice(1), { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

function neighbour(ip: string): { lladdr?: string; state?: string[] } | undefined {
  const list = JSON.parse(sh(['ip', '-n', nsB, '-j', 'neigh', 'show', ip, 'dev', 'arpb0'])) as Array<{
    lladdr?: string;
    state?: string[];
  }>;
  return list[0];
}

async function pingFromB(ip: string): Promise<void> {
  // The VIP is not configured in A, so no echo reply comes: only the ARP exchange matters.
  await run('ip', ['netns', 'exec', nsB, 'ping', '-c1', '-W1', ip]).catch(() => undefined);
}

/** nft counter (packets) of the rule carrying `comment` in B's netdev table. */
function counter(comment: string): number {
  const doc = JSON.parse(sh(['ip', 'netns', 'exec', nsB, 'nft', '-j', 'list', 'table', 'netdev', 'croft_arp'])) as {
    nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }>;
  };
  const rule = doc.nftables.find((o) => o.rule?.comment === comment)?.rule;
  assert.ok(rule, `no rule ${comment}`);
  return rule.expr.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
}

type Reply = { ok: boolean; error?: string; code?: string; ready?: boolean; stats?: Stats };
type Stats = { requests: number; replies: number; malformed: number; sendErrors: number; failure: string | null };

/** The responder child in namespace A, driven one JSON line at a time. */
class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  constructor(ifname: string) {
    const script = path.join(fixtures, 'native', 'arp-child.mjs');
    const moduleUrl = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'native', 'index.js')).href;
    // `ip netns exec` execs node in place, so proc.pid is the node child itself.
    this.proc = spawn('ip', ['netns', 'exec', nsA, process.execPath, script, moduleUrl, ifname]);
    this.proc.stderr.on('data', (d: Buffer) => process.stderr.write(`[arp-child] ${d.toString()}`));
    this.#lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }
  async next(): Promise<Reply> {
    const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('arp child timed out')), 10_000).unref());
    const line = await Promise.race([this.#lines.next(), timer]);
    assert.ok(!line.done, 'arp child exited');
    return JSON.parse(line.value) as Reply;
  }
  async send(cmd: object): Promise<Reply> {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    const reply = await this.next();
    assert.ok(reply.ok, `arp child: ${reply.error}`);
    return reply;
  }
  async stats(): Promise<Stats> {
    const r = await this.send({ op: 'stats' });
    assert.ok(r.stats);
    return r.stats;
  }
}

describe('native ARP responder and gratuitous ARP', { timeout: 90_000 }, () => {
  let child: Child | undefined;
  let child2: Child | undefined;
  let realMacA = '';

  beforeAll(() => {
    sh(['ip', 'netns', 'add', nsA]);
    sh(['ip', 'netns', 'add', nsB]);
    sh(['ip', 'link', 'add', 'arpa0', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'arpb0', 'netns', nsB]);
    sh(['ip', '-n', nsA, '-batch', '-'], 'link set lo up\nlink set arpa0 up\naddr add 10.99.0.1/24 dev arpa0\naddr add fd00:99::1/64 dev arpa0 nodad\n');
    sh(['ip', '-n', nsB, '-batch', '-'], 'link set lo up\nlink set arpb0 up\naddr add 10.99.0.2/24 dev arpb0\naddr add fd00:99::2/64 dev arpb0 nodad\n');
    // Let B create neighbour entries from gratuitous ARP alone (updating existing ones needs nothing).
    sh(['ip', 'netns', 'exec', nsB, 'sysctl', '-q', '-w', 'net.ipv4.conf.arpb0.arp_accept=1']);
    realMacA = (JSON.parse(sh(['ip', '-n', nsA, '-j', 'link', 'show', 'arpa0'])) as Array<{ address: string }>)[0]!.address;
    // Count, on B's side of the wire, ARP frames by Ethernet source.
    sh(['ip', 'netns', 'exec', nsB, 'nft', '-f', '-'], `
      table netdev croft_arp {
        chain ingress {
          type filter hook ingress device arpb0 priority 0; policy accept;
          ether type arp ether saddr ${VMAC} counter comment "from-virtual-mac"
          ether type arp ether saddr ${VMAC2} counter comment "from-virtual-mac2"
          ether type arp ether saddr ${realMacA} arp operation reply arp saddr ether ${VMAC} counter comment "reply-from-real-mac"
          ether saddr ${realMacA} icmpv6 type nd-neighbor-advert counter comment "na-from-real-mac"
          ether saddr { ${VMAC}, ${VMAC2} } ether type ip6 counter comment "ip6-from-virtual-mac"
        }
      }`);
  });

  afterAll(() => {
    for (const c of [child, child2]) {
      if (c && c.proc.exitCode === null && c.proc.signalCode === null && c.proc.pid !== undefined) {
        try {
          process.kill(c.proc.pid, 'SIGKILL');
        } catch {
          // Exited meanwhile.
        }
      }
    }
    for (const ns of [nsA, nsB]) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // Not created.
      }
    }
  });

  it('errors are CroftErrors that name the interface', async () => {
    assert.throws(() => new ArpResponder('crofttest-nope0'), (err: unknown) => {
      assert.ok(err instanceof CroftError);
      assert.equal(err.code, 'CROFT_ERR_NATIVE');
      assert.match(err.message, /no such network interface "crofttest-nope0"/);
      return true;
    });
    await assert.rejects(arpSendGratuitous('crofttest-nope0', VIP, VMAC, 1), /no such network interface/);
    await assert.rejects(arpSendGratuitous('lo', VIP, '01:00:5e:00:00:01', 1), /not a unicast address/);
    await assert.rejects(arpSendGratuitous('arpa0', 'not-an-ip', VMAC, 1), /invalid IP address/);
  });

  it('answers ARP requests for the VIP with the virtual MAC, sent from the real MAC', async () => {
    child = new Child('arpa0');
    assert.ok((await child.next()).ready);
    await child.send({ op: 'set', addresses: [{ ip: VIP, mac: VMAC }] });

    await pingFromB(VIP);
    const entry = neighbour(VIP);
    assert.equal(entry?.lladdr, VMAC, `B's neighbour entry for ${VIP}: ${JSON.stringify(entry)}`);

    const stats = await child.stats();
    assert.ok(stats.requests >= 1, `requests ${stats.requests}`);
    assert.ok(stats.replies >= 1, `replies ${stats.replies}`);
    assert.equal(stats.failure, null);
    // The invisible MAC: the reply announced VMAC but came from A's real MAC; no frame ever had VMAC
    // as its Ethernet source, so a switch could never learn it.
    assert.ok(counter('reply-from-real-mac') >= 1, 'no ARP reply from the real MAC announcing the VIP');
    assert.equal(counter('from-virtual-mac'), 0);
  });

  it('does not answer for addresses it was not given', async () => {
    assert.ok(child);
    const before = await child.stats();
    await pingFromB('10.99.0.77');
    const entry = neighbour('10.99.0.77');
    assert.equal(entry?.lladdr, undefined, `unexpected entry ${JSON.stringify(entry)}`);
    const after = await child.stats();
    assert.ok(after.requests > before.requests, 'the request was not seen');
    assert.equal(after.replies, before.replies);
  });

  it('gratuitous ARP updates and creates B\'s neighbour entries', async () => {
    assert.ok(child);
    await child.send({ op: 'garp', ip: VIP, mac: VMAC2, count: 3, intervalMs: 100 });
    assert.equal(neighbour(VIP)?.lladdr, VMAC2, 'existing entry not updated by gratuitous ARP');
    await child.send({ op: 'garp', ip: VIP2, mac: VMAC3, count: 1, intervalMs: 0 });
    assert.equal(neighbour(VIP2)?.lladdr, VMAC3, 'entry not created by gratuitous ARP (arp_accept=1)');
    assert.equal(counter('from-virtual-mac2'), 0, 'gratuitous ARP used the virtual MAC as Ethernet source');
    // Our own announcements are not requests to answer.
    const stats = await child.stats();
    assert.equal(stats.sendErrors, 0);
  });

  it('IPv6: answers neighbour solicitations for the VIP with the virtual MAC, sent from the real MAC', async () => {
    assert.ok(child);
    await child.send({ op: 'set', addresses: [{ ip: VIP, mac: VMAC }, { ip: VIP6, mac: VMAC }] });
    const before = await child.stats();
    await pingFromB(VIP6);
    const entry = neighbour(VIP6);
    assert.equal(entry?.lladdr, VMAC, `B's neighbour entry for ${VIP6}: ${JSON.stringify(entry)}`);
    const after = await child.stats();
    assert.ok(after.replies > before.replies, `replies ${before.replies} -> ${after.replies}`);
    assert.ok(counter('na-from-real-mac') >= 1, 'no advertisement from the real MAC');
    assert.equal(counter('ip6-from-virtual-mac'), 0);
    // An address it was not given: not answered (A's kernel does not hold it either).
    await pingFromB('fd00:99::77');
    assert.equal(neighbour('fd00:99::77')?.lladdr, undefined);
  });

  it('IPv6: an unsolicited advertisement moves B\'s entry to a new MAC', async () => {
    assert.ok(child);
    await child.send({ op: 'garp', ip: VIP6, mac: VMAC2, count: 2, intervalMs: 50 });
    assert.equal(neighbour(VIP6)?.lladdr, VMAC2, 'existing entry not overridden by the unsolicited advertisement');
    assert.equal(counter('ip6-from-virtual-mac'), 0, 'the advertisement used the virtual MAC as Ethernet source');
  });

  it('IPv6: garbage and malformed solicitations are counted, never answered, and the responder lives on', async () => {
    assert.ok(child);
    const before = await child.stats();
    // 300 frames that pass the socket's filter (IPv6, ICMPv6, type 135) with random bytes after,
    // then one with an option of length 0 and a truncated one (which the filter itself drops: its
    // ICMPv6 type is beyond its end). None is valid.
    const sender = `
import os, socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("arpb0", 0))
head = bytes([0x33, 0x33, 0xff, 0, 1, 0]) + bytes.fromhex("020000000002") + bytes.fromhex("86dd")
for i in range(300):
    ip = bytes([0x60, 0, 0, 0]) + os.urandom(2) + bytes([58, 255]) + os.urandom(32)
    s.send(head + ip + bytes([135, 0]) + os.urandom(i % 90))
    if i % 20 == 19: time.sleep(0.005)  # paced: a burst would overflow the socket's receive buffer
ip = bytes.fromhex("600000000020" "3aff") + bytes(15) + bytes([2]) + bytes.fromhex("ff0200000000000000000001ff000100")
s.send(head + ip + bytes([135, 0, 0, 0]) + bytes(4) + bytes.fromhex("fd000099000000000000000000000100") + bytes([1, 0]) + bytes(6))
s.send(head + ip[:10])
`;
    await run('ip', ['netns', 'exec', nsB, 'python3', '-c', sender]);
    let after = before;
    for (let i = 0; i < 100 && after.malformed < before.malformed + 301; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = await child.stats();
    }
    assert.equal(after.malformed, before.malformed + 301, `malformed ${before.malformed} -> ${after.malformed}`);
    assert.equal(after.replies, before.replies, 'nothing answered');
    assert.equal(after.failure, null);
    // Still answering.
    sh(['ip', '-n', nsB, 'neigh', 'flush', 'dev', 'arpb0']);
    await pingFromB(VIP6);
    assert.equal(neighbour(VIP6)?.lladdr, VMAC);
  });

  it('counts malformed frames', async () => {
    assert.ok(child);
    const before = (await child.stats()).malformed;
    // An ARP ethertype frame whose hardware size is 8: not Ethernet/IPv4 ARP.
    const sender = `
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("arpb0", 0))
frame = bytes([0xff] * 6) + bytes.fromhex("020000000002") + bytes.fromhex("0806")
frame += bytes.fromhex("0001 0800 08 04 0001".replace(" ", "")) + bytes(40)
s.send(frame)
`;
    await run('ip', ['netns', 'exec', nsB, 'python3', '-c', sender]);
    let malformed = before;
    for (let i = 0; i < 50 && malformed === before; i++) {
      await new Promise((r) => setTimeout(r, 20));
      malformed = (await child.stats()).malformed;
    }
    assert.equal(malformed, before + 1);
  });

  it('close() stops answering, and stats stay readable', async () => {
    assert.ok(child);
    const closed = await child.send({ op: 'close' });
    assert.ok(closed.stats && closed.stats.replies >= 1);
    sh(['ip', '-n', nsB, 'neigh', 'flush', 'dev', 'arpb0']);
    await pingFromB(VIP);
    assert.notEqual(neighbour(VIP)?.lladdr, VMAC2);
    assert.notEqual(neighbour(VIP)?.lladdr, VMAC);
    child.proc.stdin.end();
    const code = await new Promise<number | null>((resolve) => {
      if (child!.proc.exitCode !== null) resolve(child!.proc.exitCode);
      else child!.proc.on('exit', (c) => resolve(c));
    });
    assert.equal(code, 0);
  });

  it('reports, instead of hanging or crashing, when its interface is removed', async () => {
    sh(['ip', 'link', 'add', 'arpa1', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'arpb1', 'netns', nsB]);
    sh(['ip', '-n', nsA, 'link', 'set', 'arpa1', 'up']);
    child2 = new Child('arpa1');
    assert.ok((await child2.next()).ready);
    assert.equal((await child2.stats()).failure, null);
    sh(['ip', '-n', nsA, 'link', 'del', 'arpa1']);
    let failure: string | null = null;
    // Seen at once (ENODEV, ENETDOWN with the interface gone), or at the next quiet poll (1 s) when
    // the ENETDOWN came while the interface was still being unregistered.
    for (let i = 0; i < 250 && failure === null; i++) {
      await new Promise((r) => setTimeout(r, 20));
      failure = (await child2.stats()).failure;
    }
    assert.match(failure ?? '', /"arpa1" was removed/);
    await child2.send({ op: 'close' });
    child2.proc.stdin.end();
  });
});
