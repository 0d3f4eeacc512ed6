#!/usr/bin/env python3
# Userspace stand-in for tc netem, for kernels built without sch_netem (CONFIG_NET_SCH_NETEM).
# Runs in the lab's switch namespace between a node's switch-side veth end (--node-if) and a veth
# that is the bridge port in its place (--bridge-if). Frames from the node are delayed (delay +
# uniform jitter) and dropped with --loss-pct; frames to the node pass at once: the same as netem
# on the node's interface (egress). PACKET_VNET_HDR carries each frame's checksum-offload and GSO
# metadata across (packet(7)), so TCP from the veths works without turning offloads off.
import argparse, errno, heapq, os, random, select, signal, socket, sys, time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
MAX_QUEUED = 100000  # bounded: beyond this, frames are dropped (a real queue limit, as netem's)

def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((name, 0))
    s.setblocking(False)
    return s

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--node-if', required=True)
    p.add_argument('--bridge-if', required=True)
    p.add_argument('--delay-ms', type=float, default=0)
    p.add_argument('--jitter-ms', type=float, default=0)
    p.add_argument('--loss-pct', type=float, default=0)
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    node = open_if(a.node_if)
    bridge = open_if(a.bridge_if)
    queue = []  # (due, seq, frame) from the node, in due order
    seq = 0
    # The lab waits for this line, then closes its end: point stdout at /dev/null from here on.
    os.write(1, b'ready\n')
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    def send(sock, frame):
        try:
            sock.send(frame)
        except OSError as e:
            if e.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS, errno.EAGAIN, errno.EMSGSIZE):
                raise
    while True:
        timeout = None
        if queue:
            timeout = max(0.0, queue[0][0] - time.monotonic())
        readable, _, _ = select.select([node, bridge], [], [], timeout)
        for sock in readable:
            while True:
                try:
                    frame, addr = sock.recvfrom(65536 + 64)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.ENETDOWN:  # the link was cut: nothing to relay
                        break
                    raise
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own transmission, seen by the tap
                if sock is bridge:
                    send(node, frame)
                    continue
                if a.loss_pct > 0 and random.random() * 100 < a.loss_pct:
                    continue
                delay = a.delay_ms + (random.uniform(-a.jitter_ms, a.jitter_ms) if a.jitter_ms > 0 else 0)
                if delay <= 0:
                    send(bridge, frame)
                elif len(queue) < MAX_QUEUED:
                    seq += 1
                    heapq.heappush(queue, (time.monotonic() + delay / 1000.0, seq, frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            send(bridge, heapq.heappop(queue)[2])

if __name__ == '__main__':
    main()
