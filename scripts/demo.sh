#!/usr/bin/env bash
# The xvs demo: builds a namespace topology with three "pods" and a node, starts xvsd in the
# node on AF_XDP ports, loads an Antrea-style OpenFlow pipeline (deploy/examples/antrea-lite.flows),
# sends real traffic through it (ping, UDP, a TCP transfer, and traffic the policies deny),
# prints xvsd's counters with the real ovs-appctl, and removes everything it created.
#
#   pod-a 10.10.0.2 --veth-- pa0 (ofport 1) ┐
#   pod-b 10.10.0.3 --veth-- pb0 (ofport 2) ├─ node: xvsd, AF_XDP, OpenFlow tables 0..28
#   pod-c 10.10.0.4 --veth-- pc0 (ofport 3) ┘
#
# All addresses exist only inside these namespaces. Run as root from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tag="xvsdemo$$"
N="${tag}-node"
run="$(mktemp -d /tmp/xvs-demo.XXXXXX)"
xvsd_pid=""
pods=(a b c)
declare -A IP=([a]=10.10.0.2 [b]=10.10.0.3 [c]=10.10.0.4)
declare -A MAC=([a]=02:0a:0a:00:00:02 [b]=02:0a:0a:00:00:03 [c]=02:0a:0a:00:00:04)
cleanup() {
  set +e
  if [[ -n "$xvsd_pid" ]] && kill -0 "$xvsd_pid" 2>/dev/null; then
    kill -TERM "$xvsd_pid"; wait "$xvsd_pid"
  fi
  for p in "${pods[@]}"; do ip netns del "${tag}-$p" 2>/dev/null; done
  ip netns del "$N" 2>/dev/null
  rm -rf "$run"
}
trap cleanup EXIT INT TERM
ns() { echo "${tag}-$1"; }

echo "== building xvsd (release)"
cargo build --release -q -p xvsd
XVSD="$PWD/target/release/xvsd"

echo "== topology: pods a, b, c and node $N"
ip netns add "$N"; ip -n "$N" link set lo up
for p in "${pods[@]}"; do
  ip netns add "$(ns $p)"; ip -n "$(ns $p)" link set lo up
  ip -n "$(ns $p)" link add eth0 address "${MAC[$p]}" type veth peer name "p${p}0" netns "$N"
  ip -n "$(ns $p)" addr add "${IP[$p]}/24" dev eth0
  ip -n "$(ns $p)" link set eth0 up
  ip -n "$N" link set "p${p}0" up
  # Checksums must be complete when a frame leaves a pod: AF_XDP carries no offload metadata.
  ip netns exec "$(ns $p)" ethtool -K eth0 tx off tso off gso off >/dev/null
done
for p in "${pods[@]}"; do for q in "${pods[@]}"; do
  [[ $p == "$q" ]] || ip -n "$(ns $p)" neigh replace "${IP[$q]}" lladdr "${MAC[$q]}" dev eth0 nud permanent
done; done
cp deploy/examples/antrea-lite.flows "$run/pipeline.flows"

cat > "$run/xvsd.toml" <<TOML
bridge = "br-int"
run_dir = "$run/xvs"
workers = [0]
forwarding = "openflow"
flows = "pipeline.flows"
pmd_sleep_max_us = 50

[[port]]
name = "pa0"
type = "afxdp"
ofport = 1

[[port]]
name = "pb0"
type = "afxdp"
ofport = 2

[[port]]
name = "pc0"
type = "afxdp"
ofport = 3
TOML

echo "== starting xvsd with the Antrea-style pipeline"
ip netns exec "$N" "$XVSD" --config "$run/xvsd.toml" &
xvsd_pid=$!
for _ in $(seq 100); do [[ -f "$run/xvs/xvsd.pid" ]] && break; sleep 0.1; done
[[ -f "$run/xvs/xvsd.pid" ]] || { echo "xvsd did not start" >&2; exit 1; }
appctl() { ovs-appctl -t "$run/xvs/xvsd.ctl" "$@"; }

echo "== ping pod-a -> pod-b (allowed)"
ip netns exec "$(ns a)" ping -c 3 -i 0.2 -W 2 10.10.0.3

echo "== ARP: pod-a resolves the virtual gateway 10.10.0.1 through the ARP responder flows"
ip netns exec "$(ns a)" ping -c 1 -W 1 10.10.0.1 >/dev/null 2>&1 || true
ip -n "$(ns a)" neigh show 10.10.0.1

echo "== UDP: 10000 datagrams pod-a -> pod-b (iperf3, 50 Mbit/s)"
ip netns exec "$(ns b)" iperf3 -s -1 -p 5201 >/dev/null &
srv=$!; sleep 0.5
ip netns exec "$(ns a)" iperf3 -c 10.10.0.3 -p 5201 -u -b 50M -l 1000 -k 10000 | grep -E 'receiver|sender' || true
wait "$srv" || true

echo "== TCP: 5 s transfer pod-a -> pod-b (iperf3)"
ip netns exec "$(ns b)" iperf3 -s -1 -p 5202 >/dev/null &
srv=$!; sleep 0.5
ip netns exec "$(ns a)" iperf3 -c 10.10.0.3 -p 5202 -t 5 | grep -E 'receiver|sender'
wait "$srv" || true

echo "== policy: pod-b -> pod-c is denied (pod-c is isolated; only pod-a udp/7004 may enter)"
if ip netns exec "$(ns b)" ping -c 2 -i 0.2 -W 1 10.10.0.4 >/dev/null; then
  echo "   unexpected: pod-b reached pod-c" >&2; exit 1
else
  echo "   pod-b -> pod-c: no reply, as the policy says"
fi

echo "== xvsd counters (ovs-appctl -t $run/xvs/xvsd.ctl ...)"
appctl xvs/show
appctl dpif-netdev/pmd-stats-show

echo "== stopping xvsd"
kill -TERM "$xvsd_pid"; wait "$xvsd_pid"; xvsd_pid=""
if ip netns exec "$N" ip link show | grep -q ' xdp'; then
  echo "XDP program left behind" >&2; exit 1
fi
echo "== done: XDP programs detached; namespaces are removed on exit"
