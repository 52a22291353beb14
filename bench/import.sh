#!/usr/bin/env bash
# Ping and pull against the plain export it wraps, in the same run. The same system-level
# export of the same `stratus serve` (SMART auth on) is fetched three ways:
#   direct  stratus bulk --global (the bulk client alone: the floor for any pull)
#   import  stratus import kickoff → stratus import server pulls from serve (SMART both
#           ways), then moves the files into its store
#   proxy   the same import, but the provider is `stratus serve --open` behind
#           `stratus proxy`, so every poll and download crosses the proxy
# Each is timed from start to the end of the command (kickoff waits for the import to
# complete), best of 2, interleaved; the consumer's and the proxy's peak RSS (VmHWM) are
# read at the end. The figures are ratios to `direct`, measured in the same run.
# Usage: bench/import.sh [synthea multiple (default 100, i.e. 10,000 patients)]
source "$(dirname "$0")/common.sh"
COPIES="${1:-100}"
RUNS=2

build_release
data="$WORK/etl-synthea-x$COPIES"
[ -d "$data" ] || "$STRATUS" -q synth multiply --from "$SYNTHEA" --copies "$COPIES" --out "$data"
run="$WORK/import-bench"
rm -rf "$run"
mkdir -p "$run"
# start runs inside $( ), a subshell, so the servers are found by their pid files.
cleanup() {
    for f in "$run"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    rm -rf "$run"
}
trap cleanup EXIT

# start NAME PREFIX ARGS...: runs `stratus ARGS` in the background and prints what
# follows PREFIX on its first stdout line that has it.
start() {
    local name=$1 prefix=$2
    shift 2
    "$STRATUS" "$@" >"$run/$name.out" 2>"$run/$name.log" &
    echo $! >"$run/$name.pid"
    for _ in $(seq 4800); do
        if grep -q "^$prefix" "$run/$name.out"; then
            grep -m1 "^$prefix" "$run/$name.out" | sed "s|^$prefix||"
            return
        fi
        sleep 0.25
    done
    echo "$name did not start: $(cat "$run/$name.log")" >&2
    exit 1
}
register() { # URL JSON → client_id
    curl -sf "$1" -H 'Content-Type: application/json' -d "$2" | python3 -c 'import sys,json; print(json.load(sys.stdin)["client_id"])'
}
hwm_mib() { awk '/VmHWM/{printf "%d", $2/1024}' "/proc/$(cat "$run/$1.pid")/status"; }

serve_base=$(start serve "FHIR base URL: " serve --data "$data" --port 0 --work-dir "$run/serve-work")
open_base=$(start open "FHIR base URL: " serve --data "$data" --open --port 0 --work-dir "$run/open-work")
proxy_base=$(start proxy "stratus proxy: " proxy --upstream "$open_base" --port 0 | sed 's/ -> .*//')
consumer=$(start consumer "stratus import server: consumer at " import server --store "$run/store" --port 0)
serve_origin=${serve_base%/fhir}
proxy_origin=${proxy_base%/fhir}

"$STRATUS" -q keys generate --out "$run/provider.jwks"
"$STRATUS" -q keys public "$run/provider.jwks" >"$run/provider-public.jwks"
consumer_jwks=$(curl -sf "$consumer/jwks")
bench_id=$(register "$serve_origin/auth/register" "{\"jwks\": $(cat "$run/provider-public.jwks")}")
at_serve=$(register "$serve_origin/auth/register" "{\"jwks\": $consumer_jwks}")
at_proxy=$(register "$proxy_origin/auth/register" "{\"jwks\": $consumer_jwks}")
id_serve=$("$STRATUS" import register --consumer "$consumer" --jwks "$run/provider.jwks" \
    --consumer-client-id "$at_serve" --provider-base "$serve_base" 2>/dev/null)
id_proxy=$("$STRATUS" import register --consumer "$consumer" --jwks "$run/provider.jwks" \
    --consumer-client-id "$at_proxy" --provider-base "$proxy_base" 2>/dev/null)

direct() {
    rm -rf "$run/direct"
    "$STRATUS" -q bulk --fhir-url "$serve_base" --global --out "$run/direct" \
        --smart-client-id "$bench_id" --smart-key "$run/provider.jwks"
}
import_from() { # BASE CLIENT_ID
    "$STRATUS" -q import kickoff --consumer "$consumer" --export-url "$1/\$export" \
        --smart-client-id "$2" --smart-key "$run/provider.jwks" >"$run/kickoff.out"
    rm -rf "$run/store/$(head -1 "$run/kickoff.out" | sed 's|.*/job/||')"
}
import_direct() { import_from "$serve_base" "$id_serve"; }
import_proxy() { import_from "$proxy_base" "$id_proxy"; }

best_direct=999999 best_import=999999 best_proxy=999999
for _ in $(seq "$RUNS"); do
    t=$(seconds direct); best_direct=$(echo "if ($t < $best_direct) $t else $best_direct" | bc -l)
    t=$(seconds import_direct); best_import=$(echo "if ($t < $best_import) $t else $best_import" | bc -l)
    t=$(seconds import_proxy); best_proxy=$(echo "if ($t < $best_proxy) $t else $best_proxy" | bc -l)
done
resources=$(python3 -c "import json,sys; print(sum(o.get('count',0) for o in json.load(open(sys.argv[1]))['output']))" "$run/direct/manifest.json")

echo "machine: $(machine)"
echo "data: synthea x$COPIES, $resources resources"
printf '%-8s %9s %12s %8s\n' way seconds resources/s ratio
for w in direct import proxy; do
    v="best_$w"; s=${!v}
    printf '%-8s %9.2f %12.0f %8.2f\n' "$w" "$s" "$(echo "$resources / $s" | bc -l)" "$(echo "$s / $best_direct" | bc -l)"
done
echo "peak RSS: consumer $(hwm_mib consumer) MiB, proxy $(hwm_mib proxy) MiB"
