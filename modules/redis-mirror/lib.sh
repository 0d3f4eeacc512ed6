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
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/redis}   # default: keep in step with module.yaml `dirs`
PORT=${REDIS_MIRROR_PORT:-6379}
# The VIP the server listens on, besides 127.0.0.1: CROFT_VIP (croft sets it from module.yaml), else module.yaml's
# `vip:` line. An address that is not on the node when the server starts is left out (with a
# warning in the log): croft adds the VIP before start_prim.
VIP=${CROFT_VIP:-$(yaml_vip)}
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

# Ours: a redis-server working in DIR (Redis chdirs to its `dir`). Its child, a background save or
# rewrite, is a redis-server in DIR too.
candidates() { exe_pids "$REDIS_EXE"; }
ours() {
  [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$REDIS_EXE" ] && in_dir "$1" "$DIR"
}

# Stops whatever is left: SIGTERM (Redis shuts down as on SHUTDOWN), then SIGKILL (with
# appendfsync always, every acknowledged write is already in the append-only file).
kill_leftovers() {
  stop_all TERM $((STOP_WAIT * 10))
}

# redis-cli gets the password, if one is set, from REDISCLI_AUTH (not on its command line, where
# ps would show it).
if [ -n "$PASSWORD" ]; then export REDISCLI_AUTH="$PASSWORD"; fi

# The server answers PONG through its Unix socket (exit 0).
answers() {
  [ "$(timeout 3 redis-cli -s "$SOCK" ping 2>/dev/null)" = PONG ]
}
