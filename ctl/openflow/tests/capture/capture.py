#!/usr/bin/env python3
"""Captures the OpenFlow messages Open vSwitch's ovs-ofctl sends for a command.

A tiny switch stand-in listens on a private unix socket, answers HELLO (OpenFlow 1.5),
FEATURES_REQUEST, ECHO_REQUEST, BARRIER_REQUEST, BUNDLE_CONTROL and MULTIPART_REQUEST (a minimal reply), and writes every message the client sends
(except HELLO, ECHO and BARRIER) as one hex line to the output file.

Usage: capture.py OUT.hex -- ovs-ofctl -O OpenFlow15 add-flows unix:{sock} FILE
       ({sock} is replaced by the socket path.)
"""
import os, socket, struct, subprocess, sys, tempfile, threading

def recv_msg(conn):
    hdr = b""
    while len(hdr) < 8:
        chunk = conn.recv(8 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    length = struct.unpack("!H", hdr[2:4])[0]
    body = b""
    while len(body) < length - 8:
        chunk = conn.recv(length - 8 - len(body))
        if not chunk:
            return None
        body += chunk
    return hdr + body

def accept_loop(srv, out):
    # ovs-ofctl opens one connection to learn table names and another for the command.
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        serve(conn, out)

def serve(conn, out):
    conn.sendall(struct.pack("!BBHI HH I", 6, 0, 16, 0, 1, 8, 1 << 6))
    while True:
        m = recv_msg(conn)
        if m is None:
            break
        ver, typ, _, xid = struct.unpack("!BBHI", m[:8])
        if typ == 0:  # HELLO
            continue
        if typ == 2:  # ECHO_REQUEST
            conn.sendall(struct.pack("!BBHI", ver, 3, len(m), xid) + m[8:])
            continue
        if typ == 5:  # FEATURES_REQUEST
            conn.sendall(struct.pack("!BBHIQIBBHII", ver, 6, 32, xid, 1, 0, 254, 0, 0, 0x4f, 0))
            continue
        if typ == 20:  # BARRIER_REQUEST
            conn.sendall(struct.pack("!BBHI", ver, 21, 8, xid))
            continue
        out.append(m)
        if typ == 33:  # BUNDLE_CONTROL: acknowledge (reply type = request type + 1)
            bid, ctype, flags = struct.unpack("!IHH", m[8:16])
            conn.sendall(struct.pack("!BBHIIHH", ver, 33, 16, xid, bid, ctype + 1, flags))
        if typ == 18:  # MULTIPART_REQUEST: an empty reply of the same type
            mp_type = struct.unpack("!H", m[8:10])[0]
            body = b""
            if mp_type == 12:  # TABLE_FEATURES: one unnamed table without properties
                body = struct.pack("!HBBI32sQQII", 64, 0, 0, 0, b"", 0, 0, 0, 1000000)
            if mp_type == 13:  # PORT_DESC: port 1 "pa0" (for mod-port), with an Ethernet property
                body = struct.pack("!IH2x6s2x16sII", 1, 72, bytes.fromhex("ee064097fa1e"),
                                   b"pa0", 0, 4)
                body += struct.pack("!HH4xIIIIII", 0, 32, 0, 0, 0, 0, 0, 0)
            conn.sendall(struct.pack("!BBHIHH4x", ver, 19, 16 + len(body), xid, mp_type, 0) + body)
    conn.close()

def main():
    outfile = sys.argv[1]
    cmd = sys.argv[3:]
    d = tempfile.mkdtemp(prefix="ofcap")
    path = os.path.join(d, "br.mgmt")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    out = []
    t = threading.Thread(target=accept_loop, args=(srv, out), daemon=True)
    t.start()
    rc = subprocess.call([c.replace("{sock}", path) for c in cmd])
    srv.close()
    os.unlink(path)
    os.rmdir(d)
    with open(outfile, "w") as f:
        for m in out:
            f.write(m.hex() + "\n")
    print(f"{len(out)} messages, ovs-ofctl rc={rc}", file=sys.stderr)
    sys.exit(rc)

main()
