#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian 12 machine (as root).
set -euo pipefail
need=(clang llvm iproute2 iputils-ping ethtool iperf3 python3-scapy tshark curl python3 openvswitch-common
      fonts-dejavu-core openvswitch-switch dpdk dpdk-dev libdpdk-dev librte-net-af-xdp23 librte-net-pcap23 librte-net-null23 libbpf-dev pkg-config)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust stable) is required" >&2; exit 1; }
