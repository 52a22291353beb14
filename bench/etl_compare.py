#!/usr/bin/env python3
"""Compare two cumulus-etl style ndjson output folders table by table, row by row.

Usage: bench/etl_compare.py STRATUS_OUT CUMULUS_OUT
Rows are matched by id (or by the completion tables' keys) and compared as JSON values, so
key order, ASCII escaping and float spelling do not matter. etl__completion rows differ in
etl_version and etl_time by nature; those two columns are left out. Exits 1 on differences.
"""
import glob, json, os, sys

def rows(root, table):
    out = []
    for f in sorted(glob.glob(os.path.join(root, table, f"{table}.*.ndjson"))):
        with open(f, encoding="utf-8") as fh:
            out += [json.loads(l) for l in fh if l.strip()]
    return out

def key(table, r):
    if table == "etl__completion":
        return r["table_name"]
    if table == "etl__completion_encounters":
        return r["encounter_id"]
    return r["id"]

a_root, b_root = sys.argv[1], sys.argv[2]
tables = sorted({os.path.basename(p) for p in glob.glob(os.path.join(a_root, "*")) + glob.glob(os.path.join(b_root, "*"))} - {"JobConfig"})
bad = 0
for t in tables:
    a, b = rows(a_root, t), rows(b_root, t)
    if t == "etl__completion":
        for r in a + b:
            r.pop("etl_version", None); r.pop("etl_time", None)
    am = {key(t, r): r for r in a}
    bm = {key(t, r): r for r in b}
    only_a, only_b = am.keys() - bm.keys(), bm.keys() - am.keys()
    diff = [k for k in am.keys() & bm.keys() if am[k] != bm[k]]
    status = "same" if not (only_a or only_b or diff) and len(a) == len(b) else "DIFFERENT"
    print(f"{t:28} stratus {len(a):7} cumulus-etl {len(b):7}  {status}")
    if status != "same":
        bad += 1
        for k in list(only_a)[:2]: print("   only in stratus:", k)
        for k in list(only_b)[:2]: print("   only in cumulus-etl:", k)
        for k in diff[:2]:
            ra, rb = am[k], bm[k]
            for f in sorted(set(ra) | set(rb)):
                if ra.get(f) != rb.get(f):
                    print(f"   {k[:16]}… field {f}: stratus {json.dumps(ra.get(f))[:200]} | cumulus-etl {json.dumps(rb.get(f))[:200]}")
sys.exit(1 if bad else 0)
