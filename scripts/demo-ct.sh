#!/usr/bin/env bash
# The conntrack demo: the topology of scripts/demo.sh with the Antrea-style conntrack pipeline
# (deploy/examples/antrea-ct.flows): stateful policy (pod-a opens connections, nobody opens one
# to pod-a, replies pass), a ClusterIP Service 10.96.0.10 (tcp/80, udp/53) load-balanced by a
# select group onto pod-b and pod-c :8080 with DNAT in zone 65520 (HTTP requests with curl),
# iperf3 through the ct pipeline, then the tracker and a traced Service packet with the real
# ovs-appctl.
#
#   pod-a 10.10.0.2 --veth-- pa0 (ofport 1) ┐
#   pod-b 10.10.0.3 --veth-- pb0 (ofport 2) ├─ node: xvsd, AF_XDP, tables 0..28, zones 65520/65521
#   pod-c 10.10.0.4 --veth-- pc0 (ofport 3) ┘
#
# All addresses exist only inside these namespaces. Run as root from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tag="xvsct$$"
N="${tag}-node"
run="$(mktemp -d /tmp/xvs-demo-ct.XXXXXX)"
xvsd_pid=""
bg=()
pods=(a b c)
declare -A IP=([a]=10.10.0.2 [b]=10.10.0.3 [c]=10.10.0.4)
declare -A MAC=([a]=02:0a:0a:00:00:02 [b]=02:0a:0a:00:00:03 [c]=02:0a:0a:00:00:04)
cleanup() {
  set +e
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
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
XVSD="${CARGO_TARGET_DIR:-$PWD/target}/release/xvsd"

echo "== topology: pods a, b, c and node $N"
ip netns add "$N"; ip -n "$N" link set lo up
for p in "${pods[@]}"; do
  ip netns add "$(ns $p)"; ip -n "$(ns $p)" link set lo up
  ip -n "$(ns $p)" link add eth0 address "${MAC[$p]}" type veth peer name "p${p}0" netns "$N"
  ip -n "$(ns $p)" addr add "${IP[$p]}/24" dev eth0
  ip -n "$(ns $p)" link set eth0 up
  ip -n "$N" link set "p${p}0" up
  ip netns exec "$(ns $p)" ethtool -K eth0 tx off tso off gso off >/dev/null
  # Services go through the gateway (answered by the ARP responder flows; static here).
  ip -n "$(ns $p)" neigh replace 10.10.0.1 lladdr aa:bb:cc:dd:ee:ff dev eth0 nud permanent
  ip -n "$(ns $p)" route add 10.96.0.0/16 via 10.10.0.1
done
for p in "${pods[@]}"; do for q in "${pods[@]}"; do
  [[ $p == "$q" ]] || ip -n "$(ns $p)" neigh replace "${IP[$q]}" lladdr "${MAC[$q]}" dev eth0 nud permanent
done; done
cp deploy/examples/antrea-ct.flows "$run/pipeline.flows"

cat > "$run/xvsd.toml" <<TOML
bridge = "br-int"
run_dir = "$run/xvs"
workers = [0]
forwarding = "openflow"
flows = "pipeline.flows"
pmd_sleep_max_us = 50

[conntrack]
max_connections = 100000

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

echo "== starting xvsd with the Antrea-style conntrack pipeline"
ip netns exec "$N" "$XVSD" --config "$run/xvsd.toml" &
xvsd_pid=$!
for _ in $(seq 100); do [[ -f "$run/xvs/xvsd.pid" ]] && break; sleep 0.1; done
[[ -f "$run/xvs/xvsd.pid" ]] || { echo "xvsd did not start" >&2; exit 1; }
appctl() { ovs-appctl -t "$run/xvs/xvsd.ctl" "$@"; }

echo "== stateful policy: pod-a -> pod-b ping passes (replies are +est)"
ip netns exec "$(ns a)" ping -c 3 -i 0.2 -W 2 10.10.0.3
echo "== stateful policy: pod-b -> pod-a is a new connection to an isolated pod: dropped"
if ip netns exec "$(ns b)" ping -c 2 -i 0.2 -W 1 10.10.0.2 >/dev/null; then
  echo "   unexpected: pod-b reached pod-a" >&2; exit 1
else
  echo "   pod-b -> pod-a: no reply, as the policy says"
fi

echo "== ClusterIP 10.96.0.10:80 -> pod-b/pod-c :8080 (an HTTP server on each endpoint)"
for p in b c; do
  mkdir -p "$run/www-$p"; echo "served by pod-$p" > "$run/www-$p/index.html"
  ip netns exec "$(ns $p)" python3 -m http.server 8080 --bind "${IP[$p]}" \
    --directory "$run/www-$p" >/dev/null 2>&1 & bg+=($!)
done
sleep 1
for i in $(seq 8); do
  ip netns exec "$(ns a)" curl -s --max-time 3 http://10.96.0.10:80/ || echo "request $i failed"
done | sort | uniq -c

echo "== TCP through the ct pipeline: 5 s pod-a -> pod-b (iperf3)"
ip netns exec "$(ns b)" iperf3 -s -1 -p 5201 >/dev/null &
srv=$!; sleep 0.5
ip netns exec "$(ns a)" iperf3 -c 10.10.0.3 -p 5201 -t 5 | grep -E 'receiver|sender'
wait "$srv" || true

echo "== the tracker (zone 65520): Service connections, DNATed to both endpoints"
appctl dpctl/dump-conntrack zone=65520 | grep 10.96.0.10 | head -8

echo "== ofproto/trace of a new Service packet, following the recirculations"
appctl ofproto/trace br-int \
  'in_port=pa0,tcp,dl_src=02:0a:0a:00:00:02,dl_dst=aa:bb:cc:dd:ee:ff,nw_src=10.10.0.2,nw_dst=10.96.0.10,nw_ttl=64,tp_src=40000,tp_dst=80' \
  | grep -E '^(Datapath actions|recirc)'

echo "== counters"
appctl xvs/show | head -4
appctl dpif-netdev/pmd-stats-show | grep -E 'received|recirculations|passes|sent|dropped'

echo "== stopping xvsd"
kill -TERM "$xvsd_pid"; wait "$xvsd_pid"; xvsd_pid=""
if ip netns exec "$N" ip link show | grep -q ' xdp'; then
  echo "XDP program left behind" >&2; exit 1
fi
echo "== done: XDP programs detached; namespaces are removed on exit"
