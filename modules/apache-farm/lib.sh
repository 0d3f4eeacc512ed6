# Shared by start_both and stop_both of apache-farm (sourced, POSIX sh).
#
# The module runs Debian's Apache (/usr/sbin/apache2) with a config of its own, written by
# start_both under /run/croft/<module>/ at every start (`apache2 -f <that config> -k start`). It never
# reads or changes /etc/apache2, never uses Debian's envvars, apache2ctl or /run/apache2, and never
# starts or stops the machine's apache2 service.
#
# Settings (keep PORT in step with module.yaml: `ports` and the checker's url):
MODULE=${CROFT_MODULE:-apache-farm}      # the module's name: names the run folder and the log files
NODE=${CROFT_NODE:-$(hostname)}          # croft gives the node's name to its scripts
PORT=${APACHE_FARM_PORT:-80}             # every node of a farm listens on the same port, on 0.0.0.0
                                         # (so it serves the VIP as well as the node's own address)
APACHE=/usr/sbin/apache2
MODULES_DIR=/usr/lib/apache2/modules
RUN_DIR=/run/croft/$MODULE               # config, pid file, runtime files (private to each lab node)
CONF=$RUN_DIR/apache2.conf
PID_FILE=$RUN_DIR/apache2.pid
DOC_ROOT=/srv/croft/$MODULE/htdocs       # the built-in page (readable by www-data)
LOG_DIR=/var/log/apache2                 # Debian's folder (private to each lab node); files named after the module
ERROR_LOG=$LOG_DIR/croft-$MODULE-error.log
ACCESS_LOG=$LOG_DIR/croft-$MODULE-access.log
STOP_WAIT=5                              # seconds a graceful stop may take (requests in progress finish)
# Your site: if the module folder holds site.conf (Apache directives: modules to load, <VirtualHost>,
# <Directory>...), it is included after the built-in settings; without it every request gets the
# built-in page, "node <name>".
HERE=$(cd "$(dirname "$0")" && pwd)
SITE=$HERE/site.conf

SELF_MNT=$(readlink /proc/self/ns/mnt)
SELF_NET=$(readlink /proc/self/ns/net)

# A process is alive when it exists and is not a zombie: a killed process whose parent has not
# reaped it still answers kill -0.
alive() {
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# In the lab all nodes share one pid space: a pid or a command line alone could name another
# node's apache2, so a process is ours only if it is in our mount and network namespaces.
same_ns() {
  [ "$(readlink "/proc/$1/ns/mnt" 2>/dev/null)" = "$SELF_MNT" ] && [ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" = "$SELF_NET" ]
}

# Ours: an apache2 process (parent or child) started with our config. Children matter: they can
# outlive a parent killed with SIGKILL and keep the port.
ours() {
  alive "$1" && same_ns "$1" && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$APACHE" ] \
    && tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$CONF"
}

# Every process of this instance (one pid per line).
our_pids() {
  for exe in $(find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$APACHE" 2>/dev/null); do
    pid=${exe#/proc/}; pid=${pid%/exe}
    if ours "$pid"; then echo "$pid"; fi
  done
}

# The parent named by the pid file, if it is alive and ours.
parent_pid() {
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

# Stops whatever is left of this instance: TERM, then KILL.
kill_leftovers() {
  signal_all TERM 30 || signal_all KILL 30
}

answers() {
  curl -fsS -o /dev/null -m 1 "http://127.0.0.1:$PORT/" 2>/dev/null
}
