#!/usr/bin/env python3
"""Writes corpus/dns/real_*.bin: answers of a real DNS server (dnsmasq, Debian package
dnsmasq-base) to A and AAAA queries, over UDP and TCP, for a two-step CNAME chain, a name
with two A records and an AAAA record, a headless-Service-like name with several A records,
and a name that does not exist. Run as root: dnsmasq runs in a network namespace of its own
on 127.0.0.1:53 (nothing leaves it) and is stopped by its PID at the end.

    sudo python3 ctl/agent/fuzz/capture_real.py
"""
import os
import socket
import struct
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "dns")

DNSMASQ_ARGS = [
    "--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
    "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53",
    "--local=/foobar.com/", "--local=/cluster.local/",
    "--user=root", "--pid-file=",
    # A two-step chain: www -> cdn -> edge, edge has two A and one AAAA records.
    "--host-record=edge.foobar.com,10.0.12.7,fd00::12:7,30",
    "--host-record=edge.foobar.com,10.0.12.8,60",
    "--cname=cdn.foobar.com,edge.foobar.com,20",
    "--cname=www.foobar.com,cdn.foobar.com,10",
    # A headless Service: one A record per Pod.
    "--host-record=svca.default.svc.cluster.local,10.10.0.3,5",
    "--host-record=svca.default.svc.cluster.local,10.10.0.4,5",
    "--host-record=svca.default.svc.cluster.local,10.10.0.5,5",
]

QUERIES = [
    # (file, name, qtype, over TCP)
    ("real_cname_chain_a", "www.foobar.com", 1, False),
    ("real_cname_chain_aaaa", "www.foobar.com", 28, False),
    ("real_tcp_cname_chain_a", "WWW.FooBar.com", 1, True),
    ("real_a_two_records", "edge.foobar.com", 1, False),
    ("real_headless_service", "svca.default.svc.cluster.local", 1, False),
    ("real_tcp_headless_service", "svca.default.svc.cluster.local", 1, True),
    ("real_nxdomain", "nope.foobar.com", 1, False),
]


def query(ident, name, qtype):
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", qtype, 1)


def ask(q, tcp):
    if tcp:
        with socket.create_connection(("127.0.0.1", 53), timeout=3) as s:
            s.sendall(struct.pack("!H", len(q)) + q)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data  # kept framed: the TCP parser's input
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q, ("127.0.0.1", 53))
        return s.recvfrom(4096)[0]


def inside():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    d = subprocess.Popen(["dnsmasq"] + DNSMASQ_ARGS, stderr=subprocess.PIPE)
    try:
        for _ in range(50):
            try:
                ask(query(1, "edge.foobar.com", 1), False)
                break
            except OSError:
                time.sleep(0.1)
        os.makedirs(out, exist_ok=True)
        for i, (f, name, qtype, tcp) in enumerate(QUERIES):
            r = ask(query(0x5100 + i, name, qtype), tcp)
            with open(os.path.join(out, f + ".bin"), "wb") as fh:
                fh.write(r)
            print(f"{f}: {len(r)} bytes")
    finally:
        d.terminate()
        d.wait()


def main():
    if sys.argv[1:] == ["--inside"]:
        inside()
        return
    ns = f"xvsfz{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside"], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


if __name__ == "__main__":
    main()
