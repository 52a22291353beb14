#!/usr/bin/env bash
# stratus etl at scale: `synth multiply --copies N` of the Synthea sample (default 1000 copies,
# 100,000 patients, 28.6 million resources, 6.3 GB gzipped), one run each, in this order:
#   1. stratus, Delta Lake output (the default);
#   2. stratus, ndjson output;
#   3. cumulus-etl 4.3.6, ndjson output (skipped with `no` as the second argument, or when
#      .peers/cumulus-etl is not set up; see bench/etl.sh for the setup). At its
#      1,000-patient rate it takes over an hour at 100,000 patients.
# For each: wall time, resources/s and peak RSS (/usr/bin/time).
#
# The ndjson outputs are about 23 GB each at 100,000 patients, more than this machine's disk
# holds twice, so they are not kept: a watcher deletes each output file a few seconds after
# it was last written (neither tool reads its ndjson output back). Row-by-row agreement is
# checked by bench/etl.sh at 1,000 patients, where the outputs fit.
# Usage: bench/etl_large.sh [copies (default 1000)] [peer: yes|no (default yes)]
source "$(dirname "$0")/common.sh"
COPIES="${1:-1000}"
CETL="$ROOT/.peers/cumulus-etl/venv/bin/cumulus-etl"
peer=1
if [ "${2:-yes}" = no ] || [ ! -x "$CETL" ]; then peer=0; fi
build_release
SALT='{"version": 1, "codebook_id": "bench-book", "id_salt": "6dee9a5b3c2f1d0e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"}'
BIG="$WORK/etl-synthea-x$COPIES"
if [ ! -d "$BIG" ]; then
    "$STRATUS" -q synth multiply --from "$SYNTHEA" --copies "$COPIES" --out "$BIG"
fi
ARGS=(--export-group bench --export-timestamp 2024-01-01T00:00:00Z)

fresh() {
    rm -rf "$WORK/large-out" "$WORK/large-phi"
    mkdir -p "$WORK/large-out" "$WORK/large-phi"
    echo "$SALT" > "$WORK/large-phi/codebook.json"
}

# run LABEL DISCARD COMMAND...: one run, with the output's ndjson files deleted as they are
# finished when DISCARD is 1. Prints "LABEL wall_s resources/s peak_MiB".
run() {
    local label=$1 discard=$2 watcher=""
    shift 2
    fresh
    if [ "$discard" = 1 ]; then
        (while :; do
            find "$WORK/large-out" -name '*.ndjson' -mmin +0.1 -delete 2>/dev/null || true
            sleep 2
        done) &
        watcher=$!
    fi
    /usr/bin/time -f '%e %M' -o "$WORK/.time" "$@" > "$WORK/large-last.out" 2> "$WORK/large-last.err" \
        || { [ -n "$watcher" ] && kill "$watcher"; echo "failed: $*" >&2; tail -5 "$WORK/large-last.err" >&2; exit 1; }
    if [ -n "$watcher" ]; then kill "$watcher"; fi
    # The first (stratus) run reports the resources it read; the others divide by it.
    if [ -z "$RESOURCES" ]; then
        RESOURCES=$(grep -o '^[0-9,]* resources de-identified' "$WORK/large-last.out" | tr -d , | cut -d' ' -f1)
    fi
    read -r wall rss < <(tail -1 "$WORK/.time")
    printf '%-24s %9.1f %12.0f %9d\n' "$label" "$wall" "$(echo "$RESOURCES / $wall" | bc -l)" "$((rss / 1024))"
}

echo "machine: $(machine)"
echo "command: bench/etl_large.sh $COPIES"
printf '%-24s %9s %12s %9s\n' run wall_s resources/s peak_MiB
RESOURCES=""
run "stratus (Delta Lake)" 0 "$STRATUS" -q etl "$BIG" "$WORK/large-out" "$WORK/large-phi" "${ARGS[@]}"
run "stratus (ndjson)" 1 "$STRATUS" -q etl "$BIG" "$WORK/large-out" "$WORK/large-phi" --output-format ndjson "${ARGS[@]}"
if [ $peer = 1 ]; then
    run "cumulus-etl (ndjson)" 1 "$CETL" etl "$BIG" "$WORK/large-out" "$WORK/large-phi" --output-format ndjson "${ARGS[@]}"
fi
echo "resources: $RESOURCES"
rm -rf "$WORK/large-out" "$WORK/large-phi"
