#!/usr/bin/env bash
# ADD and DEL latency of xvs-cni against a running xvsd, as a runtime calls it (one process per
# call, `ip netns exec` into the node namespace). Creates its own namespaces and removes them.
# Usage (as root): scripts/cni_latency.sh [N] ; XVSD=/path/to/xvsd XVS_CNI=/path/to/xvs-cni
set -euo pipefail
N=${1:-20}
TARGET=${CARGO_TARGET_DIR:-target}
XVSD=${XVSD:-$TARGET/release/xvsd}
CNI=${XVS_CNI:-$TARGET/release/xvs-cni}
T=$(mktemp -d /tmp/xvs-cnilat.XXXX)
NODE=xvs-cnilat$$
cleanup() {
  [ -n "${XP:-}" ] && kill "$XP" 2>/dev/null && wait "$XP" 2>/dev/null || true
  for i in $(seq "$N"); do ip netns del "${NODE}p$i" 2>/dev/null || true; done
  ip netns del "$NODE" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/run"
ip netns add "$NODE"
cat > "$T/xvsd.toml" <<CONF
bridge = "br-int"
run_dir = "$T/run"
workers = [0]
forwarding = "openflow"
pmd_sleep_max_us = 100
runtime_ports = 64
[[port]]
name = "antrea-gw0"
type = "tap"
ofport = 100
mac = "aa:bb:cc:dd:ee:01"
CONF
cat > "$T/conf.json" <<CONF
{"cniVersion":"1.0.0","name":"xvs","type":"xvs-cni","xvsdRunDir":"$T/run","interfacesDir":"$T/ifs","ipam":{"subnet":"10.78.0.0/24","dataDir":"$T/ipam"}}
CONF
ip netns exec "$NODE" "$XVSD" --config "$T/xvsd.toml" 2>"$T/xvsd.err" &
XP=$!
for _ in $(seq 200); do [ -S "$T/run/xvsd.ctl" ] && break; sleep 0.1; done
for i in $(seq "$N"); do ip netns add "${NODE}p$i"; done
cni() { # command index
  CNI_COMMAND=$1 CNI_CONTAINERID=c$2 CNI_NETNS=/run/netns/${NODE}p$2 CNI_IFNAME=eth0 \
    CNI_ARGS="K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p$2" \
    ip netns exec "$NODE" "$CNI" < "$T/conf.json" > "$T/out" || { cat "$T/out"; return 1; }
}
uptime
s=$(date +%s%N); for i in $(seq "$N"); do cni ADD "$i"; done
m=$(date +%s%N); for i in $(seq "$N"); do cni DEL "$i"; done
e=$(date +%s%N)
echo "N=$N ADD avg $(( (m - s) / N / 1000000 )) ms, DEL avg $(( (e - m) / N / 1000000 )) ms"
# Without xvsd: everything up to the port step, then the rollback of veth and address.
kill "$XP"; wait "$XP" 2>/dev/null || true; XP=
s=$(date +%s%N); for i in $(seq "$N"); do cni ADD "$i" >/dev/null 2>&1 || true; done
e=$(date +%s%N)
echo "N=$N ADD without xvsd (plugin work + rollback) avg $(( (e - s) / N / 1000000 )) ms"
uptime
