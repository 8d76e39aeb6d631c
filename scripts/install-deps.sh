#!/usr/bin/env bash
# Installs what building and testing Portier needs on Debian 12 (as root).
# Only missing packages are installed, so a second run costs a second.
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev libsystemd-dev libtomlplusplus-dev
  libseccomp-dev  # the tests run portierd under the unit's syscall filter
  libgtest-dev libgmock-dev libbenchmark-dev
  systemd
  # drivers and the real peers their tests run against
  libpcsclite-dev pcscd vsmartcard-vpcd opensc
  libusb-1.0-0-dev
  dbus python3-dbusmock
  # boot integrity: tpm2-tss, and swtpm + tpm2-tools for its tests
  libtss2-dev swtpm swtpm-tools tpm2-tools
  # the management link: durable outbox, MQTT (and Mosquitto for its
  # tests), PKCS#11 keys (SoftHSM2 for its tests)
  libsqlite3-dev libpaho-mqttpp-dev libpaho-mqtt-dev mosquitto mosquitto-clients
  softhsm2
  # fuzzing (libFuzzer needs clang)
  clang-14 libfuzzer-14-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
