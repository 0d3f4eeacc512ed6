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
VIP=${CROFT_VIP:-$(sed -n 's/^vip:[[:space:]]*\([0-9A-Fa-f.:]*\|none\).*$/\1/p' "$HERE/module.yaml" 2>/dev/null | head -1)}

RUN_DIR=/run/croft/$MODULE               # pid file (private to each lab node)
PID_FILE=$RUN_DIR/server.pid
LOG=/var/log/croft/$MODULE.log           # the program's output (private to each lab node)

SELF_MNT=$(readlink /proc/self/ns/mnt)
SELF_NET=$(readlink /proc/self/ns/net)

# A process is alive when it exists and is not a zombie: a killed process whose parent has not
# reaped it still answers kill -0.
alive() {
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# In the lab all nodes share one pid space: a pid or a command line alone could name another
# node's program, so a process is ours only if it is in our mount and network namespaces.
same_ns() {
  [ "$(readlink "/proc/$1/ns/mnt" 2>/dev/null)" = "$SELF_MNT" ] && [ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" = "$SELF_NET" ]
}

has_match() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$MATCH"
}

# The pid in the pid file (also the program's process group), if any.
recorded_pid() {
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null)
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  echo "$pid"
}

# The program named by the pid file, if it is alive and ours.
main_pid() {
  pid=$(recorded_pid) || return 1
  alive "$pid" && same_ns "$pid" && has_match "$pid" && echo "$pid"
}

# Every process of the program: its process group (children included, even when the program
# itself was killed) and whatever matches MATCH, in our namespaces (one pid per line).
our_pids() {
  group=$(recorded_pid || true)
  {
    if [ -n "$group" ]; then
      # Field 3 after the command name is the process group.
      awk -v g="$group" '{ sub(/^.*\) /, ""); if ($3 == g) print FILENAME }' /proc/[0-9]*/stat 2>/dev/null | cut -d/ -f3
    fi
    grep -lF -- "$MATCH" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
  } | sort -un | while read -r pid; do
    [ "$pid" = "$$" ] && continue
    if alive "$pid" && same_ns "$pid"; then echo "$pid"; fi
  done
}

# Sends sig to every process of the program; waits up to tenths/10 s for them to go.
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

# Runs a READY/CHECK probe (see the settings): exit 0 when it passes.
probe() {
  case $1 in
    '') return 0 ;;
    tcp) timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null ;;
    http://* | https://*) curl -fsS -o /dev/null -m 2 "$1" 2>/dev/null ;;
    *) timeout 5 sh -c "$1" >/dev/null 2>&1 ;;
  esac
}

# The VIP when it is on one of this node's interfaces.
vip_here() {
  case $VIP in '' | none) return 1 ;; esac
  ip -o addr show 2>/dev/null | grep -qF " $VIP/"
}
