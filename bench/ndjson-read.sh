#!/usr/bin/env bash
# NDJSON read + parse throughput per core, plain and gzip, against cat and zcat of the same
# file in the same run. Input: the Synthea Observations multiplied to >= 1 GiB, one file.
# Usage: bench/ndjson-read.sh [copies (default 92, about 1.05 GB)]
source "$(dirname "$0")/common.sh"
COPIES="${1:-92}"
build_release

big="$WORK/read/Observation.ndjson"
if [ ! -f "$big" ] || [ ! -f "$big.gz" ]; then
    rm -rf "$WORK/read" "$WORK/read-src" "$WORK/read-parts"
    mkdir -p "$WORK/read" "$WORK/read-src"
    ln -s "$SYNTHEA/Observation.ndjson.gz" "$WORK/read-src/Observation.ndjson.gz"
    "$STRATUS" -q synth multiply --from "$WORK/read-src" --copies "$COPIES" \
        --out "$WORK/read-parts" --no-compression
    cat "$WORK/read-parts"/Observation.*.ndjson > "$big"
    gzip -6 -c "$big" > "$big.gz"
    rm -rf "$WORK/read-parts"
fi
bytes=$(stat -c %s "$big")
gzbytes=$(stat -c %s "$big.gz")
mb() { echo "$bytes / 1000000 / $1" | bc -l | xargs printf '%.0f'; }

cat "$big" >/dev/null # warm the page cache
t_cat=$(best_of 3 cat "$big")
t_wc=$(best_of 3 wc -l "$big")
t_plain=$(best_of 3 "$STRATUS" --threads 1 ndjson stats "$big")
t_zcat=$(best_of 3 zcat "$big.gz")
t_gz=$(best_of 3 "$STRATUS" --threads 1 ndjson stats "$big.gz")
rss=$(peak_rss_mib "$STRATUS" --threads 1 ndjson stats "$big")

echo "machine: $(machine)"
echo "input: $big: $bytes bytes plain, $gzbytes bytes gzip -6, $(wc -l < "$big") lines"
printf '| %-40s | %8s | %8s |\n' "reader (one core)" "seconds" "MB/s"
printf '| %-40s | %8s | %8s |\n' "cat (page cache)" "$t_cat" "$(mb "$t_cat")"
printf '| %-40s | %8s | %8s |\n' "wc -l" "$t_wc" "$(mb "$t_wc")"
printf '| %-40s | %8s | %8s |\n' "stratus ndjson stats (plain)" "$t_plain" "$(mb "$t_plain")"
printf '| %-40s | %8s | %8s |\n' "zcat" "$t_zcat" "$(mb "$t_zcat")"
printf '| %-40s | %8s | %8s |\n' "stratus ndjson stats (gzip)" "$t_gz" "$(mb "$t_gz")"
echo "ratios: stratus plain / wc -l = $(echo "$t_wc / $t_plain" | bc -l | xargs printf '%.2f'); stratus gzip / zcat = $(echo "$t_zcat / $t_gz" | bc -l | xargs printf '%.2f')"
echo "peak RSS, plain: ${rss} MiB"
