#!/bin/sh
# Seeds the fuzz corpus with the flow corpus lines (one file per flow, group and meter line).
# Usage: flowtable/fuzz/seed.sh; then: cd flowtable/fuzz && cargo +nightly fuzz run parse_flow
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/corpus/parse_flow"
mkdir -p "$OUT"
n=0
for f in flows.txt groups.txt meters.txt flows-stats.expected errors.txt random.txt; do
    while IFS= read -r line; do
        n=$((n + 1))
        printf '%s' "$line" > "$OUT/seed-$n"
    done < "$HERE/../tests/corpus/$f"
done
echo "$n seeds in $OUT"
