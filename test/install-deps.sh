#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the test suites need, if any is missing.
# As root it runs apt-get; otherwise it names what is missing (the lab suite then skips).
set -euo pipefail

packages=(
  strongswan strongswan-starter strongswan-swanctl libcharon-extra-plugins
  libstrongswan-extra-plugins iproute2 iptables nftables iputils-ping util-linux procps
  lxd dnsmasq-base kmod
  strongswan-pki libcharon-extauth-plugins libstrongswan-standard-plugins
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-deps: missing packages: ${missing[*]} (run as root on Debian/Ubuntu to install)" >&2
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
