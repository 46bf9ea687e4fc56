#!/usr/bin/env bash
# Regenerates the capture files in this directory (root; needs tcpdump, editcap, python3-scapy).
# Traffic stays on the loopback of a private network namespace that the script removes on exit.
set -euo pipefail
cd "$(dirname "$0")"
ns="xvsio-capture-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up

capture() { # capture <file> <interface> <tcpdump options...>
    local file=$1 ifname=$2
    shift 2
    ip netns exec "$ns" timeout 10 tcpdump -q -n -i "$ifname" -c 8 -U -w "$file" "$@" 2>/dev/null &
    local pid=$!
    sleep 1
    # A UDP datagram and a short TCP exchange on the namespace's loopback.
    ip netns exec "$ns" /usr/bin/python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"xvs-udp-probe", ("127.0.0.1", 9999))
l = socket.socket(); l.bind(("127.0.0.1", 8080)); l.listen(1)
c = socket.create_connection(("127.0.0.1", 8080)); s, _ = l.accept()
c.sendall(b"GET / HTTP/1.0\r\n\r\n"); s.recv(100); s.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello")
c.recv(100); c.close(); s.close()
'
    wait "$pid" || true
}

# Real loopback traffic (Ethernet link type, zero MACs), micro- and nanosecond magic.
capture lo-usec.pcap lo
capture lo-nsec.pcap lo --time-stamp-precision=nano
# The "any" device records Linux cooked headers: a link type the reader must reject.
capture any-sll.pcap any
# pcapng (not classic pcap): must be rejected.
editcap -F pcapng lo-usec.pcap lo.pcapng

# Big-endian files with a mix of protocols (scapy).
/usr/bin/python3 - <<'PY'
from scapy.all import Ether, Dot1Q, IP, IPv6, UDP, TCP, ARP, ICMPv6EchoRequest, Raw, PcapWriter
pkts = [
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=9000) / Raw(b"x" * 18),
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S"),
    Ether(src="02:00:00:00:00:03", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.3", pdst="10.0.0.1"),
    Ether(src="02:00:00:00:00:01", dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6EchoRequest(data=b"ping"),
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=100) / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=53, dport=53) / Raw(b"\x00" * 40),
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(bytes(range(256)) * 5),
]
for name, nano in (("scapy-be-usec.pcap", False), ("scapy-be-nsec.pcap", True)):
    w = PcapWriter(name, linktype=1, endianness=">", nano=nano, sync=True)
    for i, p in enumerate(pkts):
        p.time = 1700000000 + i + 0.123456789
        w.write(p)
    w.close()
PY
ls -l *.pcap *.pcapng
