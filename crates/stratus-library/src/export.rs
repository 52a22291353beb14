//! What may leave the site: the tables a study's manifest lists for export (counts cubes,
//! flat and meta tables), never its line-level tables. Each non-empty table is written to
//! `OUT/<study>/<table>.<kind>.parquet` and `.csv`, rows sorted by every column descending
//! with NULLs first (cumulus-library's order, so files diff cleanly between tools), plus the
//! study's `manifest.toml` and `<study>.zip` holding the Parquet files and the manifest,
//! which is what an aggregator accepts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stratus_fhir::writer::AtomicFile;
use stratus_lake::deltalake::arrow::array::RecordBatch;
use stratus_lake::deltalake::arrow::compute::concat_batches;
use stratus_lake::deltalake::arrow::csv::WriterBuilder;
use stratus_lake::deltalake::datafusion::prelude::Expr;
use stratus_lake::deltalake::parquet::arrow::ArrowWriter;

use crate::build::session;
use crate::lake::Lake;
use crate::study::Study;
use crate::{LibraryError, zip};

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub study: String,
    pub dir: PathBuf,
    /// (file name, rows) of each table written.
    pub files: Vec<(String, usize)>,
    /// Tables with no row, not written (cumulus-library skips them too).
    pub empty: Vec<String>,
    pub zip: PathBuf,
}

/// Exports study `target` of the lake at `lake` into `out/<target>/`.
pub fn export(
    lake: &str,
    target: &str,
    study_dirs: &[PathBuf],
    out: &Path,
) -> Result<ExportSummary, LibraryError> {
    let study = Study::find(target, study_dirs)?;
    let rt = crate::build::runtime()?;
    rt.block_on(async {
        let lake = Lake::open(lake)?;
        let dir = out.join(&study.prefix);
        std::fs::create_dir_all(&dir).map_err(|e| LibraryError::io(&dir, e))?;
        // Old loose files go first, so that a table now empty leaves nothing behind.
        for e in std::fs::read_dir(&dir)
            .map_err(|e| LibraryError::io(&dir, e))?
            .flatten()
        {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let p = e.path();
                std::fs::remove_file(&p).map_err(|e| LibraryError::io(&p, e))?;
            }
        }
        let ctx = session();
        let mut files = Vec::new();
        let mut empty = Vec::new();
        let mut zipped = Vec::new();
        for (table, kind) in study.exports()? {
            lake.register_study_table(&ctx, &table).await?;
            let batches = sorted(&ctx, &table).await?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if rows == 0 {
                empty.push(table);
                continue;
            }
            let base = format!("{table}.{kind}");
            let pq = dir.join(format!("{base}.parquet"));
            write_parquet(&pq, &batches)?;
            write_csv(&dir.join(format!("{base}.csv")), &batches)?;
            zipped.push(pq);
            files.push((base, rows));
        }
        let manifest = dir.join("manifest.toml");
        std::fs::write(&manifest, study.read("manifest.toml")?)
            .map_err(|e| LibraryError::io(&manifest, e))?;
        zipped.push(manifest);
        let zip_path = dir.join(format!("{}.zip", study.prefix));
        zip::write(&zip_path, &zipped)?;
        Ok(ExportSummary {
            study: study.prefix.clone(),
            dir,
            files,
            empty,
            zip: zip_path,
        })
    })
}

/// The table's rows, sorted by every column descending, NULLs first.
pub async fn sorted(
    ctx: &stratus_lake::deltalake::datafusion::prelude::SessionContext,
    table: &str,
) -> Result<Vec<RecordBatch>, LibraryError> {
    let fail = |e: &dyn std::fmt::Display| LibraryError::table(table, e);
    let df = ctx.table(table).await.map_err(|e| fail(&e))?;
    let order: Vec<_> = df
        .schema()
        .columns()
        .into_iter()
        .map(|c| Expr::Column(c).sort(false, true))
        .collect();
    df.sort(order)
        .map_err(|e| fail(&e))?
        .collect()
        .await
        .map_err(|e| fail(&e))
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<(), LibraryError> {
    let fail = |e: &dyn std::fmt::Display| LibraryError::Usage(format!("{}: {e}", path.display()));
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let schema = first.schema();
    let file = AtomicFile::create(path).map_err(|e| fail(&e))?;
    let mut w = ArrowWriter::try_new(file, Arc::clone(&schema), None).map_err(|e| fail(&e))?;
    let all = concat_batches(&schema, batches).map_err(|e| fail(&e))?;
    w.write(&all).map_err(|e| fail(&e))?;
    w.into_inner()
        .map_err(|e| fail(&e))?
        .commit()
        .map_err(|e| fail(&e))?;
    Ok(())
}

fn write_csv(path: &Path, batches: &[RecordBatch]) -> Result<(), LibraryError> {
    let fail = |e: &dyn std::fmt::Display| LibraryError::Usage(format!("{}: {e}", path.display()));
    let file = AtomicFile::create(path).map_err(|e| fail(&e))?;
    let mut w = WriterBuilder::new().with_header(true).build(file);
    for b in batches {
        w.write(b).map_err(|e| fail(&e))?;
    }
    w.into_inner().commit().map_err(|e| fail(&e))?;
    Ok(())
}
