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
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/mariadb}   # default: keep in step with module.yaml `dirs`
PORT=${MARIADB_MIRROR_PORT:-3306}
# The VIP the server listens on, besides 127.0.0.1: CROFT_VIP (croft sets it from module.yaml), else module.yaml's
# `vip:` line. An address that is not on the node when the server starts is left out (with a
# warning in the log): croft adds the VIP before start_prim.
VIP=${CROFT_VIP:-$(yaml_vip)}
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

# Ours: a mariadbd started with this module's config file (mariadbd is one process).
candidates() { exe_pids "$MARIADBD"; }
ours() {
  [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$MARIADBD" ] && cmdline_arg "$1" "--defaults-file=$CONF"
}

# Stops whatever is left: SIGTERM (mariadbd's clean shutdown), then SIGKILL (InnoDB recovers at the
# next start: with innodb_flush_log_at_trx_commit=1 no committed transaction is lost).
kill_leftovers() {
  stop_all TERM $((STOP_WAIT * 10))
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
