#!/usr/bin/env python3
"""Compares the line-level tables of a study, built by stratus library (Parquet, in the
ndjson lake: `<lake>/<table>/<table>.parquet`) and by cumulus-library (a DuckDB file), as
multisets of rows. Columns pair up by lower-case name; a column only one side has is
reported and left out of the row comparison. Every value is compared as DuckDB prints it.
Tables only one side has are listed. Run with a python that has duckdb (cumulus-library's
venv does).

Usage: library_tables.py LAKE DUCKDB_FILE [--prefix core] [--skip-column NAME ...]
Exit code 1 when some table differs."""

import sys
from collections import Counter
from pathlib import Path

import duckdb


def main() -> int:
    args = sys.argv[1:]
    prefix, skip = "core", set()
    while "--prefix" in args:
        i = args.index("--prefix")
        prefix = args[i + 1]
        del args[i : i + 2]
    while "--skip-column" in args:
        i = args.index("--skip-column")
        skip.add(args[i + 1].lower())
        del args[i : i + 2]
    lake, db = Path(args[0]), args[1]
    peer = duckdb.connect(db, read_only=True)
    ours = duckdb.connect()
    theirs = {
        t
        for (t,) in peer.execute(
            "SELECT table_name FROM information_schema.tables WHERE starts_with(table_name, ?)",
            [f"{prefix}__"],
        ).fetchall()
        if "__count_" not in t and "__lib_" not in t
    }
    mine = {p.parent.name for p in lake.glob(f"{prefix}__*/*.parquet")}
    mine = {t for t in mine if "__count_" not in t}
    differ = 0
    for t in sorted(theirs | mine):
        if t not in mine or t not in theirs:
            print(f"{t}: only {'stratus' if t in mine else 'cumulus-library'} has it")
            differ += 1
            continue
        pq = next((lake / t).glob("*.parquet"))
        a = ours.execute(f"SELECT * FROM read_parquet('{pq}')")
        acols = [d[0].lower() for d in a.description]
        arows = a.fetchall()
        b = peer.execute(f'SELECT * FROM "{t}"')
        bcols = [d[0].lower() for d in b.description]
        brows = b.fetchall()
        common = [c for c in bcols if c in acols and c not in skip]
        notes = []
        if set(acols) != set(bcols):
            notes.append(
                f"columns only stratus: {sorted(set(acols) - set(bcols))}, "
                f"only cumulus-library: {sorted(set(bcols) - set(acols))}"
            )

        def bag(cols, rows):
            idx = [cols.index(c) for c in common]
            return Counter(tuple(norm(r[i]) for i in idx) for r in rows)

        ra, rb = bag(acols, arows), bag(bcols, brows)
        if ra == rb and not notes:
            print(f"{t}: same ({len(arows)} rows)")
            continue
        differ += 1
        status = "rows same" if ra == rb else f"rows differ ({len(arows)} vs {len(brows)})"
        print(f"{t}: {status}" + "".join(f"; {n}" for n in notes))
        if ra != rb:
            for row in list((ra - rb).keys())[:3]:
                print("   only stratus:        ", dict(zip(common, row)))
            for row in list((rb - ra).keys())[:3]:
                print("   only cumulus-library:", dict(zip(common, row)))
    return 1 if differ else 0


def norm(v):
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return "" if v is None else str(v)


if __name__ == "__main__":
    sys.exit(main())
