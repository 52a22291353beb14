#!/usr/bin/env bash
# stratus export (crawl mode) against smart-fetch 1.0.3, end to end in the same run: both
# crawl the same MRN list from the same `stratus serve` (--open, one server thread),
# with 5 requests in flight (smart-fetch's fixed pool; `--max-in-flight 5` for stratus)
# and no hydration, into a fresh managed folder each time. Measured per tool: wall time,
# peak RSS, requests the server saw (its request log), resources written; then the two
# outputs are compared id by id per type. Best of 2, runs interleaved.
# Usage: bench/crawl.sh [patients (default 1000)]
#
# Peer setup (once; .peers/ is git-ignored):
#   python3 -m venv .peers/smart-fetch/venv
#   .peers/smart-fetch/venv/bin/pip install smart-fetch==1.0.3
source "$(dirname "$0")/common.sh"
PATIENTS="${1:-1000}"
RUNS=2
SF="$ROOT/.peers/smart-fetch/venv/bin/smart-fetch"
PORT=9493
U="http://127.0.0.1:$PORT/fhir"
MRN_SYSTEM="http://hospital.example.org/fhir/mrn"

peer=1
if [ ! -x "$SF" ]; then
    peer=0
    echo "smart-fetch not found at $SF: measuring stratus alone." >&2
    sed -n '/^# Peer setup/,/^# *\.peers.*pip install/p' "$0" | sed 's/^#/ /' >&2
fi
build_release

DATA="$WORK/crawl-data-$PATIENTS"
if [ ! -f "$DATA/Patient.ndjson" ]; then
    rm -rf "$DATA"
    "$STRATUS" -q synth population --patients "$PATIENTS" --seed 7 --no-compression --out "$DATA"
fi
python3 - "$DATA/Patient.ndjson" "$MRN_SYSTEM" > "$WORK/crawl-mrns.txt" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    for i in json.loads(line).get("identifier", []):
        if i.get("system") == sys.argv[2] and i["value"] not in seen:
            seen.add(i["value"]); print(i["value"])
PY
echo "cohort: $(wc -l < "$WORK/crawl-mrns.txt") MRNs of $PATIENTS patients" >&2

LOG="$WORK/crawl-serve.log"
"$STRATUS" --threads 1 serve --data "$DATA" --port "$PORT" --open --work-dir "$WORK/crawl-serve" 2> "$LOG" > /dev/null &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$U/metadata" > /dev/null && break; sleep 0.2; done

# run NAME OUT COMMAND...: prints "wall_s rss_mib requests" for one run.
run() {
    local name=$1 out=$2; shift 2
    rm -rf "$out"
    local before after
    before=$(wc -l < "$LOG")
    /usr/bin/time -f '%e %M' -o "$WORK/.time" "$@" > "$WORK/crawl-$name.out" 2> "$WORK/crawl-$name.err" \
        || { echo "$name failed; see $WORK/crawl-$name.err" >&2; tail -5 "$WORK/crawl-$name.err" >&2; exit 1; }
    after=$(wc -l < "$LOG")
    read -r wall rss < <(tail -1 "$WORK/.time")
    echo "$wall $(( rss / 1024 )) $(( after - before ))"
}

best() { sort -n | head -1; }
ST_OUT="$WORK/crawl-stratus"
SF_OUT="$WORK/crawl-smart-fetch"
: > "$WORK/crawl-st.txt"; : > "$WORK/crawl-sf.txt"
for _ in $(seq "$RUNS"); do
    run stratus "$ST_OUT" "$STRATUS" -q export --fhir-url "$U" --export-mode crawl \
        --id-system "$MRN_SYSTEM" --id-file "$WORK/crawl-mrns.txt" --nickname bench \
        --hydration-tasks none --max-in-flight 5 "$ST_OUT" >> "$WORK/crawl-st.txt"
    if [ $peer = 1 ]; then
        run smart-fetch "$SF_OUT" "$SF" export --fhir-url "$U" --export-mode crawl \
            --id-system "$MRN_SYSTEM" --id-file "$WORK/crawl-mrns.txt" --nickname bench \
            --hydration-tasks none "$SF_OUT" >> "$WORK/crawl-sf.txt"
    fi
done

# Resources per type, and whether both tools got the same ids.
python3 - "$ST_OUT/001.bench" "$SF_OUT/001.bench" "$peer" <<'PY'
import glob, gzip, json, os, sys
def ids(d):
    out = {}
    for f in glob.glob(os.path.join(d, "*.ndjson.gz")):
        for line in gzip.open(f, "rt"):
            r = json.loads(line)
            out.setdefault(r["resourceType"], []).append(r["id"])
    return out
a = ids(sys.argv[1])
total = sum(len(v) for v in a.values())
dups = sum(len(v) - len(set(v)) for v in a.values())
print(f"stratus: {total} resources in {len(a)} types, {dups} duplicates")
if sys.argv[3] == "1":
    b = ids(sys.argv[2])
    same = all(set(a.get(t, [])) == set(b.get(t, [])) for t in set(a) | set(b))
    print(f"smart-fetch: {sum(len(v) for v in b.values())} resources; same ids per type: {'yes' if same else 'NO'}")
    for t in sorted(set(a) | set(b)):
        if set(a.get(t, [])) != set(b.get(t, [])):
            print(f"  {t}: stratus {len(a.get(t, []))}, smart-fetch {len(b.get(t, []))}")
PY

read -r st_wall st_rss st_req < <(sort -n "$WORK/crawl-st.txt" | head -1)
echo
echo "machine: $(machine)"
echo "command: bench/crawl.sh $PATIENTS"
printf '%-12s %8s %9s %9s %9s\n' tool wall_s req/s peak_MiB requests
printf '%-12s %8.2f %9.0f %9d %9d\n' stratus "$st_wall" "$(echo "$st_req / $st_wall" | bc -l)" "$st_rss" "$st_req"
if [ $peer = 1 ]; then
    read -r sf_wall sf_rss sf_req < <(sort -n "$WORK/crawl-sf.txt" | head -1)
    printf '%-12s %8.2f %9.0f %9d %9d\n' smart-fetch "$sf_wall" "$(echo "$sf_req / $sf_wall" | bc -l)" "$sf_rss" "$sf_req"
    printf 'stratus is %.1fx faster (wall), %.1fx less memory\n' \
        "$(echo "$sf_wall / $st_wall" | bc -l)" "$(echo "$sf_rss / $st_rss" | bc -l)"
fi
