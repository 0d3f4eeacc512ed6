# The record writer of `croft lab chaos` (top/lab/chaos-load.ts), run on a mirror module's primary
# node inside the lab: appends "<n>\n" to FILE, each record through its own open/write/fsync/close
# (no descriptor stays open between records, so a demotion can unmount the mirror), and only once
# fsync returned sends "<node> <n>\n" to the collector in the lab's client namespace (host:port):
# what the collector received was acknowledged by the mirror to a client outside the node.
# At start it reads FILE, checks it holds 1..k in order (nothing missing, nothing twice, the last
# line complete) and reports "<node> start <k> ok" or "<node> start <k> bad <what>"; it writes on
# from k+1. It ends when its stdin closes (the engine's handle on it).
import os, socket, sys, threading, time
path, node, collector = sys.argv[1], sys.argv[2], sys.argv[3]
sock = None

def send(line):
    global sock
    try:
        if sock is None:
            host, port = collector.rsplit(':', 1)
            sock = socket.create_connection((host, int(port)), timeout=1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(line.encode() + b'\n')
    except OSError:
        # Not received: that record is simply not counted as acknowledged.
        try:
            sock.close()
        except Exception:
            pass
        sock = None

def watch_stdin():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)

threading.Thread(target=watch_stdin, daemon=True).start()
os.makedirs(os.path.dirname(path), exist_ok=True)
k, bad = 0, None
if os.path.exists(path):
    with open(path, 'rb') as f:
        data = f.read()
    if data and not data.endswith(b'\n'):
        bad = 'an incomplete last line'
    for i, l in enumerate(data.split(b'\n')[:-1] if data.endswith(b'\n') else data.split(b'\n')):
        if bad is None and l != str(i + 1).encode():
            bad = 'line %d is %r' % (i + 1, l[:20].decode('latin1'))
        k = i + 1
send('%s start %d %s' % (node, k, 'ok' if bad is None else 'bad ' + bad))
if bad is not None:
    time.sleep(3600)
n = k
while True:
    n += 1
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b'%d\n' % n)
    os.fsync(fd)
    os.close(fd)
    send('%s %d' % (node, n))
    time.sleep(0.005)
