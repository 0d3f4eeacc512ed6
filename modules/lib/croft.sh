# croft.sh: the process helpers every shipped module's scripts share (sourced, POSIX sh). croft
# gives each script it runs CROFT_LIB, the path of this file; a module's lib.sh sources it from
# there, else from /usr/share/croft/modules/lib/ (the Debian package), else from ../lib/ beside the
# module folder (this repository).
#
# A module's lib.sh sets PID_FILE (the pid its start script records) and defines, after sourcing
# (or keeps the defaults below, for a program named by MATCH):
#   candidates   prints the pids that may be the module's (exe_pids, group_pids, cmdline_pids below)
#   ours PID     exit 0 when that candidate is one of the module's processes
#   is_main PID  the recorded pid is still the module's main process (default: ours)
# and gets: alive, pid_file, main_pid, our_pids, signal_all, stop_all, in_dir, vip_here.
# A process is looked for in /proc: on a real node that is the machine's, and in croft's lab each
# node has its own PID namespace and /proc, so pids and command lines name only that node's
# processes.

# A process is alive when it exists and is not a zombie: a killed process whose parent has not
# reaped it still answers kill -0.
alive() {
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The number in a pid file, if the file holds one.
pid_file() {
  [ -f "$1" ] || return 1
  pf_pid=$(cat "$1" 2>/dev/null)
  case $pf_pid in '' | *[!0-9]*) return 1 ;; esac
  echo "$pf_pid"
}

# Pids of the processes whose executable (/proc/<pid>/exe) matches a find -lname pattern.
exe_pids() {
  find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$1" 2>/dev/null | cut -d/ -f3
}

# Pids of the processes of a process group (field 3 after the command name in /proc/<pid>/stat).
group_pids() {
  awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g) print FILENAME }' /proc/[0-9]*/stat 2>/dev/null | cut -d/ -f3
}

# Pids of the processes whose command line contains a string.
cmdline_pids() {
  grep -lF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
}

# The process's command line contains a string / has exactly this argument.
cmdline_has() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}
cmdline_arg() {
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$2"
}

# The process works in dir (its cwd, as the kernel shows it: symbolic links resolved; the plain
# path too, for a mount that no longer answers).
in_dir() {
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  [ "$cwd" = "$2" ] || [ "$cwd" = "$(readlink -f "$2" 2>/dev/null)" ]
}

# The defaults, for a program started with setsid whose pid start_* recorded (see
# group_and_match_pids) and which MATCH, a string of its command line, names: a module that finds
# its processes otherwise (by executable...) defines candidates and ours.
candidates() {
  group_and_match_pids "$MATCH"
}
ours() {
  true
}
is_main() {
  if [ -n "${MATCH:-}" ]; then cmdline_has "$1" "$MATCH"; else ours "$1"; fi
}

# The process named by PID_FILE, if it is alive and still the module's.
main_pid() {
  mp_pid=$(pid_file "$PID_FILE") || return 1
  alive "$mp_pid" && is_main "$mp_pid" && echo "$mp_pid"
}

# Every live process of the module, this script excepted (one pid per line).
our_pids() {
  candidates | sort -un | while read -r op_pid; do
    [ "$op_pid" = "$$" ] && continue
    if alive "$op_pid" && ours "$op_pid"; then echo "$op_pid"; fi
  done
}

# Sends sig to every process of the module; waits up to tenths/10 s for them to go.
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

# sig first, up to tenths/10 s, then KILL (3 s): 0 when nothing of the module is left.
stop_all() {
  signal_all "$1" "$2" || signal_all KILL 30
}

# The VIP of module.yaml's `vip:` line, for VIP=${CROFT_VIP:-$(yaml_vip)} (croft sets CROFT_VIP).
yaml_vip() {
  sed -n 's/^vip:[[:space:]]*\([0-9A-Fa-f.:]*\|none\).*$/\1/p' "$HERE/module.yaml" 2>/dev/null | head -1
}

# The VIP is on one of this node's interfaces.
vip_here() {
  case $VIP in '' | none) return 1 ;; esac
  ip -o addr show 2>/dev/null | grep -qF " $VIP/"
}

# For a program started with setsid whose pid start_* recorded in PID_FILE (so also its process
# group: children included, even when the program itself was killed), plus whatever process has
# the string in its command line (the program, if its pid file was lost).
group_and_match_pids() {
  gm_group=$(pid_file "$PID_FILE" || true)
  if [ -n "$gm_group" ]; then group_pids "$gm_group"; fi
  cmdline_pids "$1"
}
