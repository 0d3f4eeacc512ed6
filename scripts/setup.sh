#!/usr/bin/env bash
# Installs what croft needs on a fresh Debian machine, idempotently, and quickly when nothing is missing:
# Debian packages (through apt-get), npm packages, the Rust addon and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: command -> package. Only missing ones are installed.
declare -A need=(
  [nft]=nftables [ip]=iproute2 [tc]=iproute2 [ping]=iputils-ping [conntrack]=conntrack
  [fusermount3]=fuse3 [nsenter]=util-linux [unshare]=util-linux [pkill]=procps [curl]=curl [python3]=python3 [openssl]=openssl [redis-server]=redis-server
  # Servers of the farm modules (modules/nginx-farm, modules/apache-farm): croft runs them with its own configs.
  [nginx]=nginx [apache2]=apache2
  # Servers and client tools of the mirror modules (modules/*-mirror): croft runs them with its own configs.
  [pg_createcluster]=postgresql [psql]=postgresql-client [pg_isready]=postgresql-client
  [mariadbd]=mariadb-server [mariadb-install-db]=mariadb-server [mariadb]=mariadb-client [mariadb-admin]=mariadb-client
  [redis-cli]=redis-tools [setpriv]=util-linux
  # The web console's browser tests (test/integration/console.lab.test.ts) drive Debian's Chromium.
  [chromium]=chromium
  # modules/podman-mirror (its demo image is built offline from busybox-static) and modules/kvm-mirror
  # (QEMU, its tiny guest: Debian's kernel and an initramfs of busybox-static).
  [podman]=podman [conmon]=conmon [crun]=crun [busybox]=busybox-static [cpio]=cpio
  [qemu-system-x86_64]=qemu-system-x86 [qemu-img]=qemu-utils
)
missing=()
# A dynamically linked busybox (Debian's `busybox`) cannot be copied into an image or initramfs alone.
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then missing+=(busybox-static); fi
# The guest kernel of modules/kvm-mirror.
if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then missing+=(linux-image-amd64); fi
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# Python modules (not commands): modules/orders-web runs Debian's python3 with psycopg2.
/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1 || missing+=(python3-psycopg2)
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "setup: installing Debian packages: $pkgs"
  if [ "$(id -u)" -ne 0 ]; then echo "setup: root is needed to install $pkgs" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as nginx and apache2 start the machine's own service when installed (and would
  # take port 80); croft's modules run their own instances, so forbid service starts during the
  # install with a temporary policy-rc.d, unless the machine already has one (containers do).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# temporary, from croft scripts/setup.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # An old or missing package list makes apt-get install fail: refresh it once.
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# npm packages: reinstall only when package-lock.json changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Rust addon: rebuild when a crate source is newer than the built addon.
addon=$(ls native/croft.*.node 2>/dev/null | head -1 || true)
if [ -z "$addon" ] || [ -n "$(find crates Cargo.toml Cargo.lock -newer "$addon" -type f 2>/dev/null | grep -v '/target/' | head -1)" ]; then
  echo "setup: building the Rust addon"
  npm run -s build:native
fi

# TypeScript: rebuild when a source is newer than the last build.
stamp=dist/.stamp
if [ ! -f "$stamp" ] || [ -n "$(find src farm mirror top test bench tsconfig.json -newer "$stamp" -type f 2>/dev/null | head -1)" ]; then
  echo "setup: compiling TypeScript"
  # From scratch, so that no compiled test of a removed source lingers in dist/.
  rm -rf dist
  npx tsc -p tsconfig.json
  touch "$stamp"
fi
