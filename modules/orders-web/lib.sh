# orders-web: shared by start_both, stop_both and check_db (sourced, POSIX sh).
#
# Why Python 3 with psycopg2: both are Debian packages (python3, python3-psycopg2), so the module
# needs nothing from npm or pip and nothing from croft's own node_modules (the module folder is
# copied to /etc/croft/modules/<name>/ and runs from there); psycopg2 is libpq underneath, the
# PostgreSQL client every other tool uses, with its connect and TCP timeouts. A psql per order
# would cost a process and a new session per order.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-orders-web}
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these ----
PORT=8000                      # keep in step with module.yaml's `ports` and http checker
# The database: a postgresql-mirror module's VIP, role, password and database (the defaults of
# modules/postgresql-mirror/lib.sh: change the password there and here).
DB_HOST=10.77.0.60
DB_PORT=5432
DB_USER=croft
DB_PASSWORD=croft
DB_NAME=croft
DB_POOL=20                     # at most this many sessions per node (PostgreSQL's max_connections: 100)
# Debian's Python, where python3-psycopg2 is (not whatever python3 comes first in PATH: a pyenv or
# virtualenv one would not have it).
PYTHON=/usr/bin/python3
READY_WAIT=5                   # s: start_both waits this long for /health
STOP_WAIT=5                    # s: stop_both waits this long after TERM, then KILL
# ---- end of settings ----

export ORDERS_NODE="$NODE" ORDERS_PORT="$PORT" ORDERS_POOL="$DB_POOL"
export PGHOST="$DB_HOST" PGPORT="$DB_PORT" PGUSER="$DB_USER" PGPASSWORD="$DB_PASSWORD" PGDATABASE="$DB_NAME"
MATCH="$HERE/server.py"
RUN_DIR=/run/croft/$MODULE               # pid file (private to each lab node)
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log           # the service's output (private to each lab node)
READY_URL="http://127.0.0.1:$PORT/health"

answers() {
  curl -fsS -o /dev/null -m 1 "$READY_URL" 2>/dev/null
}
