#!/usr/bin/env bash
# Builds croft_<version>_amd64.deb (version from package.json) with dpkg-deb, from what `make setup`
# built (dist/ and native/: reused, not rebuilt here) and the production npm packages (npm ci
# --omit=dev in a staging folder, redone only when package-lock.json changes).
# Layout: /usr/lib/croft (package.json, bin/, dist/{src,farm,mirror,top}, native/, node_modules/,
# modules -> /usr/share/croft/modules), /usr/bin/croft -> ../lib/croft/bin/croft.js,
# /lib/systemd/system/croft.service, /etc/croft/ (empty: croft init writes the config),
# /usr/share/croft/modules/ (the shipped modules, and lib/croft.sh: their scripts' process
# library), /usr/share/doc/croft/ (README, examples).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}

for cmd in dpkg-deb npm node; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "build-deb: $cmd is missing" >&2; exit 1; }
done
addon=$(ls native/croft.*.node 2>/dev/null | head -1 || true)
if [ -z "$addon" ] || [ ! -f dist/.stamp ] || [ ! -f dist/top/cli/main.js ]; then
  echo "build-deb: dist/ or the native addon is missing: run make setup first" >&2
  exit 1
fi

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
[ "$arch" = amd64 ] || { echo "build-deb: the addon is built for this machine ($arch); the package says amd64" >&2; exit 1; }
work=target/deb
root=$work/root
deb="$out/croft_${version}_${arch}.deb"

# Production npm packages, cached until package-lock.json changes.
npmdir=$work/npm
if [ ! -f "$npmdir/.stamp" ] || [ package-lock.json -nt "$npmdir/.stamp" ] || [ package.json -nt "$npmdir/.stamp" ]; then
  echo "build-deb: npm ci --omit=dev"
  rm -rf "$npmdir"
  mkdir -p "$npmdir"
  cp package.json package-lock.json "$npmdir/"
  (cd "$npmdir" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
  touch "$npmdir/.stamp"
fi

rm -rf "$root"
umask 022
lib=$root/usr/lib/croft
mkdir -p "$lib/bin" "$lib/dist" "$lib/native" "$lib/top/lab" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/croft" "$root/etc/logrotate.d" "$root/usr/share/croft" "$root/usr/share/doc/croft" "$root/DEBIAN"

cp package.json "$lib/"
install -m 0755 bin/croft.js "$lib/bin/croft.js"
# The compiled JS without source maps (they point at .ts sources not shipped) and without tests.
for d in src farm mirror top; do
  (cd dist && find "$d" -name '*.js' -print0) | while IFS= read -r -d '' f; do
    install -D -m 0644 "dist/$f" "$lib/dist/$f"
  done
done
install -m 0644 "$addon" "$lib/native/"
# The lab's delay relay (croft lab netem) and the load of croft lab chaos (keep-alive clients, the
# record writer and the collector of its acknowledgements), read from the package root.
for f in netem_relay.py hold.mjs http-replies.mjs chaos_writer.py collector.py; do
  install -m 0644 "top/lab/$f" "$lib/top/lab/"
done
cp -a "$npmdir/node_modules" "$lib/node_modules"
rm -f "$lib/node_modules/.package-lock.json"
ln -s ../../share/croft/modules "$lib/modules"
ln -s ../lib/croft/bin/croft.js "$root/usr/bin/croft"

# The shipped modules: root's, not writable by others, scripts 0755 (croft refuses anything else).
cp -r modules "$root/usr/share/croft/modules"
install -m 0644 packaging/debian/croft.service "$root/lib/systemd/system/croft.service"
install -m 0644 packaging/debian/croft.logrotate "$root/etc/logrotate.d/croft"
install -m 0644 README.md "$root/usr/share/doc/croft/README.md"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/croft/copyright"
cp -r examples "$root/usr/share/doc/croft/examples"
# The example cluster.yaml holds an inline key (an example, never a usable secret): shipped as such.
mv "$root/usr/share/doc/croft/examples/cluster.yaml" "$root/usr/share/doc/croft/examples/cluster.yaml.example"

# Modes: nothing writable by group or others; directories 0755; executables 0755, the rest 0644.
find "$root" -path "$root/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
find "$root" -path "$root/DEBIAN" -prune -o -type f -perm /0111 -exec chmod 0755 {} +
find "$root" -path "$root/DEBIAN" -prune -o -type f ! -perm /0111 -exec chmod 0644 {} +

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control.in >"$root/DEBIAN/control"
printf '/etc/logrotate.d/croft\n' >"$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz -z6 --build "$root" "$deb" >/dev/null
echo "build-deb: $deb ($(du -h "$deb" | cut -f1))"
