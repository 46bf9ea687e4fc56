#!/bin/sh
# Seeds corpus/decode with every message in ../tests/fixtures/*.hex (what ovs-ofctl sent, and
# our PORT_STATUS messages as ovs-ofctl ofp-print reads them).
set -e
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/corpus/decode"
cat "$here"/../tests/fixtures/*.hex | python3 -c '
import sys, hashlib
for line in sys.stdin:
    b = bytes.fromhex(line.strip())
    open(sys.argv[1] + "/" + hashlib.sha1(b).hexdigest(), "wb").write(b)
' "$here/corpus/decode"
