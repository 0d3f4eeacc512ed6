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

answers() {
  [ -z "$READY_URL" ] && return 0
  curl -fsS -o /dev/null -m 1 "$READY_URL" 2>/dev/null
}
