#!/usr/bin/env bash
# Installs the Debian packages the tests need as real peers (see shared spec
# test-peers.md): mosquitto for the MQTT plugin. Idempotent; quick when present.
set -euo pipefail
packages=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || packages+=(mosquitto)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing system packages: ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
