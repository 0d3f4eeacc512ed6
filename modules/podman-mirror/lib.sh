# podman-mirror: a whole container (Podman, rootful) as a mirror application. Shared by start_prim,
# stop_prim, check and build-image (sourced, POSIX sh).
#
# The container's volumes are replicated directories: croft mounts the mirror over each before
# start_prim, which runs the container with them bound in; stop_prim stops and removes it; `check`
# (a script checker) says whether it runs and answers. No application knowledge is needed: any
# image whose data lives in its volumes, and which syncs what it acknowledges, fails over with
# nothing lost.
#
# To run your own container, copy the folder (modules/<your module>/) and set, by editing the
# settings below or in container.env in the module folder (sh assignments, sourced after them):
#     IMAGE=localhost/myapp:1
#     IMAGE_BUILD="podman --root \"\$STORE\" load -i /srv/images/myapp.tar"   # or empty
#     VOLUMES="\$DIR:/var/lib/myapp"
#     PORT=8080
#     RUN_ARGS="--env MYAPP_MODE=prod"
#     COMMAND=                                                   # empty: the image's CMD
# then module.yaml's `dirs` (and `vip`, `port`). Nothing is ever pulled from a registry
# (`--pull never`): each node's store needs the image, which start_prim gets by running
# IMAGE_BUILD when it is missing (the default builds the demo image offline: build-image).
#
# Where things are:
#   DIR        the replicated directory (module.yaml `dirs`, first entry; croft passes it as
#              CROFT_MIRROR_DIR_0, which wins over the default below). Mounted at /data in the
#              container by default (VOLUMES).
#   STORE      podman's image and container store of this module on this node (--root), NOT
#              replicated: each node holds its own copy of the image. The machine's own podman
#              store (/var/lib/containers) is never used, nor its containers touched.
#   RUN_DIR    /run/croft/<module>/: podman's runroot, tmpdir and crun's state (tmpfs on a real node:
#              a reboot clears it, and start_prim clears it itself when no container of the
#              module runs, as after a crash of the node).
#   LOG        /var/log/croft/<module>.log: the container's output (k8s-file) and the scripts' notes.
# The lab gives every node its own /run/croft, /var/log/croft and /var/lib/croft-apps.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-podman-mirror}
# croft's process helpers (alive, pid_file...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these (or set them in container.env) ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/podman}   # default: keep in step with module.yaml `dirs`
STORE=/var/lib/croft-apps/podman-store/$MODULE   # this module's podman store on this node (not replicated)
NAME=croft-$MODULE                         # the container's name
IMAGE=localhost/croft-records:1            # the demo image (build-image): a records service on PORT
IMAGE_BUILD="$HERE/build-image"            # run when IMAGE is not in STORE (empty: a missing image is an error)
VOLUMES="$DIR:/data"                       # host:container[:options], space-separated; the hosts' paths
                                           # must be replicated directories (module.yaml `dirs`)
PORT=7777                                  # what start_prim waits for and check probes, on 127.0.0.1
RUN_ARGS=                                  # more `podman run` options (--env, --user, --cap-drop...)
COMMAND=                                   # the container's command (empty: the image's CMD)
START_WAIT=30                              # s: start_prim waits this long for PORT to accept
STOP_WAIT=10                               # s: `podman stop` grace (SIGTERM, then SIGKILL)
# The container shares the node's network namespace (--network host): it listens on the VIP
# croft adds, with no NAT and no container network to set up. Its resource limits are set
# explicitly (a root without CAP_SYS_RESOURCE, as in some VMs and containers, cannot raise them to
# podman's defaults), and it runs in the cgroup of croft's start_prim run (--cgroups=disabled:
# croft already contains what its scripts start, and no cgroup manager is needed).
LIMITS="--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
# ---- end of settings ----
ENV_FILE=${PODMAN_MIRROR_ENV:-$HERE/container.env}
if [ -f "$ENV_FILE" ]; then
  # shellcheck disable=SC1090
  . "$ENV_FILE"
fi
DIR=${CROFT_MIRROR_DIR_0:-$DIR}

RUN_DIR=/run/croft/$MODULE
LOG=/var/log/croft/$MODULE.log
PODMAN_BIN=${PODMAN_BIN:-podman}

# podman with this module's own store, run state and crun state (see above); events to a file
# (no journald needed). Its locks are files in its tmpdir (containers.conf `lock_type = "file"`),
# not the machine-wide shared memory segment /dev/shm/libpod_lock that every podman store of the
# machine would share (lock numbers of this store clashing with another's).
pm() {
  if [ ! -f "$RUN_DIR/containers.conf" ]; then
    mkdir -p "$RUN_DIR"
    printf '# Written by croft podman-mirror lib.sh\n[engine]\nlock_type = "file"\n' >"$RUN_DIR/containers.conf"
  fi
  CONTAINERS_CONF="$RUN_DIR/containers.conf" "$PODMAN_BIN" --root "$STORE" --runroot "$RUN_DIR/runroot" --tmpdir "$RUN_DIR/tmp" \
    --runtime crun --runtime-flag "root=$RUN_DIR/crun" \
    --cgroup-manager cgroupfs --events-backend file "$@"
}

# Pids of this module's conmon processes (the monitor podman leaves beside each container): found by
# their command line, which names the store (-b <STORE>/...) and the container (-n NAME).
conmon_pids() {
  for p in $(exe_pids '*/conmon'); do
    if cmdline_arg "$p" "$NAME" && cmdline_has "$p" "$STORE/"; then echo "$p"; fi
  done
}

# The container runs (podman's view, and its conmon is alive: after a crash of the node podman's
# state may still say running).
running() {
  [ -n "$(conmon_pids)" ] && [ "$(pm container inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]
}

# PORT on 127.0.0.1 accepts a connection.
answers() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null
}
