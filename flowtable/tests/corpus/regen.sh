#!/bin/sh
# Regenerates the expected dumps of the flow corpus with the real Open vSwitch.
#
# Usage: flowtable/tests/corpus/regen.sh        (needs ovsdb-server, ovs-vswitchd, ovs-ofctl,
#                                              ovs-vsctl from Open vSwitch 3.1, and python3)
#
# What it does:
#   1. python3 gen_corpus.py writes flows.txt, groups.txt, meters.txt, tables.txt, ports.txt.
#   2. Starts a private ovsdb-server and ovs-vswitchd in a fresh temporary directory (their own
#      run/db/log dir, unix sockets only, no network listener; `--enable-dummy=override` so no
#      kernel interface is created), adds a datapath_type=netdev bridge with the corpus ports
#      (ofport_request as in ports.txt) and names its flow tables as in tables.txt.
#   3. Adds the meters, groups and flows with `ovs-ofctl -O OpenFlow15`, then writes
#        flows.expected          dump-flows --no-stats --no-names
#        flows-names.expected    dump-flows --no-stats --names
#        flows-stats.expected    dump-flows --names (with statistics)
#        groups.expected         dump-groups --names
#        groups-nonames.expected dump-groups --no-names
#        meters.expected         dump-meters
#        random.status, random.expected, random-names.expected
#                                the differential test over gen_random.py's flows
#   4. Stops both daemons by their PIDs and removes the temporary directory.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"
python3 gen_corpus.py

RUN=$(mktemp -d /tmp/xvs-flowtable-ovs.XXXXXX)
export OVS_RUNDIR="$RUN" OVS_DBDIR="$RUN" OVS_LOGDIR="$RUN" OVS_SYSCONFDIR="$RUN" OVS_PKGDATADIR=/usr/share/openvswitch
DB="unix:$RUN/db.sock"
stop() {
    for p in ovs-vswitchd ovsdb-server; do
        if [ -f "$RUN/$p.pid" ]; then
            kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true
        fi
    done
    sleep 0.5
    rm -rf "$RUN"
}
trap stop EXIT INT TERM

ovsdb-tool create "$RUN/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server "$RUN/conf.db" --remote="punix:$RUN/db.sock" --pidfile="$RUN/ovsdb-server.pid" \
    --unixctl="$RUN/ovsdb-server.ctl" --log-file="$RUN/ovsdb-server.log" --detach
ovs-vsctl --db="$DB" --no-wait init
ovs-vswitchd "$DB" --enable-dummy=override --disable-system --pidfile="$RUN/ovs-vswitchd.pid" \
    --unixctl="$RUN/ovs-vswitchd.ctl" --log-file="$RUN/ovs-vswitchd.log" --detach

BR=xft0
set -- --db="$DB" add-br $BR -- set bridge $BR datapath_type=netdev protocols=OpenFlow10,OpenFlow15 \
    fail_mode=secure
while read -r ofport name type; do
    set -- "$@" -- add-port $BR "$name" -- set interface "$name" ofport_request="$ofport"
    case "$type" in
        geneve) set -- "$@" type=geneve options:remote_ip=flow options:key=flow ;;
        internal) set -- "$@" type=internal ;;
    esac
done < ports.txt
while read -r id name; do
    set -- "$@" -- --id=@t$id create Flow_Table name="$name" -- set bridge $BR flow_tables:$id=@t$id
done < tables.txt
ovs-vsctl "$@" > /dev/null

OF="ovs-ofctl -O OpenFlow15"
MGMT="unix:$RUN/$BR.mgmt"
$OF del-flows "$MGMT"
while read -r m; do $OF add-meter "$MGMT" "$m"; done < meters.txt
$OF add-groups "$MGMT" groups.txt
$OF add-flows "$MGMT" flows.txt
$OF dump-flows "$MGMT" --no-stats --no-names > flows.expected
$OF dump-flows "$MGMT" --no-stats --names > flows-names.expected
$OF dump-flows "$MGMT" --names > flows-stats.expected
$OF dump-groups "$MGMT" --names > groups.expected
$OF dump-groups "$MGMT" --no-names > groups-nonames.expected
$OF dump-meters "$MGMT" > meters.expected
echo "flows: $(wc -l < flows.txt) in, $(wc -l < flows.expected) dumped"

# Differential test: random flows, added one by one; random.status records per line whether the
# switch took it ("ok") or the last error line ovs-ofctl printed.
python3 gen_random.py
$OF del-flows "$MGMT"
while IFS= read -r line; do
    if out=$($OF add-flow "$MGMT" "$line" 2>&1); then
        echo "ok"
    else
        echo "error: $(printf '%s\n' "$out" | grep -v '^0000' | tail -1)"
    fi
done < random.txt > random.status
$OF dump-flows "$MGMT" --no-stats --no-names > random.expected
$OF dump-flows "$MGMT" --no-stats --names > random-names.expected
echo "random: $(grep -c '^ok' random.status) of $(wc -l < random.txt) accepted by OVS"

# Error messages of ovs-ofctl for malformed flows (no switch needed): one line per input of
# errors.txt, either "error: <message>" or "ok".
while IFS= read -r line; do
    if out=$(ovs-ofctl -O OpenFlow15 parse-flow "$line" 2>&1); then
        echo "ok"
    else
        echo "error: $(printf '%s\n' "$out" | grep '^ovs-ofctl: ' | tail -1 | sed 's/^ovs-ofctl: //')"
    fi
done < errors.txt > errors.expected
