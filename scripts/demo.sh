#!/usr/bin/env bash
# The xvs demo: builds a namespace topology, starts xvsd between two "pods", sends real UDP and
# TCP traffic through it, prints xvsd's counters, and removes everything it created.
#
#   pod-a (netns)                 node (netns, runs xvsd)             pod-b (netns)
#   eth0 10.231.0.2/24 <--veth--> pa0 [AF_XDP]  <-> [AF_XDP] pb0 <--veth--> eth0 10.231.0.3/24
#
# All addresses exist only inside these namespaces. Run as root from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tag="xvsdemo$$"
A="${tag}-a" B="${tag}-b" N="${tag}-node"
run="$(mktemp -d /tmp/xvs-demo.XXXXXX)"
xvsd_pid=""
cleanup() {
  set +e
  if [[ -n "$xvsd_pid" ]] && kill -0 "$xvsd_pid" 2>/dev/null; then
    kill -TERM "$xvsd_pid"; wait "$xvsd_pid"
  fi
  for ns in "$A" "$B" "$N"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

echo "== building xvsd (release)"
cargo build --release -q -p xvsd
XVSD="$PWD/target/release/xvsd"

echo "== topology: $A <-> $N <-> $B"
for ns in "$A" "$B" "$N"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$A" link add eth0 type veth peer name pa0 netns "$N"
ip -n "$B" link add eth0 type veth peer name pb0 netns "$N"
ip -n "$A" link set eth0 address 02:0a:e7:00:00:02
ip -n "$B" link set eth0 address 02:0a:e7:00:00:03
ip -n "$A" addr add 10.231.0.2/24 dev eth0
ip -n "$B" addr add 10.231.0.3/24 dev eth0
for pair in "$A eth0" "$B eth0" "$N pa0" "$N pb0"; do
  set -- $pair
  ip -n "$1" link set "$2" up
  # Checksums must be complete when a frame leaves a pod: AF_XDP carries no offload metadata.
  ip netns exec "$1" ethtool -K "$2" tx off tso off gso off >/dev/null 2>&1 || true
done

cat > "$run/xvsd.toml" <<TOML
bridge = "br-demo"
run_dir = "$run/xvs"
workers = [0]
forwarding = "io-fwd"
pmd_sleep_max_us = 50

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2
TOML

echo "== starting xvsd"
ip netns exec "$N" "$XVSD" --config "$run/xvsd.toml" &
xvsd_pid=$!
for _ in $(seq 100); do [[ -f "$run/xvs/xvsd.pid" ]] && break; sleep 0.1; done
[[ -f "$run/xvs/xvsd.pid" ]] || { echo "xvsd did not start" >&2; exit 1; }
ip netns exec "$N" ip -d link show pa0 | grep -o 'prog/xdp[a-z]* id [0-9]*' | sed 's/^/   pa0 /'

echo "== ping pod-a -> pod-b"
ip netns exec "$A" ping -c 3 -i 0.2 -W 2 10.231.0.3

echo "== UDP: 10000 datagrams pod-a -> pod-b (iperf3, 50 Mbit/s)"
ip netns exec "$B" iperf3 -s -1 -p 5201 >/dev/null &
srv=$!; sleep 0.5
ip netns exec "$A" iperf3 -c 10.231.0.3 -p 5201 -u -b 50M -l 1000 -k 10000 | grep -E 'receiver|sender' || true
wait "$srv" || true

echo "== TCP: 5 s transfer pod-a -> pod-b (iperf3)"
ip netns exec "$B" iperf3 -s -1 -p 5202 >/dev/null &
srv=$!; sleep 0.5
ip netns exec "$A" iperf3 -c 10.231.0.3 -p 5202 -t 5 | grep -E 'receiver|sender'
wait "$srv" || true

echo "== xvsd counters (ovs-appctl -t $run/xvs/xvsd.ctl ...)"
ovs-appctl -t "$run/xvs/xvsd.ctl" xvs/show
ovs-appctl -t "$run/xvs/xvsd.ctl" dpif-netdev/pmd-stats-show

echo "== stopping xvsd"
kill -TERM "$xvsd_pid"; wait "$xvsd_pid"; xvsd_pid=""
if ip netns exec "$N" ip link show | grep -q ' xdp'; then
  echo "XDP program left behind" >&2; exit 1
fi
echo "== done: XDP programs detached; namespaces are removed on exit"
