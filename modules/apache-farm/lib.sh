# Shared by start_both and stop_both of apache-farm (sourced, POSIX sh).
#
# The module runs Debian's Apache (/usr/sbin/apache2) with a config of its own, written by
# start_both under /run/croft/<module>/ at every start (`apache2 -f <that config> -k start`). It never
# reads or changes /etc/apache2, never uses Debian's envvars, apache2ctl or /run/apache2, and never
# starts or stops the machine's apache2 service.
#
# Settings (keep PORT in step with module.yaml: `ports` and the checker's url):
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-apache-farm}      # the module's name: names the run folder and the log files
# croft's process helpers (alive, main_pid, our_pids, signal_all...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
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
SITE=$HERE/site.conf

# Ours: an apache2 process (parent or child) started with our config. Children matter: they can
# outlive a parent killed with SIGKILL and keep the port.
candidates() { exe_pids "$APACHE"; }
ours() {
  [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$APACHE" ] && cmdline_arg "$1" "$CONF"
}

# Stops whatever is left of this instance: TERM, then KILL.
kill_leftovers() {
  stop_all TERM 30
}

answers() {
  curl -fsS -o /dev/null -m 1 "http://127.0.0.1:$PORT/" 2>/dev/null
}
