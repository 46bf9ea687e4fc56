#!/bin/sh
# Regenerates the captured ovs-ofctl messages in ../fixtures from the flowtable corpus.
# Needs Open vSwitch 3.1's ovs-ofctl and python3; no switch daemon, no network.
set -e
here=$(cd "$(dirname "$0")" && pwd)
fx="$here/../fixtures"
corpus="$here/../../../../flowtable/tests/corpus"
cap="python3 $here/capture.py"
sed 's/^ //' "$corpus/flows.expected" > "$fx/flows.txt"
sed 's/^ //' "$corpus/random.expected" > "$fx/random.txt"
sed -n '2,$p' "$corpus/groups-nonames.expected" | sed 's/^ //' > "$fx/groups.txt"
$cap "$fx/flows.hex" -- ovs-ofctl -O OpenFlow15 add-flows 'unix:{sock}' "$fx/flows.txt"
$cap "$fx/random.hex" -- ovs-ofctl -O OpenFlow15 add-flows 'unix:{sock}' "$fx/random.txt"
$cap "$fx/groups.hex" -- ovs-ofctl -O OpenFlow15 add-groups 'unix:{sock}' "$fx/groups.txt"
head -40 "$fx/flows.txt" > "$fx/bundle.txt"
$cap "$fx/bundle.hex" -- ovs-ofctl -O OpenFlow15 --bundle add-flows 'unix:{sock}' "$fx/bundle.txt"
: > "$fx/meters.hex"
cp "$corpus/meters.txt" "$fx/meters.txt"
while read -r m; do
    $cap "$fx/meter1.hex" -- ovs-ofctl -O OpenFlow15 add-meter 'unix:{sock}' "$m"
    grep -v '^0612' "$fx/meter1.hex" >> "$fx/meters.hex"
done < "$fx/meters.txt"
rm -f "$fx/meter1.hex"
$cap "$fx/packet-out.hex" -- ovs-ofctl -O OpenFlow15 packet-out 'unix:{sock}' "$(cat "$fx/packet-out.txt")"
$cap "$fx/dump-flows.hex" -- ovs-ofctl -O OpenFlow15 dump-flows 'unix:{sock}' "$(cat "$fx/dump-flows.txt")"
: > "$fx/port-mod.hex"
for c in down up no-packet-in packet-in no-receive receive no-forward forward; do
    $cap "$fx/pm1.hex" -- ovs-ofctl -O OpenFlow15 mod-port 'unix:{sock}' pa0 "$c"
    grep '^0610' "$fx/pm1.hex" >> "$fx/port-mod.hex"
done
rm -f "$fx/pm1.hex"
