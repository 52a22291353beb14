#!/usr/bin/env bash
# stratus etl against cumulus-etl 4.3.6, ndjson output, same input, same codebook.json, in
# the same run: the Synthea sample (100 patients) and `stratus synth multiply` copies of it
# (default 10 copies, 1,000 patients). For each: wall time, peak RSS, resources/s, and a
# row-by-row comparison of every table (bench/etl_compare.py). Best of 2 for timings.
# Then stratus alone into Delta Lake on the same inputs (cumulus-etl's Delta output needs
# Spark and Maven Central, so it is not run here).
# Usage: bench/etl.sh [copies (default 10)] [peer: yes|no (default yes)]
#
# Peer setup (once; .peers/ is git-ignored), as ../shared/reference/cumulus-etl.md §9 says:
#   python3 -m venv .peers/cumulus-etl/venv
#   python3 -m venv .peers/cumulus-etl/uvenv && .peers/cumulus-etl/uvenv/bin/pip install uv
#   # write the pins of the reference's Appendix C to .peers/cumulus-etl/peer-requirements.txt
#   .peers/cumulus-etl/uvenv/bin/uv pip install --python .peers/cumulus-etl/venv/bin/python \
#       -r .peers/cumulus-etl/peer-requirements.txt
source "$(dirname "$0")/common.sh"
COPIES="${1:-10}"
CETL="$ROOT/.peers/cumulus-etl/venv/bin/cumulus-etl"
peer=1
if [ "${2:-yes}" = no ]; then peer=0; fi
if [ ! -x "$CETL" ]; then
    peer=0
    echo "cumulus-etl not found at $CETL: measuring stratus alone." >&2
fi
build_release

SALT='{"version": 1, "codebook_id": "bench-book", "id_salt": "6dee9a5b3c2f1d0e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"}'
BIG="$WORK/etl-synthea-x$COPIES"
if [ ! -d "$BIG" ]; then
    "$STRATUS" -q synth multiply --from "$SYNTHEA" --copies "$COPIES" --out "$BIG"
fi

# measure NAME COMMAND...: "wall_s rss_mib" of one run into a fresh output and PHI.
measure() {
    /usr/bin/time -f '%e %M' -o "$WORK/.time" "$@" > "$WORK/etl-last.out" 2> "$WORK/etl-last.err" \
        || { echo "failed: $*" >&2; tail -5 "$WORK/etl-last.err" >&2; exit 1; }
    read -r wall rss < <(tail -1 "$WORK/.time")
    echo "$wall $(( rss / 1024 ))"
}

fresh() {
    rm -rf "$WORK/etl-out-$1" "$WORK/etl-phi-$1"
    mkdir -p "$WORK/etl-phi-$1"
    echo "$SALT" > "$WORK/etl-phi-$1/codebook.json"
}

echo "machine: $(machine)"
echo "command: bench/etl.sh $COPIES"
for input in "$SYNTHEA" "$BIG"; do
    name=$(basename "$input")
    resources=0
    best_st=""; best_cu=""
    for _ in 1 2; do
        fresh st
        r=$(measure "$STRATUS" -q etl "$input" "$WORK/etl-out-st" "$WORK/etl-phi-st" --output-format ndjson \
            --export-group bench --export-timestamp 2024-01-01T00:00:00Z)
        best_st=$(printf '%s\n%s\n' "$best_st" "$r" | sed '/^$/d' | sort -n | head -1)
        if [ $peer = 1 ]; then
            fresh cu
            r=$(measure "$CETL" etl "$input" "$WORK/etl-out-cu" "$WORK/etl-phi-cu" --output-format ndjson \
                --export-group bench --export-timestamp 2024-01-01T00:00:00Z)
            best_cu=$(printf '%s\n%s\n' "$best_cu" "$r" | sed '/^$/d' | sort -n | head -1)
        fi
    done
    resources=$(cat "$WORK"/etl-out-st/*/*.ndjson | grep -c . || true)
    read -r sw sr <<< "$best_st"
    echo
    echo "== $name: $resources rows written (tables and completion rows)"
    printf '%-12s %8s %12s %9s\n' tool wall_s rows/s peak_MiB
    printf '%-12s %8.2f %12.0f %9d\n' stratus "$sw" "$(echo "$resources / $sw" | bc -l)" "$sr"
    if [ $peer = 1 ]; then
        read -r cw cr <<< "$best_cu"
        printf '%-12s %8.2f %12.0f %9d\n' cumulus-etl "$cw" "$(echo "$resources / $cw" | bc -l)" "$cr"
        printf 'stratus is %.1fx faster, %.1fx less memory\n' "$(echo "$cw / $sw" | bc -l)" "$(echo "$cr / $sr" | bc -l)"
        python3 "$ROOT/bench/etl_compare.py" "$WORK/etl-out-st" "$WORK/etl-out-cu" | sed 's/^/  /'
    fi
done

echo
echo "== Delta Lake output (stratus alone)"
printf '%-22s %8s %12s %9s\n' input wall_s rows/s peak_MiB
for input in "$SYNTHEA" "$BIG"; do
    fresh st
    r=$(measure "$STRATUS" -q etl "$input" "$WORK/etl-out-st" "$WORK/etl-phi-st" \
        --export-group bench --export-timestamp 2024-01-01T00:00:00Z)
    read -r dw dr <<< "$r"
    fresh nd
    "$STRATUS" -q etl "$input" "$WORK/etl-out-nd" "$WORK/etl-phi-nd" --output-format ndjson \
        --export-group bench --export-timestamp 2024-01-01T00:00:00Z > /dev/null
    rows=$(cat "$WORK"/etl-out-nd/*/*.ndjson | grep -c . || true)
    printf '%-22s %8.2f %12.0f %9d\n' "$(basename "$input")" "$dw" "$(echo "$rows / $dw" | bc -l)" "$dr"
done
