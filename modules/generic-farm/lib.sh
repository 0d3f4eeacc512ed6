# generic-farm: run any program as a farm application. Shared by start_both and stop_both (sourced,
# POSIX sh).
#
# To make it yours, copy the folder (modules/<your module>/) and edit the settings below, then
# module.yaml's `ports` and checker url to match:
#  - COMMAND: the program, as a sh command line that stays in the foreground (start_both puts it in
#    the background, in its own session and process group, output to LOG). Use `exec` so the
#    recorded pid is the program itself. It sees CROFT_NODE, CROFT_MODULE... and the variables here.
#  - MATCH: a string of the program's command line that no other program on the node has (used to
#    find it again if its pid file is lost; the full path of a file of the module is a good choice).
#  - READY_URL: start_both waits until this URL answers (at most READY_WAIT s); empty: no wait.
#  - STOP_SIGNAL, STOP_WAIT: stop_both sends STOP_SIGNAL to the program's process group, waits up
#    to STOP_WAIT s, then sends KILL.
# The default runs server.mjs, a tiny HTTP server answering "node <name>" on port 8081.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-generic-farm}
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}
export CROFT_NODE="$NODE"

# ---- settings: edit these ----
PORT=8081
export GENERIC_FARM_PORT="$PORT"
COMMAND="exec node '$HERE/server.mjs'"
MATCH="$HERE/server.mjs"
READY_URL="http://127.0.0.1:$PORT/"
READY_WAIT=5
STOP_SIGNAL=TERM
STOP_WAIT=5
# ---- end of settings ----

RUN_DIR=/run/croft/$MODULE               # pid file (private to each lab node)
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log           # the program's output (private to each lab node)
# The program's processes: croft.sh's default, its process group and whatever matches MATCH.

answers() {
  [ -z "$READY_URL" ] && return 0
  curl -fsS -o /dev/null -m 1 "$READY_URL" 2>/dev/null
}
