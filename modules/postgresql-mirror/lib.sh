# Shared by start_prim, stop_prim and check of postgresql-mirror (sourced, POSIX sh).
#
# The module runs Debian's PostgreSQL server (/usr/lib/postgresql/<version>/bin/postgres) on a data
# directory inside the mirror's replicated directory, with a config of its own written by start_prim
# under /run/croft/<module>/ at every start. It never reads or changes /etc/postgresql, never uses
# /var/run/postgresql, and never starts or stops the machine's clusters or its postgresql service.
#
# Where things are:
#   DIR        the replicated directory (module.yaml `dirs`, first entry): croft mounts the mirror
#              over it before start_prim. croft passes dirs[0] as CROFT_MIRROR_DIR_0,
#              which wins over the default below (tests set it to a temporary folder).
#   PGDATA     $DIR/data: the cluster's files (owned by postgres, mode 0700), made by initdb on first
#              use. A folder below the mount point, so that its owner and mode are plain files' ones.
#   RUN_DIR    /run/croft/<module>/: postgresql.conf, pg_hba.conf, pg_ident.conf (rewritten at every
#              start), server.pid (the postmaster's pid, as start_prim started it) and sock/ (the Unix
#              socket, only root and postgres can enter it).
#   LOG        /var/log/croft/<module>.log: the server's output.
# The lab gives every node its own /run/croft, /var/log/croft and /var/lib/croft-apps.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-postgresql-mirror}
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/postgresql}   # default: keep in step with module.yaml `dirs`
PORT=${PG_MIRROR_PORT:-5432}
# The VIP the server listens on, besides 127.0.0.1: CROFT_VIP (croft sets it from module.yaml), else module.yaml's
# `vip:` line. An address that is not on the node when the server starts is left out (with a
# warning in the log): croft adds the VIP before start_prim.
VIP=${CROFT_VIP:-$(yaml_vip)}
# Networks allowed to connect over TCP (password: scram-sha-256): the lab's clients and LAN.
CLIENT_NETS="127.0.0.1/32 10.100.0.0/16 10.77.0.0/16"
# A role and a database for applications and tests, made at every start if missing (empty: none).
# Change the password (or set APP_ROLE empty and make your own roles).
APP_ROLE=croft
APP_PASSWORD=croft
APP_DB=croft
START_WAIT=120   # s: start_prim waits this long for the server to accept connections (crash
                 # recovery after a failover replays the WAL written since the last checkpoint)
STOP_WAIT=60     # s: pg_ctl stop -m fast waits this long (it checkpoints), then SIGQUIT, then SIGKILL
# ---- end of settings ----

PG_USER=postgres
PGDATA=$DIR/data
RUN_DIR=/run/croft/$MODULE
SOCK_DIR=$RUN_DIR/sock
CONF=$RUN_DIR/postgresql.conf
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log
# Your settings: if the module folder holds postgresql.extra.conf, the generated config includes it
# last (it may override anything above, the durability settings included: do not).
EXTRA_CONF=$HERE/postgresql.extra.conf

# The server's binaries: those of the cluster's version when PGDATA exists (PG_VERSION), else the
# newest installed.
pg_bin() {
  if [ -f "$PGDATA/PG_VERSION" ]; then
    v=$(cat "$PGDATA/PG_VERSION")
    if [ -x "/usr/lib/postgresql/$v/bin/postgres" ]; then echo "/usr/lib/postgresql/$v/bin"; return 0; fi
    echo "postgresql-mirror: the cluster in $PGDATA is version $v, and /usr/lib/postgresql/$v/bin/postgres is not installed" >&2
    return 1
  fi
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$b" ] || [ ! -x "$b/postgres" ]; then
    echo "postgresql-mirror: no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)" >&2
    return 1
  fi
  echo "$b"
}

# Runs a command as the postgres user (setpriv execs it: no extra process in between).
as_pg() {
  setpriv --reuid="$PG_USER" --regid="$PG_USER" --init-groups -- "$@"
}

# Ours: a PostgreSQL server process (postmaster or child) working in PGDATA (the postmaster chdirs
# to its data directory; its children inherit it). Children matter: a backend outlives a
# postmaster killed with SIGKILL and keeps files open.
candidates() { exe_pids '/usr/lib/postgresql/*/bin/postgres'; }
ours() {
  case $(readlink "/proc/$1/exe" 2>/dev/null) in /usr/lib/postgresql/*/bin/postgres) true ;; *) false ;; esac \
    && in_dir "$1" "$PGDATA"
}

# Stops whatever is left: SIGQUIT (PostgreSQL's immediate shutdown: children exit at once, the next
# start runs crash recovery, which loses no committed transaction with fsync and full_page_writes
# on), then SIGKILL. SIGTERM is not used: it is PostgreSQL's "smart" shutdown, which waits for every
# client to disconnect.
kill_leftovers() {
  stop_all QUIT 50
}

# The server accepts connections (exit 0), through its Unix socket.
answers() {
  bin=$(pg_bin 2>/dev/null) || return 1
  "$bin/pg_isready" -q -h "$SOCK_DIR" -p "$PORT" -U "$PG_USER" -d postgres -t 2 >/dev/null 2>&1
}

# Runs SQL as the postgres superuser through the Unix socket (trust: only root and postgres can
# reach the socket, see sock/'s mode).
psql_su() {
  bin=$(pg_bin) || return 1
  "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PORT" -U "$PG_USER" -d postgres "$@"
}
