"""Loads the ETL's ndjson output into native DuckDB tables for cumulus-library, once.

cumulus-library's own local input (`--load-ndjson-dir`) registers each table as a view
over the JSON files, scanned again by every query. At 100,000 patients that path hung
for good on our 2-core machine (docs in BENCHMARKS.md), so bench/library_large.sh loads
the same rows into tables first, with cumulus-library's own schema detection (its
`read_ndjson_dir`, run in its venv), and then times `cumulus-library build` on that
database without `--load-ndjson-dir`: a columnar store prepared beforehand, as Stratus
reads the ETL's Delta Lake output.

Each table goes ndjson -> Parquet (streamed by pyarrow, in this Python thread) ->
DuckDB's own Parquet reader, so that DuckDB never calls back into Python while it loads.

Usage: python bench/cl_preload.py LAKE_NDJSON_DIR DATABASE TMP_DIR
(run with the peer's interpreter: .peers/cumulus-library/venv/bin/python)
"""

import os
import sys
import time

import duckdb
import pyarrow.parquet as pq
from cumulus_library.databases import utils


def main() -> None:
    lake, database, tmp = sys.argv[1:4]
    os.makedirs(tmp, exist_ok=True)
    datasets = utils.read_ndjson_dir(None, utils.get_ndjson_files(lake))
    con = duckdb.connect(database)
    # cumulus-library reads this cache table in every parallel step; empty means no
    # registered ndjson views, which is the case here.
    con.execute(
        "CREATE TABLE IF NOT EXISTS pyarrow_cache "
        "(table_name VARCHAR, file_array VARCHAR, schema VARCHAR)"
    )
    for name, dataset in sorted(datasets.items()):
        started = time.time()
        path = os.path.join(tmp, f"{name}.parquet")
        rows = 0
        with pq.ParquetWriter(path, dataset.schema) as writer:
            for batch in dataset.to_batches():
                writer.write_batch(batch)
                rows += batch.num_rows
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        con.execute(f"CREATE TABLE \"{name}\" AS SELECT * FROM read_parquet('{path}')")
        os.remove(path)
        print(f"{name}: {rows} rows, {time.time() - started:.1f} s", flush=True)
    con.close()


if __name__ == "__main__":
    main()
