#!/usr/bin/env bash
# stratus library against cumulus-library 6.3.7 at scale: the core study built on the ETL
# output of `synth multiply --copies N` of the Synthea sample (default 1000 copies, 100,000
# patients) plus bench/more_resources.py's resource types, one run each.
#
# Both tools read the same de-identified rows from a columnar store made beforehand:
# stratus the ETL's Delta Lake output, cumulus-library (DuckDB) native tables loaded once
# from the ETL's ndjson output by bench/cl_preload.py with its own schema detection (its
# --load-ndjson-dir path hangs at this size; below). Row-by-row agreement is checked by bench/library.sh at 100 and 1,000
# patients, where both outputs fit and the times can be rewritten to UTC for DuckDB.
#
# Prints wall seconds and peak RSS of each build. The inputs are kept under
# $BENCH_WORK/library-large-xN for reruns (about 45 GB at 1000 copies); delete it after.
#
# Usage: bench/library_large.sh [copies (default 1000)] [both|stratus|peer|prep (default both)]
# `prep` only makes the inputs (both lakes), so that the timed runs can each have the
# machine to themselves. Once the peer's DuckDB file is made its ndjson lake is no longer
# read and may be deleted for disk (the peer's count cubes spill tens of GB).
# Peer setup: see bench/library.sh.
source "$(dirname "$0")/common.sh"
COPIES="${1:-1000}"
WHICH="${2:-both}"
CLIB="$ROOT/.peers/cumulus-library/venv/bin/cumulus-library"
build_release
SALT='{"version": 1, "codebook_id": "bench-book", "id_salt": "6dee9a5b3c2f1d0e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"}'
BIG="$WORK/etl-synthea-x$COPIES"
W="$WORK/library-large-x$COPIES"
if [ ! -d "$BIG" ]; then
    "$STRATUS" -q synth multiply --from "$SYNTHEA" --copies "$COPIES" --out "$BIG"
fi
etl() {
    mkdir -p "$W/phi"
    echo "$SALT" > "$W/phi/codebook.json"
    "$STRATUS" -q etl "$W/in" "$1.tmp" "$W/phi" --export-group bench \
        --export-timestamp 2024-01-01T00:00:00Z --allow-missing-resources "${@:2}" > /dev/null
    mv "$1.tmp" "$1"
}
if [ ! -d "$W/in" ]; then
    mkdir -p "$W/in.tmp"
    for f in "$BIG"/*; do ln -s "$(realpath "$f")" "$W/in.tmp/"; done
    python3 "$ROOT/bench/more_resources.py" "$BIG" "$W/in.tmp"
    mv "$W/in.tmp" "$W/in"
fi
[ -d "$W/delta" ] || etl "$W/delta"
# The ndjson output loaded once into DuckDB tables for cumulus-library (bench/cl_preload.py).
preload() {
    if [ ! -f "$W/cl/x.db" ]; then
        [ -d "$W/lake" ] || etl "$W/lake" --output-format ndjson
        rm -rf "$W/cl.tmp"
        "$(dirname "$CLIB")/python" "$ROOT/bench/cl_preload.py" "$W/lake" "$W/cl.tmp/x.db" \
            "$W/cl.tmp/parquet" > /dev/null
        rm -rf "$W/cl.tmp/parquet" "$W/cl"
        mv "$W/cl.tmp" "$W/cl"
    fi
}
if [ "$WHICH" = prep ]; then
    if [ -x "$CLIB" ]; then
        preload
    else
        [ -d "$W/lake" ] || etl "$W/lake" --output-format ndjson
    fi
    exit 0
fi

echo "machine: $(machine)"
echo "command: bench/library_large.sh $COPIES $WHICH"
printf '%-34s %9s %10s\n' build wall_s peak_MiB
timed() {
    local label=$1
    shift
    /usr/bin/time -f '%e %M' -o "$W/.time" "$@" > "$W/last.out" 2> "$W/last.err" \
        || { echo "failed: $label" >&2; tail -5 "$W/last.err" >&2; return 1; }
    read -r wall rss < "$W/.time"
    printf '%-34s %9.1f %10d\n' "$label" "$wall" "$((rss / 1024))"
}
if [ "$WHICH" != peer ]; then
    timed "stratus library (Delta Lake)" "$STRATUS" -q library build --target core --lake "$W/delta"
fi
if [ "$WHICH" != stratus ]; then
    [ -x "$CLIB" ] || { echo "cumulus-library not found at $CLIB (see bench/library.sh)" >&2; exit 1; }
    preload
    # Native DuckDB tables, not --load-ndjson-dir: over the JSON files, cumulus-library
    # 6.3.7 hung for good at 100,000 patients on 2 cores, every time (right after its code
    # detection with its default of 20 queries at once; 36 minutes in with one at a time,
    # inside pyarrow's JSON dataset scan under DuckDB). See bench/cl_preload.py.
    timed "cumulus-library (DuckDB tables)" bash -c "cd '$W/cl' && '$CLIB' build --db-type duckdb \
        --database x.db --target core"
fi
