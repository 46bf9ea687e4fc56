#!/usr/bin/env bash
# The xvs demo: builds a namespace topology with three "pods" and a node, starts xvsd in the
# node on AF_XDP ports with no flows, programs the Antrea-style conntrack pipeline
# (deploy/examples/antrea-ct.flows) the way Antrea's agent does, with the real
# `ovs-ofctl -O OpenFlow15` over xvsd's OpenFlow socket (the Service groups, then the flows in
# one bundle), forwards real traffic through it and checks every result:
#   - pod-a -> pod-b ping passes, replies are +est; pod-b -> pod-a is blocked (stateful policy)
#   - HTTP to the ClusterIP 10.96.0.10:80 is DNATed over pod-b and pod-c :8080 (select group)
#   - UDP pod-a -> pod-c passes, UDP pod-b -> pod-c is denied (pod-c admits pod-a only)
#   - a 3-second iperf3 TCP transfer through the conntrack pipeline
#   - part 2: two more nodes joined by Geneve (xvsd on each, tunnel flows over OpenFlow too),
#     a cross-node ping and iperf3
# then shows the switch with the real tools (dump-flows with the counters of cached hits,
# dump-conntrack, dp features, ofproto/trace --ct-next, pmd stats, drops by reason) and
# removes everything it created. Exits non-zero if any expected result is wrong.
#
#   pod-a 10.10.0.2 --veth-- pa0 (ofport 1) ┐
#   pod-b 10.10.0.3 --veth-- pb0 (ofport 2) ├─ node: xvsd, AF_XDP, tables 0..28, zones 65520/65521
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
bg=()
xvsd2=()   # the Geneve part's two xvsd
extra_ns=()
pods=(a b c)
declare -A IP=([a]=10.10.0.2 [b]=10.10.0.3 [c]=10.10.0.4)
declare -A MAC=([a]=02:0a:0a:00:00:02 [b]=02:0a:0a:00:00:03 [c]=02:0a:0a:00:00:04)
cleanup() {
  set +e
  # Only the helpers still running as this shell's jobs: a reaped PID may belong to another process.
  running=" $(jobs -p | tr '\n' ' ') "
  for p in "${bg[@]}"; do
    [[ $running == *" $p "* ]] && { kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
  done
  if [[ -n "$xvsd_pid" ]] && kill -0 "$xvsd_pid" 2>/dev/null; then
    kill -TERM "$xvsd_pid"
    for _ in $(seq 50); do kill -0 "$xvsd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$xvsd_pid" 2>/dev/null
    wait "$xvsd_pid"
  fi
  for p in "${xvsd2[@]}"; do
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  for p in "${pods[@]}"; do ip netns del "${tag}-$p" 2>/dev/null; done
  for n in "${extra_ns[@]}"; do ip netns del "$n" 2>/dev/null; done
  ip netns del "$N" 2>/dev/null
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ns() { echo "${tag}-$1"; }
failures=()
fail() { echo "   FAIL: $*"; failures+=("$*"); }
ok() { echo "   ok: $*"; }

echo "== building xvsd (release)"
cargo build --release -q -p xvsd
XVSD="${CARGO_TARGET_DIR:-$PWD/target}/release/xvsd"
start=$SECONDS

echo "== topology: pods $(ns a), $(ns b), $(ns c) and node $N"
ip netns add "$N"; ip -n "$N" link set lo up
for p in "${pods[@]}"; do
  ip netns add "$(ns "$p")"; ip -n "$(ns "$p")" link set lo up
  ip -n "$(ns "$p")" link add eth0 address "${MAC[$p]}" type veth peer name "p${p}0" netns "$N"
  ip -n "$(ns "$p")" addr add "${IP[$p]}/24" dev eth0
  ip -n "$(ns "$p")" link set eth0 up
  ip -n "$N" link set "p${p}0" up
  # Checksums must be complete when a frame leaves a pod: AF_XDP carries no offload metadata.
  ip netns exec "$(ns "$p")" ethtool -K eth0 tx off tso off gso off >/dev/null
  # Services go through the gateway 10.10.0.1 (answered by the ARP responder flows).
  ip -n "$(ns "$p")" route add 10.96.0.0/16 via 10.10.0.1
done
for p in "${pods[@]}"; do for q in "${pods[@]}"; do
  [[ $p == "$q" ]] || ip -n "$(ns "$p")" neigh replace "${IP[$q]}" lladdr "${MAC[$q]}" dev eth0 nud permanent
done; done

# Only what OpenFlow cannot carry: the ports, the worker, the tracker's size. No flows.
cat > "$run/xvsd.toml" <<TOML
bridge = "br-int"
run_dir = "$run/xvs"
workers = [0]
forwarding = "openflow"
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

echo "== starting xvsd (no flows) in $N"
ip netns exec "$N" "$XVSD" --config "$run/xvsd.toml" &
xvsd_pid=$!
for _ in $(seq 100); do [[ -S "$run/xvs/br-int.mgmt" && -f "$run/xvs/xvsd.pid" ]] && break; sleep 0.1; done
[[ -S "$run/xvs/br-int.mgmt" ]] || { echo "xvsd did not start" >&2; exit 1; }
BR="unix:$run/xvs/br-int.mgmt"
ofctl() { timeout 20 ovs-ofctl -O OpenFlow15 "$@"; }
appctl() { timeout 20 ovs-appctl -t "$run/xvs/xvsd.ctl" "$@"; }

echo "== programming the pipeline over OpenFlow 1.5 ($BR), as Antrea's agent does"
grep '^group_id=' deploy/examples/antrea-ct.flows > "$run/groups.txt"
grep -v '^group_id=' deploy/examples/antrea-ct.flows > "$run/flows.txt"
echo "\$ ovs-ofctl -O OpenFlow15 add-groups \$BR groups.txt   ($(wc -l < "$run/groups.txt") select groups)"
ofctl add-groups "$BR" "$run/groups.txt"
echo "\$ ovs-ofctl -O OpenFlow15 --bundle add-flows \$BR flows.txt"
ofctl --bundle add-flows "$BR" "$run/flows.txt"
echo "\$ ovs-ofctl -O OpenFlow15 dump-tables \$BR   (table:active flows, for the tables holding flows)"
ofctl dump-tables "$BR" | awk '/^ *table [0-9]+/ { t = $2; sub(/:$/, "", t) }
  /active=/ { a = $1; sub(/active=/, "", a); sub(/,$/, "", a); if (a > 0) printf "%s:%s ", t, a } END { print "" }' |
  fold -s -w 96 | sed 's/^/   /'
echo "\$ ovs-ofctl -O OpenFlow15 dump-aggregate \$BR"
ofctl dump-aggregate "$BR" | sed 's/^/   /'
nflows=$(ofctl dump-aggregate "$BR" | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p')
want=$(grep -c '^table=' "$run/flows.txt")
[[ ${nflows:-0} -eq $want ]] && ok "$nflows flows installed" || fail "${nflows:-0} flows installed, expected $want"
ofctl dump-groups "$BR" | grep -c group_id= | xargs -I{} echo "   {} groups installed"

echo "== stateful policy: pod-a -> pod-b ping passes (the replies are ct_state=+est)"
if out=$(ip netns exec "$(ns a)" ping -c 3 -i 0.2 -W 2 10.10.0.3); then
  echo "$out" | grep -E 'packets transmitted|rtt' | sed 's/^/   /'
  ok "pod-a reaches pod-b"
else
  echo "$out" | sed 's/^/   /'; fail "pod-a -> pod-b ping lost"
fi
echo "== stateful policy: pod-b -> pod-a is a new connection to an isolated pod: dropped"
if ip netns exec "$(ns b)" ping -c 2 -i 0.2 -W 1 10.10.0.2 >/dev/null; then
  fail "pod-b reached pod-a"
else
  ok "pod-b -> pod-a: no reply, as the policy says"
fi

echo "== ClusterIP 10.96.0.10:80 -> pod-b/pod-c :8080 (20 HTTP requests with curl from pod-a)"
for p in b c; do
  mkdir -p "$run/www-$p"; echo "served by pod-$p" > "$run/www-$p/index.html"
  ip netns exec "$(ns "$p")" python3 -m http.server 8080 --bind "${IP[$p]}" \
    --directory "$run/www-$p" >/dev/null 2>&1 & bg+=($!)
done
for _ in $(seq 50); do
  ip netns exec "$(ns b)" python3 -c 'import socket,sys; socket.create_connection(("10.10.0.3",8080),0.2)' 2>/dev/null &&
    ip netns exec "$(ns c)" python3 -c 'import socket,sys; socket.create_connection(("10.10.0.4",8080),0.2)' 2>/dev/null && break
  sleep 0.1
done
for i in $(seq 20); do
  ip netns exec "$(ns a)" curl -s --max-time 3 http://10.96.0.10:80/ || echo "request $i failed"
done > "$run/http.txt"
sort "$run/http.txt" | uniq -c | sed 's/^ */   /'
nb=$(grep -c 'served by pod-b' "$run/http.txt" || true)
nc=$(grep -c 'served by pod-c' "$run/http.txt" || true)
((nb + nc == 20)) && ok "20/20 requests answered" || fail "$((20 - nb - nc)) of 20 requests failed"
((nb > 0 && nc > 0)) && ok "both endpoints used ($nb/$nc)" || fail "an endpoint was never used ($nb/$nc)"

echo "== UDP policy: pod-c admits new connections from pod-a only (10 datagrams to udp/9000 each)"
udp_recv() { # ns ip -> number of datagrams received until 1.5 s of silence
  ip netns exec "$1" timeout 10 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 9000)); s.settimeout(1.5)
print("ready", flush=True); n = 0
try:
    while True: s.recv(2048); n += 1
except socket.timeout: pass
print(n)' "$2"
}
udp_send() { # ns -> 10 datagrams to pod-c udp/9000
  ip netns exec "$1" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(10): s.sendto(b"demo %d" % i, ("10.10.0.4", 9000))'
}
for src in a b; do
  udp_recv "$(ns c)" 10.10.0.4 > "$run/udp-$src.txt" & rx=$!; bg+=("$rx")
  for _ in $(seq 50); do grep -qs ready "$run/udp-$src.txt" && break; sleep 0.1; done
  udp_send "$(ns "$src")"
  wait "$rx" || true
  got=$(tail -1 "$run/udp-$src.txt"); [[ $got =~ ^[0-9]+$ ]] || got=-1
  if [[ $src == a ]]; then
    ((got == 10)) && ok "pod-a -> pod-c udp/9000: $got/10 received (allowed)" || fail "pod-a -> pod-c udp: $got/10 received"
  else
    ((got == 0)) && ok "pod-b -> pod-c udp/9000: $got/10 received (denied by IngressDefaultRule)" || fail "pod-b -> pod-c udp: $got/10 passed the policy"
  fi
done

echo "== TCP through the conntrack pipeline: 3 s pod-a -> pod-b (iperf3)"
ip netns exec "$(ns b)" timeout 20 iperf3 -s -1 -p 5201 >/dev/null & srv=$!; bg+=("$srv")
sleep 0.5
if out=$(ip netns exec "$(ns a)" timeout 20 iperf3 -c 10.10.0.3 -p 5201 -t 3 -f g); then
  echo "$out" | grep -E 'receiver|sender' | sed 's/^/   /'
  gbps=$(echo "$out" | awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Gbits/sec") print $(i-1) }')
  [[ -n $gbps ]] && ok "iperf3 TCP: $gbps Gbit/s" || fail "iperf3 reported no receiver rate"
else
  echo "$out" | tail -3 | sed 's/^/   /'; fail "iperf3 TCP transfer failed"
fi
wait "$srv" 2>/dev/null || true

echo "== the switch's view, with the real tools"
echo "\$ ovs-ofctl -O OpenFlow15 dump-flows \$BR --names table=7/12/25 (n_packets of cached hits)"
for t in 7 12 25; do
  ofctl dump-flows "$BR" --names "table=$t" | grep -v 'reply' | grep -v 'n_packets=0,' |
    sed -E 's/ *cookie=0x0, //; s/idle_age=[0-9]+, //; s/duration=[0-9.]+s, //' | sed 's/^/   /'
done
est=$(ofctl dump-flows "$BR" 'table=12' | awk '/ct_state=-new\+est/ { sub(/.*n_packets=/, ""); sub(/,.*/, ""); print }')
((${est:-0} > 0)) && ok "table 12 ct_state=-new+est matched $est packets" || fail "no +est packets counted in table 12"
echo "\$ ovs-ofctl -O OpenFlow15 dump-group-stats \$BR   (the Service group's buckets = the two endpoints)"
ofctl dump-group-stats "$BR" | grep -v reply | sed 's/^ */   /'
g1=$(ofctl dump-group-stats "$BR" | awk -F'packet_count=' '/group_id=1,/ { split($2, a, ","); print a[1] }')
((${g1:-0} > 0)) && ok "group 1 counted $g1 packets" || fail "no packets counted for group 1 over OpenFlow"
echo "\$ ovs-appctl dpctl/dump-conntrack zone=65520   (Service connections, DNATed to both endpoints)"
appctl dpctl/dump-conntrack zone=65520 > "$run/ct.txt"
grep 10.96.0.10 "$run/ct.txt" | head -4 | sed 's/^/   /'
echo "   ... $(wc -l < "$run/ct.txt") entries in zone 65520"
for e in 10.10.0.3 10.10.0.4; do
  grep 10.96.0.10 "$run/ct.txt" | grep -q "src=$e" && ok "tracker holds Service connections DNATed to $e" ||
    fail "no Service connection DNATed to $e in the tracker"
done
echo "\$ ovs-appctl dpif/show-dp-features br-int"
appctl dpif/show-dp-features br-int | head -12 | sed 's/^/   /'
echo "\$ ovs-appctl ofproto/trace br-int '<new tcp to 10.96.0.10:80 from pod-a>' --ct-next trk,new"
appctl ofproto/trace br-int \
  'in_port=pa0,tcp,dl_src=02:0a:0a:00:00:02,dl_dst=aa:bb:cc:dd:ee:ff,nw_src=10.10.0.2,nw_dst=10.96.0.10,nw_ttl=64,tp_src=40000,tp_dst=80' \
  --ct-next trk,new > "$run/trace.txt"
grep -E '^ *[0-9]+\. |^(Datapath actions|recirc)|group' "$run/trace.txt" | head -24 | sed 's/^/   /'
echo "\$ ovs-appctl dpif-netdev/pmd-stats-show"
appctl dpif-netdev/pmd-stats-show | sed 's/^/   /'
echo "\$ ovs-appctl xvs/show   (counters and drops by reason)"
appctl xvs/show | sed 's/^/   /'

echo "== stopping xvsd"
kill -TERM "$xvsd_pid"; wait "$xvsd_pid"; xvsd_pid=""
if ip netns exec "$N" ip link show | grep -q ' xdp'; then
  fail "XDP program left behind"
else
  ok "XDP programs detached; the namespaces are removed on exit"
fi

echo "== part 2: two nodes joined by Geneve (one pod on each; flows over OpenFlow again)"
#   pod-x 10.244.1.2 -- px0 ┐ node 1  ul0 192.168.88.1 ==== ul0 192.168.88.2  node 2 ┌ py0 -- pod-y 10.244.2.2
#                           └ xvsd (core 0), gnv0 (ofport 100)   gnv0 (ofport 100), xvsd (core 1) ┘
GW=02:00:00:00:00:fe
cores=$(nproc)
for k in 1 2; do
  extra_ns+=("${tag}-node$k" "${tag}-pod$k")
  ip netns add "${tag}-node$k"; ip netns add "${tag}-pod$k"
  for n in "${tag}-node$k" "${tag}-pod$k"; do
    ip -n "$n" link set lo up
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
done
ip -n "${tag}-node1" link add ul0 address 02:00:00:00:88:01 type veth peer name ul0 netns "${tag}-node2"
ip -n "${tag}-node2" link set ul0 address 02:00:00:00:88:02
for k in 1 2; do
  nn="${tag}-node$k"; pn="${tag}-pod$k"; port=$([[ $k == 1 ]] && echo px0 || echo py0)
  ip -n "$nn" addr add "192.168.88.$k/24" dev ul0; ip -n "$nn" link set ul0 up
  ip netns exec "$nn" ethtool -K ul0 tx off tso off gso off >/dev/null
  ip -n "$pn" link add eth0 address "02:00:00:00:0$k:02" type veth peer name "$port" netns "$nn"
  ip -n "$pn" addr add "10.244.$k.2/24" dev eth0
  ip -n "$pn" link set eth0 mtu 1450 up   # Geneve takes 50 bytes, as Antrea sets the Pod MTU
  ip -n "$nn" link set "$port" up
  ip netns exec "$pn" ethtool -K eth0 tx off tso off gso off >/dev/null
  ip -n "$pn" neigh replace "10.244.$k.1" lladdr "$GW" dev eth0 nud permanent
  ip -n "$pn" route add 10.244.0.0/16 via "10.244.$k.1"
  worker=$(( k == 2 && cores > 1 ? 1 : 0 ))
  mkdir -p "$run/n$k"
  cat > "$run/n$k/xvsd.toml" <<TOML
bridge = "br-int"
run_dir = "$run/n$k/xvs"
workers = [$worker]
pmd_sleep_max_us = 50

[[port]]
name = "$port"
type = "afxdp"
ofport = 1

[[port]]
name = "ul0"
type = "afxdp"
ofport = 3
uplink = true

[[port]]
name = "gnv0"
type = "geneve"
ofport = 100
TOML
  ip netns exec "$nn" "$XVSD" --config "$run/n$k/xvsd.toml" & xvsd2+=($!)
done
for k in 1 2; do
  for _ in $(seq 100); do [[ -S "$run/n$k/xvs/br-int.mgmt" ]] && break; sleep 0.1; done
  [[ -S "$run/n$k/xvs/br-int.mgmt" ]] || { fail "node $k's xvsd did not start"; exit 1; }
  o=$((3 - k))
  # Local pod by address; the other node's pod over Geneve VNI 1 to the other node's underlay.
  printf '%s\n' \
    "table=0,priority=100,in_port=100,tun_id=1,ip,nw_dst=10.244.$k.2,actions=set_field:$GW->eth_src,set_field:02:00:00:00:0$k:02->eth_dst,output:1" \
    "table=0,priority=100,in_port=1,ip,nw_dst=10.244.$o.2,actions=set_field:192.168.88.$o->tun_dst,set_field:1->tun_id,set_field:$GW->eth_src,set_field:02:00:00:00:0$o:02->eth_dst,output:100" \
    > "$run/n$k/flows.txt"
  ofctl --bundle add-flows "unix:$run/n$k/xvs/br-int.mgmt" "$run/n$k/flows.txt"
done
echo "   2 flows per node installed with ovs-ofctl --bundle add-flows"
if out=$(ip netns exec "${tag}-pod1" ping -c 3 -i 0.2 -W 2 10.244.2.2); then
  echo "$out" | grep -E 'packets transmitted' | sed 's/^/   /'
  ok "pod-x (node 1) reaches pod-y (node 2) over Geneve"
else
  echo "$out" | sed 's/^/   /'; fail "cross-node ping over Geneve lost"
fi
ip netns exec "${tag}-pod2" timeout 20 iperf3 -s -1 -p 5201 >/dev/null & srv=$!; bg+=("$srv")
sleep 0.5
if out=$(ip netns exec "${tag}-pod1" timeout 20 iperf3 -c 10.244.2.2 -p 5201 -t 3 -f g); then
  echo "$out" | grep -E 'receiver' | sed 's/^/   /'
  gbps=$(echo "$out" | awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Gbits/sec") print $(i-1) }')
  [[ -n $gbps ]] && ok "iperf3 TCP over Geneve: $gbps Gbit/s" || fail "iperf3 over Geneve reported no rate"
else
  echo "$out" | tail -3 | sed 's/^/   /'; fail "iperf3 TCP over Geneve failed"
fi
wait "$srv" 2>/dev/null || true
for k in 1 2; do
  echo "\$ ovs-appctl -t <node $k>/xvsd.ctl xvs/show | grep -E 'capsulated|drop tunnel_'"
  show=$(timeout 20 ovs-appctl -t "$run/n$k/xvs/xvsd.ctl" xvs/show)
  echo "$show" | grep -E 'capsulated|drop tunnel_' | sed 's/^ */   /'
  dec=$(echo "$show" | sed -n 's/.*decapsulated \([0-9]*\).*/\1/p')
  ((${dec:-0} > 0)) && ok "node $k decapsulated $dec Geneve packets" || fail "node $k decapsulated nothing"
done
for p in "${xvsd2[@]}"; do kill -TERM "$p"; wait "$p" || true; done
xvsd2=()

echo "== $((SECONDS - start)) s after the build"
if ((${#failures[@]})); then
  echo "== DEMO FAILED: ${#failures[@]} expected result(s) wrong:"
  printf '   - %s\n' "${failures[@]}"
  exit 1
fi
echo "== demo passed: every expected result seen"
