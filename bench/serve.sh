#!/usr/bin/env bash
# stratus serve: download throughput of a ~1 GB system export, and requests/s of paged
# search. Anchors measured in the same run with the same curl:
#   - one static file of the same size, from file:// and from a minimal static HTTP/1.1
#     server (bench/static_server.py);
#   - the same number of requests for a static file of one search page's size.
# Usage: bench/serve.sh [patients (default 7000, about 1 GB of NDJSON)]
source "$(dirname "$0")/common.sh"
PATIENTS="${1:-7000}"
build_release

data="$WORK/serve-data-$PATIENTS"
[ -d "$data" ] || "$STRATUS" -q synth population --patients "$PATIENTS" --seed 7 --out "$data"
work="$WORK/serve-work"
rm -rf "$work" "$WORK/static"
mkdir -p "$WORK/static"
out="$WORK/serve.out"
: > "$out"
start=$(date +%s.%N)
"$STRATUS" serve --open --data "$data" --port 0 \
    --work-dir "$work" --resources-per-file 1000000 >"$out" 2>"$WORK/serve.log" &
pid=$!
static_pid=
cleanup() {
    kill "$pid" 2>/dev/null || true
    [ -n "$static_pid" ] && kill "$static_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1200); do grep -q "FHIR base URL" "$out" && break; sleep 0.25; done
t_load=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf '%.2f')
base=$(awk '/FHIR base URL/{print $4}' "$out")

# Kick-off and poll: the time to build the export.
start=$(date +%s.%N)
loc=$(curl -s -D - -o /dev/null -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
    "$base/\$export" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-location"{print $2}')
until [ "$(curl -s -o "$WORK/manifest.json" -w '%{http_code}' "$loc")" = 200 ]; do sleep 0.2; done
t_export=$(echo "$(date +%s.%N) - $start" | bc -l | xargs printf '%.2f')
python3 -c "import json;[print(o['url']) for o in json.load(open('$WORK/manifest.json'))['output']]" >"$WORK/urls.txt"
files=$(wc -l <"$WORK/urls.txt")
resources=$(python3 -c "import json;print(sum(o['count'] for o in json.load(open('$WORK/manifest.json'))['output']))")

# The anchor file: the export's bytes, decompressed, as one static file.
while read -r u; do curl -s "$u"; done <"$WORK/urls.txt" >"$WORK/static/export.ndjson"
plain=$(stat -c %s "$WORK/static/export.ndjson")
gz=$(du -cb "$work"/jobs/*/*.gz | tail -1 | cut -f1)

download_all() { while read -r u; do curl -s -o /dev/null "$@" "$u"; done <"$WORK/urls.txt"; }
t_gzip=$(best_of 3 download_all -H 'Accept-Encoding: gzip')
t_compressed=$(best_of 3 download_all --compressed)
t_identity=$(best_of 3 download_all)

port=$((20000 + RANDOM % 20000))
python3 "$ROOT/bench/static_server.py" "$port" "$WORK/static" &
static_pid=$!
sleep 1
t_static=$(best_of 3 curl -s -o /dev/null "http://127.0.0.1:$port/export.ndjson")
t_file=$(best_of 3 curl -s -o /dev/null "file://$WORK/static/export.ndjson")

# Paged search: every page of Observation?patient=X&_count=50 for 200 patients.
python3 - "$data" >"$WORK/patients.txt" <<'PY'
import glob, gzip, itertools, json, sys
with gzip.open(sorted(glob.glob(sys.argv[1] + "/Patient*.ndjson.gz"))[0], "rt") as f:
    for line in itertools.islice(f, 200):
        print(json.loads(line)["id"])
PY
python3 - "$base" "$WORK/patients.txt" "$WORK/search.cfg" "$WORK/static/page.json" <<'PY'
import json, sys, urllib.request
base, ids, cfg, page = sys.argv[1:5]
urls, sizes = [], []
for pid in open(ids).read().split():
    url = f"{base}/Observation?patient={pid}&_count=50"
    while url:
        body = urllib.request.urlopen(url).read()
        urls.append(url); sizes.append(len(body))
        b = json.loads(body)
        url = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
with open(cfg, "w") as f:
    for u in urls:
        f.write(f'url = "{u}"\noutput = "/dev/null"\n')
avg = sum(sizes) // len(sizes)
open(page, "w").write("x" * avg)
print(len(urls), avg)
PY
read -r requests page_bytes < <(python3 -c "
import os
cfg=open('$WORK/search.cfg').read().count('url =')
print(cfg, os.path.getsize('$WORK/static/page.json'))")
sed "s#url = \".*\"#url = \"http://127.0.0.1:$port/page.json\"#" "$WORK/search.cfg" >"$WORK/static.cfg"
t_search=$(best_of 3 curl -s -K "$WORK/search.cfg")
t_search_static=$(best_of 3 curl -s -K "$WORK/static.cfg")
t_search_par=$(best_of 3 curl -s --no-progress-meter --parallel --parallel-max 4 -K "$WORK/search.cfg")
t_static_par=$(best_of 3 curl -s --no-progress-meter --parallel --parallel-max 4 -K "$WORK/static.cfg")

rss=$(( $(awk '/VmHWM/{print $2}' "/proc/$pid/status") / 1024 ))
kill "$pid"; wait "$pid" 2>/dev/null || true
mb() { echo "$1 / $2 / 1000000" | bc -l | xargs printf '%.0f'; }
rps() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }
echo "machine: $(machine)"
echo "data: synth population --patients $PATIENTS: $(head -1 "$out")"
echo "  load + index: ${t_load}s; server peak RSS ${rss} MiB"
echo "export: $resources resources in $files files, $plain bytes NDJSON ($gz gzipped), built in ${t_export}s"
echo "download, sequential curl, MB/s of NDJSON delivered (best of 3):"
echo "  stratus, gzip as stored (curl keeps it compressed): ${t_gzip}s = $(mb "$plain" "$t_gzip") MB/s"
echo "  stratus, gzip, curl --compressed (client inflates):  ${t_compressed}s = $(mb "$plain" "$t_compressed") MB/s"
echo "  stratus, identity (server inflates):                ${t_identity}s = $(mb "$plain" "$t_identity") MB/s"
echo "  anchor: static file, same size, static_server.py:   ${t_static}s = $(mb "$plain" "$t_static") MB/s"
echo "  anchor: static file, same size, curl file://:        ${t_file}s = $(mb "$plain" "$t_file") MB/s"
echo "paged search: $requests requests (Observation?patient=X&_count=50 and next pages, ~$page_bytes bytes each)"
echo "  stratus, 1 connection:  ${t_search}s = $(rps "$requests" "$t_search") req/s; static page anchor ${t_search_static}s = $(rps "$requests" "$t_search_static") req/s"
echo "  stratus, 4 in parallel: ${t_search_par}s = $(rps "$requests" "$t_search_par") req/s; static page anchor ${t_static_par}s = $(rps "$requests" "$t_static_par") req/s"
