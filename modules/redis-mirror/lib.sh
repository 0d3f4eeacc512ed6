# Shared by start_prim and stop_prim of redis-mirror (sourced, POSIX sh). The checker is croft's own
# `type: redis` (module.yaml): PING on 127.0.0.1:PORT.
#
# The module runs Debian's Redis server (/usr/bin/redis-server) with its data (append-only file and
# RDB snapshots) in the mirror's replicated directory, with a config of its own written by
# start_prim under /run/croft/<module>/ at every start. It never reads /etc/redis, never uses
# /run/redis or /var/lib/redis, and never starts or stops the machine's redis-server service.
#
# Where things are:
#   DIR        the replicated directory (module.yaml `dirs`, first entry), Redis's `dir`: croft mounts
#              the mirror over it before start_prim. croft passes dirs[0] as CROFT_MIRROR_DIR_0,
#              which wins over the default below (tests set it to a temporary folder). Redis
#              writes appendonlydir/ and dump.rdb there.
#   RUN_DIR    /run/croft/<module>/: redis.conf (rewritten at every start), server.pid (the pid of
#              redis-server, as start_prim started it) and sock/ (the Unix socket; only root and redis
#              can enter it).
#   LOG        /var/log/croft/<module>.log: the server's output.
# The lab gives every node its own /run/croft, /var/log/croft and /var/lib/croft-apps.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-redis-mirror}
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/redis}   # default: keep in step with module.yaml `dirs`
PORT=${REDIS_MIRROR_PORT:-6379}
# The VIP the server listens on, besides 127.0.0.1: CROFT_VIP (croft sets it from module.yaml), else module.yaml's
# `vip:` line. An address that is not on the node when the server starts is left out (with a
# warning in the log): croft adds the VIP before start_prim.
VIP=${CROFT_VIP:-$(sed -n 's/^vip:[[:space:]]*\([0-9A-Fa-f.:]*\|none\).*$/\1/p' "$HERE/module.yaml" 2>/dev/null | head -1)}
# A password for clients (requirepass; give the checker the same `password:` in module.yaml).
# Empty: none, and then Redis's protected mode is turned off so that clients on the VIP are served:
# only do that on a trusted LAN.
PASSWORD=
START_WAIT=60    # s: start_prim waits this long for PONG (loading a large append-only file takes time)
STOP_WAIT=30     # s: SHUTDOWN (which fsyncs the append-only file) may take this long, then TERM, then KILL
# ---- end of settings ----

REDIS_USER=redis
REDIS_SERVER=/usr/bin/redis-server
# What /proc/<pid>/exe shows for it: Debian's redis-server is a link to redis-check-rdb.
REDIS_EXE=$(readlink -f "$REDIS_SERVER" 2>/dev/null || echo "$REDIS_SERVER")
RUN_DIR=/run/croft/$MODULE
SOCK_DIR=$RUN_DIR/sock
SOCK=$SOCK_DIR/redis.sock
CONF=$RUN_DIR/redis.conf
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log
# Your settings: if the module folder holds redis.extra.conf, the generated config includes it last
# (it may override anything, appendfsync included: do not).
EXTRA_CONF=$HERE/redis.extra.conf

SELF_MNT=$(readlink /proc/self/ns/mnt)
SELF_NET=$(readlink /proc/self/ns/net)

# A process is alive when it exists and is not a zombie: a killed process whose parent has not
# reaped it still answers kill -0.
alive() {
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# In the lab all nodes share one pid space, and the other node has the same paths: a process is
# ours only if it is in our mount and network namespaces.
same_ns() {
  [ "$(readlink "/proc/$1/ns/mnt" 2>/dev/null)" = "$SELF_MNT" ] && [ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" = "$SELF_NET" ]
}

# The process works in dir (its cwd, as the kernel shows it: symbolic links resolved; the plain
# path too, for a mount that no longer answers).
in_dir() {
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  [ "$cwd" = "$2" ] || [ "$cwd" = "$(readlink -f "$2" 2>/dev/null)" ]
}

# Ours: a redis-server working in DIR (Redis chdirs to its `dir`). Its child, a background save or
# rewrite, is a redis-server in DIR too.
ours() {
  alive "$1" && same_ns "$1" && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$REDIS_EXE" ] \
    && in_dir "$1" "$DIR"
}

# Every process of this instance (one pid per line).
our_pids() {
  for exe in $(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$REDIS_EXE" 2>/dev/null); do
    pid=${exe#/proc/}; pid=${pid%/exe}
    if ours "$pid"; then echo "$pid"; fi
  done
}

# The redis-server start_prim started (its pid in PID_FILE), if it is alive and ours.
main_pid() {
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null)
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  ours "$pid" && echo "$pid"
}

# Sends sig to every process of this instance; waits up to tenths/10 s for them to go.
# Returns 0 when none is left.
signal_all() {
  sig=$1 tenths=$2
  pids=$(our_pids)
  [ -z "$pids" ] && return 0
  # shellcheck disable=SC2086
  kill "-$sig" $pids 2>/dev/null
  i=0
  while [ $i -lt "$tenths" ]; do
    [ -z "$(our_pids)" ] && return 0
    i=$((i + 1)); sleep 0.1
  done
  [ -z "$(our_pids)" ]
}

# Stops whatever is left: SIGTERM (Redis shuts down as on SHUTDOWN), then SIGKILL (with
# appendfsync always, every acknowledged write is already in the append-only file).
kill_leftovers() {
  signal_all TERM $((STOP_WAIT * 10)) || signal_all KILL 30
}

# redis-cli gets the password, if one is set, from REDISCLI_AUTH (not on its command line, where
# ps would show it).
if [ -n "$PASSWORD" ]; then export REDISCLI_AUTH="$PASSWORD"; fi

# The server answers PONG through its Unix socket (exit 0).
answers() {
  [ "$(timeout 3 redis-cli -s "$SOCK" ping 2>/dev/null)" = PONG ]
}

# The VIP when it is on one of this node's interfaces.
vip_here() {
  case $VIP in '' | none) return 1 ;; esac
  ip -o addr show 2>/dev/null | grep -qF " $VIP/"
}
