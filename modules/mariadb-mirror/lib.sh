# Shared by start_prim, stop_prim and check of mariadb-mirror (sourced, POSIX sh).
#
# The module runs Debian's MariaDB server (/usr/sbin/mariadbd) on a data directory inside the
# mirror's replicated directory, with a config of its own written by start_prim under
# /run/croft/<module>/ at every start (read with --defaults-file, so /etc/mysql is never read).
# It never uses /run/mysqld or /var/lib/mysql, and never starts or stops the machine's mariadb
# service.
#
# Where things are:
#   DIR        the replicated directory (module.yaml `dirs`, first entry): croft mounts the mirror
#              over it before start_prim. croft passes dirs[0] as CROFT_MIRROR_DIR_0,
#              which wins over the default below (tests set it to a temporary folder).
#   DATADIR    $DIR/data: the server's files (owned by mysql, mode 0750), made by mariadb-install-db
#              on first use.
#   RUN_DIR    /run/croft/<module>/: my.cnf (rewritten at every start), server.pid (mariadbd's pid,
#              as start_prim started it), sock/ (the Unix socket and mariadbd's own pid file; only
#              root and mysql can enter it) and tmp/ (mariadbd's temporary files: not replicated).
#   LOG        /var/log/croft/<module>.log: the server's output.
# The lab gives every node its own /run/croft, /var/log/croft and /var/lib/croft-apps.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-mariadb-mirror}
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/mariadb}   # default: keep in step with module.yaml `dirs`
PORT=${MARIADB_MIRROR_PORT:-3306}
# The VIP the server listens on, besides 127.0.0.1: CROFT_VIP (croft sets it from module.yaml), else module.yaml's
# `vip:` line. An address that is not on the node when the server starts is left out (with a
# warning in the log): croft adds the VIP before start_prim.
VIP=${CROFT_VIP:-$(sed -n 's/^vip:[[:space:]]*\([0-9A-Fa-f.:]*\|none\).*$/\1/p' "$HERE/module.yaml" 2>/dev/null | head -1)}
# A user and a database for applications and tests, made at every start if missing (empty: none).
# The user may connect from the lab's clients and LAN (10.100.%, 10.77.%) and from 127.0.0.1.
# Change the password (or set APP_USER empty and make your own users).
APP_USER=croft
APP_PASSWORD=croft
APP_DB=croft
APP_HOSTS="127.0.0.1 10.100.% 10.77.%"
START_WAIT=120   # s: start_prim waits this long for the server to answer (InnoDB crash recovery
                 # after a failover replays its redo log)
STOP_WAIT=60     # s: a clean shutdown (mariadb-admin shutdown) may take this long, then TERM, then KILL
# ---- end of settings ----

MY_USER=mysql
MARIADBD=/usr/sbin/mariadbd
DATADIR=$DIR/data
RUN_DIR=/run/croft/$MODULE
SOCK_DIR=$RUN_DIR/sock
SOCK=$SOCK_DIR/mysqld.sock
TMP_DIR=$RUN_DIR/tmp
CONF=$RUN_DIR/my.cnf
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log
# Your settings: if the module folder holds mariadb.extra.cnf, the generated config includes it
# last (it may override anything, the durability settings included: do not).
EXTRA_CONF=$HERE/mariadb.extra.cnf

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

# Ours: a mariadbd started with this module's config file (mariadbd is one process).
ours() {
  alive "$1" && same_ns "$1" && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$MARIADBD" ] \
    && tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "--defaults-file=$CONF"
}

# Every process of this instance (one pid per line).
our_pids() {
  for exe in $(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$MARIADBD" 2>/dev/null); do
    pid=${exe#/proc/}; pid=${pid%/exe}
    if ours "$pid"; then echo "$pid"; fi
  done
}

# The mariadbd start_prim started (its pid in PID_FILE), if it is alive and ours.
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

# Stops whatever is left: SIGTERM (mariadbd's clean shutdown), then SIGKILL (InnoDB recovers at the
# next start: with innodb_flush_log_at_trx_commit=1 no committed transaction is lost).
kill_leftovers() {
  signal_all TERM $((STOP_WAIT * 10)) || signal_all KILL 30
}

# SQL client and admin tool as the server's root user, through the Unix socket (unix_socket
# authentication: the OS user root is MariaDB's root; --no-defaults: /etc/mysql is not read).
sql_root() {
  mariadb --no-defaults --socket="$SOCK" --user=root --connect-timeout=3 --batch --skip-column-names "$@"
}
admin_root() {
  mariadb-admin --no-defaults --socket="$SOCK" --user=root --connect-timeout=3 "$@"
}

# The server answers (exit 0).
answers() {
  admin_root --silent ping >/dev/null 2>&1
}

# The VIP when it is on one of this node's interfaces.
vip_here() {
  case $VIP in '' | none) return 1 ;; esac
  ip -o addr show 2>/dev/null | grep -qF " $VIP/"
}
