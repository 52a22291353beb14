#!/usr/bin/env python3
"""Compares two study exports table by table, row by row: stratus library's and
cumulus-library's (`export/<study>/<table>.<kind>.csv`). Column names compare without case
(Athena lower-cases them, DuckDB keeps the workflow's spelling); rows compare as multisets
of text cells, numbers normalised (1.0 == 1). Prints one line per table and, for tables
that differ, a few rows only one side has. `--ignore-column NAME` compares only the cells
that are not broken down by NAME (rows where NAME is empty, the cube's "all values"), for
a column the two engines compute differently on purpose.

Usage: library_compare.py STRATUS_DIR CUMULUS_DIR [--ignore-column NAME ...]
Exit code 1 when some table differs."""

import csv
import sys
from collections import Counter
from pathlib import Path


def norm(cell: str) -> str:
    try:
        f = float(cell)
        return str(int(f)) if f.is_integer() else repr(f)
    except ValueError:
        return cell


def read(path: Path, ignore: set[str]):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], Counter()
    header = [h.lower() for h in rows[0]]
    keep = [i for i, h in enumerate(header) if h not in ignore]
    skip = [i for i, h in enumerate(header) if h in ignore]
    body = Counter(
        tuple(norm(r[i]) for i in keep) for r in rows[1:] if all(r[i] == "" for i in skip)
    )
    return [header[i] for i in keep], body


def main() -> int:
    args = sys.argv[1:]
    ignore = set()
    while "--ignore-column" in args:
        i = args.index("--ignore-column")
        ignore.add(args[i + 1].lower())
        del args[i : i + 2]
    ours, theirs = Path(args[0]), Path(args[1])
    names = sorted({p.name for p in ours.glob("*.csv")} | {p.name for p in theirs.glob("*.csv")})
    differ = 0
    for name in names:
        a, b = ours / name, theirs / name
        if not a.exists() or not b.exists():
            side = "stratus" if a.exists() else "cumulus-library"
            print(f"{name}: only {side} has it")
            differ += 1
            continue
        ha, ra = read(a, ignore)
        hb, rb = read(b, ignore)
        if ha != hb:
            print(f"{name}: columns differ: {ha} vs {hb}")
            differ += 1
            continue
        if ra == rb:
            print(f"{name}: same {sum(ra.values())} rows")
            continue
        differ += 1
        only_a, only_b = ra - rb, rb - ra
        print(
            f"{name}: DIFFERENT ({sum(ra.values())} vs {sum(rb.values())} rows; "
            f"{sum(only_a.values())} only in stratus, {sum(only_b.values())} only in cumulus-library)"
        )
        print("    columns:", ha)
        for r in list(only_a)[:3]:
            print("    stratus only:", r)
        for r in list(only_b)[:3]:
            print("    cumulus-library only:", r)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
