#!/usr/bin/env bash
# Synth throughput and peak RSS: `synth population` at N patients (default 100,000), and
# `synth multiply` of the Synthea folder. Anchor: gzip -1 of the same bytes, single core,
# in the same run (the compression the generator itself has to do).
# Usage: bench/synth.sh [patients (default 100000)] [copies (default 100)]
source "$(dirname "$0")/common.sh"
PATIENTS="${1:-100000}"
COPIES="${2:-100}"
build_release

out="$WORK/synth-$PATIENTS"
rm -rf "$out"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$WORK/.rss" "$STRATUS" -q synth population --patients "$PATIENTS" --seed 7 --out "$out"
t_pop=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf '%.2f')
rss_pop=$(( $(tail -1 "$WORK/.rss") / 1024 ))
json=$("$STRATUS" --threads 2 ndjson stats --json "$out")
resources=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_resources"])')
raw=$(echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(t["bytes"] for t in d["types"].values()))')
# Anchor: gzip -1 over the same uncompressed bytes on one core.
t_gzip=$(seconds bash -c "zcat '$out'/*.ndjson.gz | gzip -1 -c > /dev/null")

mout="$WORK/multiply-$COPIES"
rm -rf "$mout"
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$WORK/.rss" "$STRATUS" -q synth multiply --from "$SYNTHEA" --copies "$COPIES" --out "$mout"
t_mul=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf '%.2f')
rss_mul=$(( $(tail -1 "$WORK/.rss") / 1024 ))
mres=$(( 38970 * COPIES ))

echo "machine: $(machine)"
echo "synth population --patients $PATIENTS: $resources resources, $raw bytes uncompressed, $(du -sb "$out" | cut -f1) bytes on disk"
echo "  wall ${t_pop}s, $(echo "$resources / $t_pop" | bc | xargs printf '%.0f') resources/s, $(echo "$PATIENTS / $t_pop" | bc | xargs printf '%.0f') patients/s, peak RSS ${rss_pop} MiB"
echo "  anchor: gzip -1 of the same bytes on one core: ${t_gzip}s (ratio generator/gzip-1 = $(echo "$t_pop / $t_gzip" | bc -l | xargs printf '%.2f'))"
echo "synth multiply --copies $COPIES (Synthea 100 patients): $mres resources in ${t_mul}s, $(echo "$mres / $t_mul" | bc | xargs printf '%.0f') resources/s, peak RSS ${rss_mul} MiB"
rm -rf "$mout"
