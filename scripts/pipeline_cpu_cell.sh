#!/bin/bash
# One pipeline-only cell of xvsd, measured per CPU-second of its worker, for loaded machines.
#
#   scripts/pipeline_cpu_cell.sh <xvsd built with dpdk> <scenario> <pcap> <tag> [secs]
#
# Runs xvsd as `xvs-bench pipeline` does (net_pcap infinite_rx -> switch -> net_null, worker on
# cpu1), but without hugepages so it cannot disturb a concurrent harness run, with the flow
# files of `xvs-bench pipeline --write-flows /tmp/emc-x/flows` and the pcaps it wrote to
# /tmp/xvs-pipeline-pcaps. After a 2 s warm-up it counts port 2's tx packets over a window and
# the worker thread's on-CPU time over the same window (perf stat task-clock; this VM has no
# hardware counters). Packets per on-CPU second stays comparable when other jobs take the
# core away from the worker; wall-clock Mpps does not. With PROFILE=1 it also records a
# cpu-clock profile of the worker to /tmp/emc-x/<tag>-<scenario>-<pcap>.data.
# With BACKEND=mem, xvsd runs on its in-memory ports instead (a paused `replay` port holding
# the pcap, started after the flows are loaded, and a `null` sink; no DPDK, any xvsd build),
# as the `xvsd-mem` peer of `xvs-bench pipeline`; scenario `io` loads the single flow
# in_port=1,actions=output:2, and scenario `iofwd` runs forwarding = "io-fwd" (no tables:
# the ports' own cost, replay copy and null free, plus the worker loop; counted by xvs/show).
set -u
bin=$1; sc=$2; pcap=$3; tag=$4; secs=${5:-4}
flows=${FLOWS_DIR:-/tmp/emc-x/flows}
run=$(mktemp -d /tmp/xvs-cell-XXXXXX)
mkdir -p /tmp/emc-x
fwd=openflow; sock=br-int.mgmt
[ "$sc" = iofwd ] && { fwd=io-fwd; sock=xvsd.ctl; }
if [ "${BACKEND:-dpdk}" = mem ]; then
cat > "$run/xvsd.toml" <<EOT
bridge = "br-int"
run_dir = "$run"
workers = [1]
forwarding = "$fwd"
runtime_ports = 0

[[port]]
name = "pcap0"
type = "replay"
ofport = 1
pcap = "/tmp/xvs-pipeline-pcaps/$pcap.pcap"
paused = true

[[port]]
name = "null0"
type = "null"
ofport = 2
EOT
else
cat > "$run/xvsd.toml" <<EOT
bridge = "br-int"
run_dir = "$run"
workers = [1]
forwarding = "openflow"

[dpdk]
cores = "0"
no_huge = true
memory_mb = 512
extra_args = ["--log-level=lib.eal:error"]

[[port]]
name = "pcap0"
type = "dpdk"
ofport = 1
devargs = "net_pcap0,rx_pcap=/tmp/xvs-pipeline-pcaps/$pcap.pcap,infinite_rx=1"

[[port]]
name = "null0"
type = "dpdk"
ofport = 2
devargs = "net_null0,no-rx=1"
EOT
fi
taskset -c 0,1 "$bin" --config "$run/xvsd.toml" > "$run/xvsd.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -S "$run/$sock" ] && break; sleep 0.1; done
of="ovs-ofctl -O OpenFlow15"
[ "$sc" = iofwd ] || $of del-flows "unix:$run/br-int.mgmt"
if [ "$sc" = iofwd ]; then
	:
elif [ "$sc" = io ]; then
	$of add-flow "unix:$run/br-int.mgmt" in_port=1,actions=output:2
else
	$of add-flows "unix:$run/br-int.mgmt" "$flows/$sc.flows"
fi
[ "${BACKEND:-dpdk}" = mem ] && ovs-appctl -t "$run/xvsd.ctl" xvs/replay-start > /dev/null
sleep 2
tid=$(ps -T -p $pid -o spid=,comm= | awk '/pmd/ {print $1; exit}')
if [ "$sc" = iofwd ]; then
tx() { ovs-appctl -t "$run/xvsd.ctl" xvs/show | awk '/port 2:/ {getline; getline; split($2,a,":"); print a[2]; exit}'; }
else
tx() { $of dump-ports "unix:$run/br-int.mgmt" 2 | awk -F'pkts=' '/tx/ {split($2,a,","); print a[1]; exit}'; }
fi
t0=$(tx)
if [ "${PROFILE:-0}" = 1 ]; then
	perf stat -x, -t "$tid" -e task-clock -o "$run/perf.txt" -- \
		perf record -q -e cpu-clock -t "$tid" -o "/tmp/emc-x/$tag-$sc-$pcap.data" -- sleep "$secs"
else
	perf stat -x, -t "$tid" -e task-clock -o "$run/perf.txt" -- sleep "$secs"
fi
t1=$(tx)
ms=$(awk -F, '/task-clock/ {print $1}' "$run/perf.txt")
kill $pid; wait $pid 2>/dev/null
awk -v tag="$tag" -v sc="$sc" -v p="$pcap" -v pk=$((t1 - t0)) -v ms="$ms" -v s="$secs" 'BEGIN {
	printf "%-10s %-6s %-13s wall Mpps %6.2f  on-cpu %5.1f%%  Mpps per cpu-second %6.2f  ns/pkt %6.1f\n",
		tag, sc, p, pk/s/1e6, ms/10/s, pk/ms/1e3, ms*1e6/pk }'
rm -rf "$run"
