//! Parquet output: the ndjson layout with Parquet files, `OUTPUT/<table>/<table>.NNN.parquet`,
//! one per batch, each with the batch's wide R4 schema (snappy). Deletions go to
//! `<table>.meta` as for ndjson, since Parquet files are never rewritten here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::parquet::arrow::ArrowWriter;
use stratus_fhir::writer::AtomicFile;

use crate::LakeError;
use crate::delta::{DeltaSink, WRITE_ROWS};
use crate::sink::{NdjsonSink, Sink};

pub struct ParquetSink {
    root: PathBuf,
    next: HashMap<String, usize>,
    /// Deletion bookkeeping shared with the ndjson layout.
    meta: NdjsonSink,
}

impl ParquetSink {
    pub fn new(root: &Path) -> ParquetSink {
        ParquetSink {
            root: root.to_path_buf(),
            next: HashMap::new(),
            meta: NdjsonSink::new(root),
        }
    }

    fn next_index(&mut self, table: &str) -> usize {
        if let Some(n) = self.next.get(table) {
            return *n;
        }
        let n = crate::sink::next_batch_index(&self.root, table, "parquet");
        self.next.insert(table.to_owned(), n);
        n
    }
}

impl Sink for ParquetSink {
    fn write_batch(&mut self, table: &str, rows: Vec<Vec<u8>>) -> Result<(), LakeError> {
        let plan = DeltaSink::plan(table, &rows)?;
        let n = self.next_index(table);
        let dir = self.root.join(table);
        std::fs::create_dir_all(&dir).map_err(|e| LakeError::io(&dir, e))?;
        let path = dir.join(format!("{table}.{n:03}.parquet"));
        let file = AtomicFile::create(&path)?;
        let fail = |e: &dyn std::fmt::Display| crate::delta::err(table, e);
        let mut w = ArrowWriter::try_new(
            file,
            Arc::clone(&plan.schema),
            Some(crate::delta::writer_properties()),
        )
        .map_err(|e| fail(&e))?;
        // A row group at a time, so that only one slice of the batch is ever Arrow.
        for slice in rows.chunks(WRITE_ROWS) {
            for b in DeltaSink::decode(table, &plan.schema, slice)? {
                w.write(&b).map_err(|e| fail(&e))?;
            }
        }
        let file = w.into_inner().map_err(|e| fail(&e))?;
        file.commit()?;
        self.next.insert(table.to_owned(), n + 1);
        Ok(())
    }

    fn touch(&mut self, table: &str) -> Result<(), LakeError> {
        if self.next_index(table) == 0 {
            self.write_batch(table, Vec::new())?;
        }
        Ok(())
    }

    fn delete(&mut self, table: &str, ids: &[String]) -> Result<(), LakeError> {
        self.meta.delete(table, ids)
    }

    fn put_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), LakeError> {
        crate::sink::local::put_file(&self.root, rel, bytes)
    }

    fn batches(&mut self, table: &str) -> Option<usize> {
        Some(self.next_index(table))
    }

    fn rollback(&mut self, table: &str, keep: usize) -> Result<(), LakeError> {
        crate::sink::remove_batches_from(&self.root, table, "parquet", keep)?;
        self.next.insert(table.to_owned(), keep);
        Ok(())
    }

    fn get_file(&mut self, rel: &str) -> Result<Option<Vec<u8>>, LakeError> {
        crate::sink::local::get_file(&self.root, rel)
    }

    fn list(&mut self, rel: &str) -> Result<Vec<String>, LakeError> {
        crate::sink::local::list(&self.root, rel)
    }
}
