#!/usr/bin/env bash
# Measures `xvsctl capture` under a flood ping: how many frames the capture path (worker ring
# of 256 records, drained by xvsd's control loop every 20 ms) keeps and drops, and the ping's
# rate with and without a capture running.
#
# Everything runs in network namespaces this script creates (two pods joined to a node
# namespace by veth pairs, xvsd on AF_XDP in the node); xvsd is stopped by PID and the
# namespaces are removed on exit. Run as root after
#   cargo build --release -p xvsd -p xvsctl
# Usage: ctl/xvsctl/bench-capture.sh [target dir] [pings] [interval s, default: flood]
set -euo pipefail
TARGET=${1:-${CARGO_TARGET_DIR:-target}}/release
PINGS=${2:-20000}
INTERVAL=${3:-}
TAG=xcb$$
NODE=${TAG}n A=${TAG}a B=${TAG}b
RUN=$(mktemp -d /tmp/${TAG}.XXXX)
XVSD_PID=
cleanup() {
    [ -n "$XVSD_PID" ] && kill "$XVSD_PID" 2>/dev/null && wait "$XVSD_PID" 2>/dev/null || true
    for n in $NODE $A $B; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
for n in $NODE $A $B; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n $A link add eth0 address 02:0a:0a:00:00:02 type veth peer name pa0 netns $NODE
ip -n $B link add eth0 address 02:0a:0a:00:00:03 type veth peer name pb0 netns $NODE
ip -n $A addr add 10.10.0.2/24 dev eth0
ip -n $B addr add 10.10.0.3/24 dev eth0
for n in $A $B; do
    ip -n $n link set eth0 up
    ip netns exec $n ethtool -K eth0 tx off tso off gso off >/dev/null
done
ip -n $A neigh replace 10.10.0.3 lladdr 02:0a:0a:00:00:03 dev eth0 nud permanent
ip -n $B neigh replace 10.10.0.2 lladdr 02:0a:0a:00:00:02 dev eth0 nud permanent
ip -n $NODE link set pa0 up
ip -n $NODE link set pb0 up
cat > $RUN/flows <<'EOF'
table=0,priority=10,in_port=1,actions=output:2
table=0,priority=10,in_port=2,actions=output:1
EOF
cat > $RUN/xvsd.toml <<EOF
bridge = "br-int"
run_dir = "$RUN/run"
workers = [0]
flows = "$RUN/flows"
[[port]]
name = "pa0"
type = "afxdp"
ofport = 1
[[port]]
name = "pb0"
type = "afxdp"
ofport = 2
EOF
ip netns exec $NODE "$TARGET/xvsd" --config $RUN/xvsd.toml 2>$RUN/xvsd.log &
XVSD_PID=$!
for _ in $(seq 100); do [ -f $RUN/run/xvsd.pid ] && break; sleep 0.1; done
[ -f $RUN/run/xvsd.pid ] || { cat $RUN/xvsd.log; exit 1; }
ip netns exec $A ping -c 3 -i 0.2 10.10.0.3 >/dev/null

flood() {
    local rate=(-f)
    [ -n "$INTERVAL" ] && rate=(-i "$INTERVAL")
    ip netns exec $A ping "${rate[@]}" -q -c "$PINGS" 10.10.0.3 | sed -n 's/.*transmitted, \([0-9]*\) received.*time \([0-9]*\)ms/\1 \2/p'
}
read -r got ms < <(flood)
echo "no capture: $got/$PINGS replies in $ms ms ($((got * 1000 / (ms > 0 ? ms : 1))) pings/s)"
"$TARGET/xvsctl" --run-dir $RUN/run capture pa0 -w $RUN/pa0.pcap --timeout 120 2>$RUN/cap.log &
CAP=$!
for _ in $(seq 50); do grep -q capturing $RUN/cap.log && break; sleep 0.1; done
read -r got ms < <(flood)
kill -INT $CAP
wait $CAP || true
echo "capture on: $got/$PINGS replies in $ms ms ($((got * 1000 / (ms > 0 ? ms : 1))) pings/s)"
echo "xvsctl: $(grep 'packets captured' $RUN/cap.log) (expected $((2 * PINGS)) frames: requests in, replies out)"
echo "pcap: $(tshark -r $RUN/pa0.pcap -Y icmp 2>/dev/null | wc -l) ICMP frames"
echo "ring: $("$TARGET/xvsctl" --run-dir $RUN/run coverage | grep -E '^capture_(frame|drop) ' | awk '{print $1, $NF}' | tr '\n' ' ')"
