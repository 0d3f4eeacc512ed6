# generic-mirror: run any program as a mirror application. Shared by start_prim, stop_prim and
# check (sourced, POSIX sh).
#
# To make it yours, copy the folder (modules/<your module>/) and set what runs, either by editing
# the settings below or, without touching the scripts, in an env file: app.env in the module
# folder (or the file named by GENERIC_MIRROR_ENV), sh assignments such as
#     COMMAND="exec /usr/local/bin/myserver --data \"\$CROFT_MIRROR_DIR\" --port 9000"
#     MATCH=/usr/local/bin/myserver
#     PORT=9000
#     READY=tcp
# Then module.yaml's `dirs`, and the tcp checker's port, to match.
#  - COMMAND: the program, as a sh command line that stays in the foreground (start_prim puts it in
#    the background, in its own session and process group, output to LOG). Use `exec` so the
#    recorded pid is the program itself. It sees CROFT_NODE, CROFT_MODULE..., CROFT_MIRROR_DIR (the
#    replicated directory), GENERIC_MIRROR_PORT (PORT) and GENERIC_MIRROR_LISTEN (127.0.0.1 and the
#    VIP when it is on the node, comma-separated; 0.0.0.0 with `vip: none`).
#  - MATCH: a string of the program's command line that no other program on the node has (used to
#    find it again if its pid file is lost; the full path of a file of the module is a good choice).
#  - RUN_AS: the user the program runs as (empty: root). The replicated directory is given to it.
#  - READY: how start_prim knows the program is up (it waits at most START_WAIT s): `tcp` (PORT on
#    127.0.0.1 accepts a connection), an http:// URL (answers 2xx), any other sh command (exits 0),
#    or empty (no wait).
#  - CHECK: what the `check` script runs (a checker of type script): same forms as READY.
#  - STOP_SIGNAL, STOP_WAIT: stop_prim sends STOP_SIGNAL to the program's process group, waits up
#    to STOP_WAIT s, then sends KILL. Write your program so that STOP_SIGNAL leaves its files clean,
#    and so that every answered write was fsync'd: the mirror forwards fsync to the other node.
# The default runs server.mjs, a tiny HTTP key/value store on port 8082 that keeps its data in the
# replicated directory.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-generic-mirror}
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}
export CROFT_NODE="$NODE"

# ---- settings: edit these (or set them in app.env) ----
DIR=/var/lib/croft-apps/generic   # keep in step with module.yaml `dirs`
PORT=8082
COMMAND="exec node '$HERE/server.mjs'"
MATCH="$HERE/server.mjs"
RUN_AS=
READY=tcp
CHECK=tcp
START_WAIT=30
STOP_SIGNAL=TERM
STOP_WAIT=10
# ---- end of settings ----
ENV_FILE=${GENERIC_MIRROR_ENV:-$HERE/app.env}
if [ -f "$ENV_FILE" ]; then
  # shellcheck disable=SC1090
  . "$ENV_FILE"
fi
# croft passes module.yaml's dirs[0] as CROFT_MIRROR_DIR_0, which wins over DIR (tests set it to
# a temporary folder).
DIR=${CROFT_MIRROR_DIR_0:-$DIR}
# The VIP: CROFT_VIP (croft sets it from module.yaml), else module.yaml's `vip:` line.
VIP=${CROFT_VIP:-$(yaml_vip)}

RUN_DIR=/run/croft/$MODULE               # pid file (private to each lab node)
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log           # the program's output (private to each lab node)
# The program's processes: croft.sh's default, its process group and whatever matches MATCH.

# Runs a READY/CHECK probe (see the settings): exit 0 when it passes.
probe() {
  case $1 in
    '') return 0 ;;
    tcp) timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null ;;
    http://* | https://*) curl -fsS -o /dev/null -m 2 "$1" 2>/dev/null ;;
    *) timeout 5 sh -c "$1" >/dev/null 2>&1 ;;
  esac
}
