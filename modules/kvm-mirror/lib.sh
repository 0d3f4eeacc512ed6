# kvm-mirror: a whole virtual machine (QEMU, with KVM where the CPU offers it, TCG otherwise) as a
# mirror application. Shared by start_prim, stop_prim, check and build-guest (sourced, POSIX sh).
#
# The VM's disk image (raw or qcow2) is in a replicated directory: croft mounts the mirror over it
# before start_prim, which boots the VM from it; stop_prim stops it; `check` (a script checker)
# probes a port the guest serves. No restart script to write and no application knowledge: what
# the guest flushed to its disk (fsync, O_DIRECT/O_SYNC, a journal commit) QEMU turned into an
# fdatasync of the image, which the mirror acknowledges only once the other node has it; after a
# failover the other node boots the same disk as after a power cut.
#
# To run your own VM, copy the folder (modules/<your module>/) and set, by editing the settings
# below or in vm.env in the module folder (sh assignments, sourced after them):
#     DISK="$DIR/myvm.qcow2"  DISK_FORMAT=qcow2  DISK_SIZE=    # an existing disk: nothing created
#     KERNEL=  INITRD=  APPEND=                                # empty: the guest boots from its disk
#     MEM=2048  CPUS=2
#     FORWARDS="tcp::8080-:80 tcp::2222-:22"                   # node port -> guest port
#     PORT=8080  PROBE=tcp                                     # what start_prim waits for and check probes
# then module.yaml's `dirs` (and `vip`, `port`).
#
# Where things are:
#   DIR       the replicated directory (module.yaml `dirs`, first entry; croft passes it as
#             CROFT_MIRROR_DIR_0, which wins over the default below): the disk image.
#   BOOT_DIR  the demo guest's kernel command line files: its initramfs, built offline by build-guest
#             from busybox-static and the modules of the node's Debian kernel (not replicated: each
#             node builds its own at its first start, or by hand).
#   RUN_DIR   /run/croft/<module>/: qemu.pid, the monitor socket, console.log (the guest's serial
#             console) and accel (kvm or tcg: what this start used).
#   LOG       /var/log/croft/<module>.log: QEMU's own output and the scripts' notes.
# The lab gives every node its own /run/croft, /var/log/croft and /var/lib/croft-apps.
HERE=$(cd "$(dirname "$0")" && pwd)
MODULE=${CROFT_MODULE:-kvm-mirror}
# croft's process helpers (alive, pid_file, main_pid, our_pids...): modules/lib/croft.sh.
CROFT_LIB=${CROFT_LIB:-$(for f in /usr/share/croft/modules/lib/croft.sh "$HERE/../lib/croft.sh"; do [ -f "$f" ] && echo "$f" && break; done)}
[ -f "$CROFT_LIB" ] || { echo "$MODULE: croft's script library croft.sh is in none of \$CROFT_LIB, /usr/share/croft/modules/lib/, $HERE/../lib/" >&2; exit 1; }
# shellcheck disable=SC1090
. "$CROFT_LIB"
NODE=${CROFT_NODE:-$(hostname)}

# ---- settings: edit these (or set them in vm.env) ----
DIR=${CROFT_MIRROR_DIR_0:-/var/lib/croft-apps/kvm}   # default: keep in step with module.yaml `dirs`
DISK='$DIR/disk.raw'        # the VM's disk, in a replicated directory ($DIR expanded below)
DISK_FORMAT=raw             # raw or qcow2
DISK_SIZE=64M               # created (sparse, empty) at the first start when missing; empty: never
BOOT_DIR=/var/lib/croft-apps/kvm-boot   # the demo guest's initramfs (not replicated)
KERNEL=                     # the guest's kernel (empty with INITRD empty: boot the disk); the demo:
                            # the newest /boot/vmlinuz-* of the node (set below)
INITRD='$BOOT_DIR/initramfs.cpio.gz'   # built by build-guest when missing
APPEND="console=ttyS0 quiet panic=-1"
MEM=128                     # MiB
CPUS=1
ACCEL=auto                  # kvm, tcg, or auto: kvm when /dev/kvm works here, else tcg
FORWARDS="tcp::7778-:7778"  # QEMU user networking: node port -> guest port (the guest's services
                            # answer on the node's addresses, the VIP included)
PORT=7778                   # what start_prim waits for and check probes, on 127.0.0.1
PROBE=ping                  # ping: a `ping` line answered `pong` (the demo guest); tcp: a connection
                            # accepted is not enough here (QEMU accepts for the guest), so only for
                            # guests whose service answers first; or any sh command (exit 0: healthy)
QEMU_ARGS=                  # more qemu-system-x86_64 options
START_WAIT=60               # s: start_prim waits this long for the guest to answer
STOP_WAIT=10                # s: stop_prim's grace between SIGTERM to QEMU and SIGKILL
# ---- end of settings ----
ENV_FILE=${KVM_MIRROR_ENV:-$HERE/vm.env}
if [ -f "$ENV_FILE" ]; then
  # shellcheck disable=SC1090
  . "$ENV_FILE"
fi
DIR=${CROFT_MIRROR_DIR_0:-$DIR}
eval "DISK=\"$DISK\""
eval "INITRD=\"$INITRD\""
if [ -z "$KERNEL" ] && [ -n "$INITRD" ]; then
  KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
fi

QEMU=${QEMU:-qemu-system-x86_64}
RUN_DIR=/run/croft/$MODULE
PID_FILE=$RUN_DIR/qemu.pid
MONITOR=$RUN_DIR/monitor.sock
CONSOLE=$RUN_DIR/console.log
LOG=/var/log/croft/$MODULE.log
# QEMU's -name: how this module's QEMU is found again if its pid file is lost.
VM_NAME=croft-$MODULE

# Ours: a QEMU whose command line has `-name croft-<module>`.
candidates() { exe_pids "*/$QEMU"; }
ours() { cmdline_arg "$1" "$VM_NAME"; }

# The guest answers on PORT (see PROBE).
answers() {
  case $PROBE in
    ping) timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && echo ping >&3 && read -r l <&3 && [ \"\$l\" = pong ]" 2>/dev/null ;;
    tcp) timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null ;;
    *) sh -c "$PROBE" ;;
  esac
}

# Whether KVM works here for an ordinary guest: /dev/kvm, a CPU with hardware virtualisation
# (VMX or SVM: a /dev/kvm without it, such as kvm_pvm's, runs only guests built for it), and a QEMU
# with accel=kvm that starts. Sets ACCEL_WHY (for the log and $RUN_DIR/accel).
kvm_works() {
  if [ ! -c /dev/kvm ]; then ACCEL_WHY="no /dev/kvm"; return 1; fi
  if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    ACCEL_WHY="/dev/kvm present ($(ls /sys/module 2>/dev/null | grep -E '^kvm_' | tr '\n' ' ' | sed 's/ $//')) but the CPU shows no VMX/SVM"
    return 1
  fi
  if ! echo quit | timeout 10 "$QEMU" -machine none,accel=kvm -display none -nodefaults -monitor stdio >/dev/null 2>&1; then
    ACCEL_WHY="QEMU cannot use /dev/kvm"
    return 1
  fi
  ACCEL_WHY="/dev/kvm and VMX/SVM"
}
