#!/usr/bin/env python3
"""Writes corpus/dns: DNS responses built by hand after RFC 1035 (header, question, answer
RRs, compression pointers), as UDP payloads and TCP-framed (2-byte length), plus cut ones."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "dns")
os.makedirs(out, exist_ok=True)


def name(n):
    b = b""
    for label in n.split("."):
        if label:
            b += bytes([len(label)]) + label.encode()
    return b + b"\0"


def header(ident, flags, qd, an, ns=0, ar=0):
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def rr(owner, rtype, ttl, rdata, cls=1):
    return owner + struct.pack("!HHIH", rtype, cls, ttl, len(rdata)) + rdata


PTR_Q = b"\xc0\x0c"  # the question name, right after the header
A = lambda *o: bytes(o)

samples = {}
q = name("www.foobar.com") + struct.pack("!HH", 1, 1)
samples["a_www_foobar"] = header(0x1234, 0x8180, 1, 1) + q + rr(PTR_Q, 1, 5, A(10, 0, 10, 7))
samples["a_two_records"] = (
    header(0x1235, 0x8180, 1, 2) + q
    + rr(PTR_Q, 1, 30, A(10, 0, 10, 7)) + rr(PTR_Q, 1, 300, A(10, 0, 11, 7))
)
# CNAME chain: www.foobar.com CNAME edge.foobar.com (name with a pointer to "foobar.com").
cname_target = b"\x04edge\xc0\x10"
samples["cname_then_a"] = (
    header(0x1236, 0x8180, 1, 2) + q
    + rr(PTR_Q, 5, 60, cname_target)
    + rr(b"\x04edge\xc0\x10", 1, 60, A(10, 0, 12, 7))
)
samples["nxdomain"] = header(0x1237, 0x8183, 1, 0) + name("nope.foobar.com") + struct.pack("!HH", 1, 1)
samples["aaaa_and_a"] = (
    header(0x1238, 0x8180, 1, 2) + name("v6.foobar.com") + struct.pack("!HH", 28, 1)
    + rr(PTR_Q, 28, 60, bytes(15) + b"\x01") + rr(PTR_Q, 1, 60, A(10, 0, 13, 7))
)
# RFC 1035 4.1.4's compression example: F.ISI.ARPA, FOO.F.ISI.ARPA, ARPA.
rfc = header(0x1239, 0x8580, 1, 2) + name("F.ISI.ARPA") + struct.pack("!HH", 1, 1)
rfc += rr(b"\x03FOO\xc0\x0c", 1, 86400, A(10, 0, 0, 52))
rfc += rr(b"\xc0\x12", 1, 86400, A(26, 3, 0, 103))
samples["rfc1035_compression"] = rfc
samples["ttl_top_bit"] = header(0x123a, 0x8180, 1, 1) + q + rr(PTR_Q, 1, 0x80000001, A(1, 2, 3, 4))
samples["pointer_loop"] = header(0x123b, 0x8180, 1, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)

for k, v in list(samples.items()):
    samples["tcp_" + k] = struct.pack("!H", len(v)) + v
full = samples["tcp_a_two_records"]
samples["tcp_cut_in_second_answer"] = full[:-3]

for k, v in samples.items():
    with open(os.path.join(out, k + ".bin"), "wb") as f:
        f.write(v)
print(len(samples), "files in", out)
