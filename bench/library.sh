#!/usr/bin/env bash
# stratus library against cumulus-library 6.3.7 (DuckDB, --load-ndjson-dir): the core
# study built on the same de-identified tables, in the same run, then every exported count
# table compared row by row (bench/library_compare.py).
#
# The ETL's ndjson output of the Synthea sample (copies=1) or of `stratus synth multiply`
# copies, plus the resource types Synthea lacks (bench/more_resources.py: service requests,
# specimens, dispenses, dosage instructions, episodes of care, locations, roles), is the
# input of both tools. For the comparison its dateTimes are first rewritten
# to UTC: cumulus-library's DuckDB shim converts to UTC before taking a date, where Athena
# (and stratus) keep the local date written, so local offsets would make encounters near
# midnight fall in different days and months. With UTC times, what remains is the age at
# visit (DuckDB counts year boundaries, Athena whole years); that column is left out of the
# comparison and its rows compared without it. Then stratus alone on the Delta Lake output,
# the production format.
#
# Usage: bench/library.sh [copies (default 1)]
# Peer setup (once; .peers/ is git-ignored), as ../shared/reference/cumulus-library.md §7:
#   python3 -m venv .peers/cumulus-library/venv
#   .peers/cumulus-library/venv/bin/pip install cumulus-library==6.3.7
source "$(dirname "$0")/common.sh"
COPIES="${1:-1}"
CLIB="$ROOT/.peers/cumulus-library/venv/bin/cumulus-library"
[ -x "$CLIB" ] || { echo "cumulus-library not found at $CLIB (see the header)" >&2; exit 1; }
build_release
SALT='{"version": 1, "codebook_id": "bench-book", "id_salt": "6dee9a5b3c2f1d0e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"}'
INPUT="$SYNTHEA"
if [ "$COPIES" != 1 ]; then
    INPUT="$WORK/etl-synthea-x$COPIES"
    [ -d "$INPUT" ] || "$STRATUS" -q synth multiply --from "$SYNTHEA" --copies "$COPIES" --out "$INPUT"
fi
W="$WORK/library-x$COPIES"
rm -rf "$W"; mkdir -p "$W/phi" "$W/cl" "$W/in"
echo "$SALT" > "$W/phi/codebook.json"
for f in "$INPUT"/*; do ln -s "$(realpath "$f")" "$W/in/"; done
python3 "$ROOT/bench/more_resources.py" "$INPUT" "$W/in"
etl() {
    "$STRATUS" -q etl "$W/in" "$1" "$W/phi" --export-group bench \
        --export-timestamp 2024-01-01T00:00:00Z --allow-missing-resources "${@:2}" > /dev/null
}
etl "$W/lake" --output-format ndjson
python3 - "$W/lake" <<'PY'
import re, sys, datetime, pathlib
pat = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)([+-]\d\d:\d\d)"')
def utc(m):
    t = datetime.datetime.fromisoformat(m.group(1) + m.group(2)).astimezone(datetime.timezone.utc)
    return '"' + t.strftime("%Y-%m-%dT%H:%M:%S") + 'Z"'
for f in pathlib.Path(sys.argv[1]).glob("*/*.ndjson"):
    f.write_text(pat.sub(utc, f.read_text()))
PY

echo "machine: $(machine)"
echo "command: bench/library.sh $COPIES"
resources=$(cat "$W"/lake/*/*.ndjson | grep -c . || true)
echo "input: $resources rows in the ETL's ndjson output"
# One run each, interleaved; the DuckDB file starts empty each time.
st=$( { /usr/bin/time -f '%e %M' "$STRATUS" -q library build --target core --lake "$W/lake" > /dev/null; } 2>&1 | tail -1)
cl=$( { /usr/bin/time -f '%e %M' bash -c "cd '$W/cl' && rm -f x.db && '$CLIB' build --db-type duckdb --database x.db --load-ndjson-dir ../lake --target core" > /dev/null; } 2>&1 | tail -1)
read -r sw sr <<< "$st"; read -r cw cr <<< "$cl"
printf '%-18s %9s %10s\n' tool wall_s peak_MiB
printf '%-18s %9.2f %10d\n' "stratus library" "$sw" "$((sr / 1024))"
printf '%-18s %9.2f %10d\n' "cumulus-library" "$cw" "$((cr / 1024))"
printf 'stratus is %.1fx faster\n' "$(echo "$cw / $sw" | bc -l)"

"$STRATUS" -q library export --target core --lake "$W/lake" --out "$W/st-export" > /dev/null
(cd "$W/cl" && "$CLIB" export --db-type duckdb --database x.db --target core ./export > /dev/null)
python3 "$ROOT/bench/library_compare.py" "$W/st-export/core" "$W/cl/export/core" \
    --ignore-column age_at_visit | sed 's/^/  /' || true
echo "== discovery__code_sources (which codes each coded field holds)"
"$STRATUS" -q library build --target discovery --lake "$W/lake" > /dev/null
"$STRATUS" -q library export --target discovery --lake "$W/lake" --out "$W/st-export" > /dev/null
(cd "$W/cl" && "$CLIB" build --db-type duckdb --database x.db --load-ndjson-dir ../lake \
    --target discovery > /dev/null && "$CLIB" export --db-type duckdb --database x.db \
    --target discovery ./export > /dev/null)
python3 "$ROOT/bench/library_compare.py" "$W/st-export/discovery" "$W/cl/export/discovery" \
    | sed 's/^/  /' || true
echo "== every line-level core table (abatementDateTime is filled in on purpose; a"
echo "   cumulus-library code table that is empty has a generic schema with a row column)"
"$ROOT/.peers/cumulus-library/venv/bin/python" "$ROOT/bench/library_tables.py" "$W/lake" \
    "$W/cl/x.db" --skip-column abatementdatetime | sed 's/^/  /' || true

echo
echo "== stratus alone on the Delta Lake output"
etl "$W/delta"
d=$( { /usr/bin/time -f '%e %M' "$STRATUS" -q library build --target core --target discovery --lake "$W/delta" > /dev/null; } 2>&1 | tail -1)
read -r dw dr <<< "$d"
printf 'core + discovery on Delta: %.2f s, %d MiB\n' "$dw" "$((dr / 1024))"
rm -rf "$W"
