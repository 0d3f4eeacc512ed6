# The record writer of `croft lab chaos` (top/lab/chaos-load.ts), run on a mirror module's primary
# node inside the lab: record n is the line "<n>" appended to DIR/<(n-1)//100, six digits>, each
# record through its own open/write/fsync/close (no descriptor stays open between records, so a
# demotion can unmount the mirror), and only once fsync returned "<tag> <n>" goes to the collector
# in the lab's client namespace (host:port): what the collector received was acknowledged by the
# mirror to a client outside the node. A hundred records per file: a record lost on the peer lies
# in a file no later write touches, so the dirty log's zones cannot heal it by chance.
# At start it reads DIR, checks it holds 1..k in order (nothing missing, nothing twice, the last
# line complete) and reports "<tag> start <k> ok" or "<tag> start <k> bad <what>"; it writes on
# from k+1. It ends when its stdin closes (the engine's handle on it).
import os, socket, sys, threading, time
PER_FILE = 100
folder, tag, collector = sys.argv[1], sys.argv[2], sys.argv[3]
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

def check():
    """(k, None) when the folder holds records 1..k in order, else (k, what is wrong)."""
    k = 0
    names = sorted(os.listdir(folder))
    for i, name in enumerate(names):
        if name != '%06d' % i:
            return k, 'file %s where %06d was expected' % (name, i)
        with open(os.path.join(folder, name), 'rb') as f:
            data = f.read()
        if data and not data.endswith(b'\n'):
            return k, 'an incomplete last line in %s' % name
        lines = data.split(b'\n')[:-1]
        if i < len(names) - 1 and len(lines) != PER_FILE:
            return k, '%d records in %s, a later file exists' % (len(lines), name)
        for l in lines:
            if l != str(k + 1).encode():
                return k, 'record %d is %r' % (k + 1, l[:20].decode('latin1'))
            k += 1
    return k, None

threading.Thread(target=watch_stdin, daemon=True).start()
os.makedirs(folder, exist_ok=True)
k, bad = check()
send('%s start %d %s' % (tag, k, 'ok' if bad is None else 'bad ' + bad))
if bad is not None:
    time.sleep(3600)
n = k
while True:
    n += 1
    fd = os.open(os.path.join(folder, '%06d' % ((n - 1) // PER_FILE)), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b'%d\n' % n)
    os.fsync(fd)
    os.close(fd)
    send('%s %d' % (tag, n))
    time.sleep(0.005)
