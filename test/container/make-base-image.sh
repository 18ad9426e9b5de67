#!/usr/bin/env bash
# Builds a local Debian 12 (bookworm) + Node.js 20 base image for Dockerfile.test, for machines
# that reach a Debian mirror but no container registry (so `node:20-bookworm` cannot be pulled).
#
#   sudo bash test/container/make-base-image.sh [IMAGE]    # default localhost/tunnelwarden-base:bookworm-node20
#   podman build -f Dockerfile.test --build-arg BASE=localhost/tunnelwarden-base:bookworm-node20 \
#     -t tunnelwarden-test .
# (plus the flags Dockerfile.test's header names for hosts like the one this was written on).
#
# What it does, as root, with podman and debootstrap installed (apt-get install podman debootstrap):
# 1. debootstrap --variant=minbase bookworm from $MIRROR (default http://deb.debian.org/debian)
#    into $ROOTFS (default /var/tmp/tunnelwarden-base-rootfs; removed and recreated each run),
#    with ca-certificates (npm talks HTTPS) and python3 (the nodejs deb depends on it; the
#    official node image has it too, and a client-profile test uses its plistlib); apt sources for bookworm, bookworm-updates and
#    bookworm-security as in the official Debian images.
# 2. Node.js 20 from THIS host, not downloaded: Debian 12's own nodejs is 18, too old. It needs
#    the host's `nodejs` deb (NodeSource's Node 20, `dpkg -s nodejs`). Every file of
#    `dpkg -L nodejs` is copied, except /usr/lib/node_modules/npm, which is copied whole as it is
#    now: on a host where npm upgraded itself in place (`npm i -g npm`) the package's file list
#    no longer describes it (`dpkg --verify nodejs` shows missing and changed npm files), and
#    copying only listed files would give a broken npm. The node binary itself must still match
#    the package (checked with `dpkg --verify`). The rootfs's dpkg database does not list nodejs,
#    which is fine for Dockerfile.test (none of its packages depends on nodejs).
# 3. Only with COPY_HOST_CAS=1: the host's locally added CA certificates
#    (/usr/local/share/ca-certificates/*.crt) are added to the rootfs's trust store, and the image
#    gets NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt so node and npm use it. Needed
#    where the npm registry is reached through a TLS-intercepting proxy whose CA the host trusts
#    (npm ci in the build then fails with SELF_SIGNED_CERT_IN_CHAIN without it). The image then
#    trusts what the host trusts; keep it local.
# 4. `podman import` of the rootfs as IMAGE, with PATH and CMD ["bash"] set, then runs
#    `node --version` in it with $PODMAN_RUN_FLAGS (empty by default; on the VM where this was
#    written: PODMAN_RUN_FLAGS="--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768",
#    see Dockerfile.test's header for why).
# It changes nothing on the host outside $ROOTFS, $ROOTFS.tar and podman's image store.
set -euo pipefail

IMAGE=${1:-localhost/tunnelwarden-base:bookworm-node20}
ROOTFS=${ROOTFS:-/var/tmp/tunnelwarden-base-rootfs}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

die() { echo "make-base-image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap)"
for tool in debootstrap podman dpkg-query tar; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install podman debootstrap)"
done
case "$ROOTFS" in /var/tmp/?*) ;; *) die "ROOTFS must be under /var/tmp: $ROOTFS" ;; esac

node_version=$(dpkg-query -W -f='${Version}' nodejs 2>/dev/null) || die "the host has no nodejs package"
case "$node_version" in 20.*) ;; *) die "host nodejs is $node_version, need 20.x" ;; esac
if dpkg --verify nodejs | grep -E ' /usr/bin/node$' >&2; then
  die "/usr/bin/node differs from the nodejs package; not copying it"
fi

echo "make-base-image: debootstrap $SUITE from $MIRROR into $ROOTFS" >&2
rm -rf -- "$ROOTFS" "$ROOTFS.tar"
debootstrap --variant=minbase --include=ca-certificates,python3 "$SUITE" "$ROOTFS" "$MIRROR" >&2

rm -f "$ROOTFS/etc/apt/sources.list"
security_mirror=${MIRROR%/debian}/debian-security
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

echo "make-base-image: copying nodejs $node_version from the host" >&2
list=$(mktemp)
trap 'rm -f "$list"' EXIT
dpkg-query -L nodejs | grep -v -e '^/usr/lib/node_modules/npm/' -e '^/\.$' |
  while IFS= read -r file; do
    if [ -e "$file" ] || [ -L "$file" ]; then printf '%s\n' "${file#/}"; fi
  done >"$list"
tar -C / --no-recursion -cf - -T "$list" | tar -C "$ROOTFS" -xpf -
tar -C / -cf - usr/lib/node_modules/npm | tar -C "$ROOTFS" -xpf -

import_changes=()
if [ "${COPY_HOST_CAS:-0}" = 1 ]; then
  shopt -s nullglob
  cas=(/usr/local/share/ca-certificates/*.crt)
  shopt -u nullglob
  [ ${#cas[@]} -gt 0 ] || die "COPY_HOST_CAS=1 but /usr/local/share/ca-certificates has no .crt"
  echo "make-base-image: trusting the host's CAs: ${cas[*]}" >&2
  install -m 0644 "${cas[@]}" "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >&2
  import_changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt')
fi

chroot "$ROOTFS" /usr/bin/node --version >&2
chroot "$ROOTFS" /usr/bin/npm --version >&2
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin

echo "make-base-image: importing as $IMAGE" >&2
tar --numeric-owner -C "$ROOTFS" -cf "$ROOTFS.tar" .
podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' "${import_changes[@]}" \
  --message "debootstrap $SUITE minbase + host nodejs $node_version" \
  "$ROOTFS.tar" "$IMAGE"
rm -f "$ROOTFS.tar"
# shellcheck disable=SC2086
podman run --rm ${PODMAN_RUN_FLAGS:-} "$IMAGE" node --version
