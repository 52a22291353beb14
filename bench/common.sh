# Shared helpers for the benchmark scripts: build once in release, time commands, read RSS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratus/target}"
SYNTHEA="${STRATUS_SYNTHEA_DIR:-$ROOT/../shared/data/synthea-r4-100}"
WORK="${BENCH_WORK:-/tmp/stratus-bench}"
mkdir -p "$WORK"

build_release() {
    (cd "$ROOT" && cargo build --release -p stratus-cli --locked >&2)
    STRATUS="$CARGO_TARGET_DIR/release/stratus"
}

# seconds COMMAND...: wall seconds (3 decimals) of one run, output discarded.
seconds() {
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l | xargs printf '%.3f'
}

# best_of N COMMAND...: the fastest of N runs (the machine is noisy; the minimum is the
# least disturbed run).
best_of() {
    local n=$1 best=999999 t
    shift
    for _ in $(seq "$n"); do
        t=$(seconds "$@")
        best=$(echo "if ($t < $best) $t else $best" | bc -l)
    done
    printf '%.3f' "$best"
}

# peak_rss_mib COMMAND...: peak resident memory of the command in MiB.
peak_rss_mib() {
    /usr/bin/time -f '%M' -o "$WORK/.rss" "$@" >/dev/null
    echo "$(( $(tail -1 "$WORK/.rss") / 1024 ))"
}

machine() {
    echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
}
