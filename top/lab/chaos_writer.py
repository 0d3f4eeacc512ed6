# The record writer of `croft lab chaos` (top/lab/chaos-load.ts), run on a mirror module's primary
# node inside the lab: record n is the line "<n>" appended to DIR/<(n-1)//100, six digits>, each
# record through its own open/write/fsync/close (no descriptor stays open between records, so a
# demotion can unmount the mirror), and only once fsync returned "<tag> <n>" goes to the collector
# in the lab's client namespace (host:port): what the collector received was acknowledged by the
# mirror to a client outside the node. A hundred records per file: a record lost on the peer lies
# in a file no later write touches, so the dirty log's zones cannot heal it by chance.
# At start it reads DIR, checks it holds 1..k in order (nothing missing, nothing twice; a partial last
# line of the last file, a record a full disk interrupted and no one was told of, is cut) and
# reports "<tag> start <k> ok" or "<tag> start <k> bad <what>"; it writes on
# from k+1. A record whose write or fsync fails (a full disk) is cut off and written again, not
# reported. It ends when its stdin closes (the engine's handle on it).
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
            if i < len(names) - 1:
                return k, 'an incomplete last line in %s' % name
            # The end of the last file: a record whose write failed (a full disk) and was not cut
            # before the writer ended. Never acknowledged (that needs the whole line and fsync):
            # cut, and written again.
            cut = data.rfind(b'\n') + 1
            os.truncate(os.path.join(folder, name), cut)
            data = data[:cut]
        lines = data.split(b'\n')[:-1]
        if i < len(names) - 1 and len(lines) != PER_FILE:
            return k, '%d records in %s, a later file exists' % (len(lines), name)
        for l in lines:
            if l != str(k + 1).encode():
                return k, 'record %d is %r' % (k + 1, l[:20].decode('latin1'))
            k += 1
    return k, None

def write_record(n, before):
    """True once record n is in its file and fsync returned; False after an error (a full disk:
    ENOSPC, EIO). before[0] is the file's size before the first attempt at n: a later attempt cuts
    the file back to it first (a failed attempt may have left part of the record), so the record
    is only ever written whole."""
    path = os.path.join(folder, '%06d' % ((n - 1) // PER_FILE))
    fd = None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if before[0] is None:
            before[0] = size
        elif size != before[0]:
            os.ftruncate(fd, before[0])
        os.write(fd, b'%d\n' % n)
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

threading.Thread(target=watch_stdin, daemon=True).start()
os.makedirs(folder, exist_ok=True)
k, bad = check()
send('%s start %d %s' % (tag, k, 'ok' if bad is None else 'bad ' + bad))
if bad is not None:
    time.sleep(3600)
n = k
while True:
    n += 1
    before = [None]
    while not write_record(n, before):
        time.sleep(0.05)
    send('%s %d' % (tag, n))
    time.sleep(0.005)
