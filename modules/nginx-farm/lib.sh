# Shared by start_both and stop_both of nginx-farm (sourced, POSIX sh).
#
# The module runs Debian's nginx (/usr/sbin/nginx) with a config of its own, written by start_both
# under /run/croft/<module>/ at every start. It never reads or changes /etc/nginx, never uses
# /run/nginx.pid, and never starts or stops the machine's nginx service: both can be installed side
# by side (not both on port 80, of course).
#
# Settings (keep PORT in step with module.yaml: `ports` and the checker's url):
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-nginx-farm}       # the module's name: names the run folder and the log files
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}          # croft gives the node's name to its scripts
PORT=${NGINX_FARM_PORT:-80}              # every node of a farm listens on the same port, on 0.0.0.0
                                         # (so it serves the VIP as well as the node's own address)
WORKERS=${NGINX_FARM_WORKERS:-auto}      # nginx worker_processes
NGINX=/usr/sbin/nginx
RUN_DIR=/run/croft/$MODULE               # config, pid file, temp files (private to each lab node)
CONF=$RUN_DIR/nginx.conf
PID_FILE=$RUN_DIR/nginx.pid
LOG_DIR=/var/log/nginx                   # Debian's folder (private to each lab node); files named after the module
ERROR_LOG=$LOG_DIR/croft-$MODULE-error.log
ACCESS_LOG=$LOG_DIR/croft-$MODULE-access.log
# Your site: if the module folder holds site.conf (nginx `server { ... }` blocks), it is included
# instead of the built-in page, which answers every request with "node <name>".
SITE=$HERE/site.conf

# Ours: an nginx process (master or worker) of this instance, that is one holding our error log
# open. Workers matter: they outlive a master killed with SIGKILL and keep the port.
candidates() { exe_pids "$NGINX"; }
ours() {
  [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$NGINX" ] && ls -l "/proc/$1/fd" 2>/dev/null | grep -qF -- "-> $ERROR_LOG"
}

# Stops whatever is left of this instance: TERM (nginx's fast shutdown), then KILL.
kill_leftovers() {
  stop_all TERM 30
}

answers() {
  curl -fsS -o /dev/null -m 1 "http://127.0.0.1:$PORT/" 2>/dev/null
}
