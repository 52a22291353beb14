//! `stratus ndjson stats`.

use std::io::Write;
use std::path::Path;

use stratus_fhir::ReaderOptions;
use stratus_fhir::integrity::{self, IntegrityReport};
use stratus_fhir::stats::{self, FolderStats};

use crate::cli::StatsArgs;
use crate::exit::Outcome;
use crate::output::{self, bytes, thousands};

pub fn stats(args: &StatsArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let options = ReaderOptions {
        max_line_bytes: args.read.max_line_bytes,
    };
    let result = collect(&args.path, options, quiet)?;
    let integrity = if args.check_references {
        let files = stratus_fhir::scan::scan(&args.path, options)?;
        let report = integrity::check(&files, options)?;
        for d in &report.examples {
            eprintln!("{d}");
        }
        if report.dangling > report.examples.len() as u64 {
            eprintln!(
                "... and {} more dangling references",
                thousands(report.dangling - report.examples.len() as u64)
            );
        }
        Some(report)
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &result, integrity.as_ref())?;
    } else {
        print_table(&mut out, &result)?;
        if let Some(r) = &integrity {
            writeln!(
                out,
                "references: {} checked, {} dangling, {} absolute (not checked)",
                thousands(r.checked),
                thousands(r.dangling),
                thousands(r.external)
            )?;
        }
    }
    let dangling = integrity.map(|r| r.dangling).unwrap_or(0);
    Ok(if result.is_clean() && dangling == 0 {
        Outcome::Success
    } else {
        Outcome::BadInput
    })
}

/// Reads a folder with a progress bar, printing bad lines to stderr as they are found.
pub fn collect(path: &Path, options: ReaderOptions, quiet: bool) -> anyhow::Result<FolderStats> {
    // The error names the path already.
    let files = stratus_fhir::scan::scan(path, options)?;
    let total: u64 = files.iter().map(|f| f.disk_bytes).sum();
    let result = output::with_byte_progress(total, "reading", quiet, |done, on_bad| {
        stats::collect_files(&files, options, done, on_bad)
    })?;
    for (path, err) in &result.unreadable_files {
        eprintln!("{}: could not be read to the end: {err}", path.display());
    }
    Ok(result)
}

pub fn print_table(out: &mut impl Write, s: &FolderStats) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:>6} {:>14} {:>12} {:>12}",
        "type", "files", "resources", "bytes", "on disk"
    )?;
    for (t, ts) in &s.by_type {
        writeln!(
            out,
            "{:<24} {:>6} {:>14} {:>12} {:>12}",
            t,
            ts.files,
            thousands(ts.resources),
            bytes(ts.bytes),
            bytes(ts.disk_bytes)
        )?;
    }
    let files: u64 = s.by_type.values().map(|t| t.files).sum();
    let raw: u64 = s.by_type.values().map(|t| t.bytes).sum();
    let disk: u64 = s.by_type.values().map(|t| t.disk_bytes).sum();
    writeln!(
        out,
        "{:<24} {:>6} {:>14} {:>12} {:>12}",
        "total",
        files,
        thousands(s.total_resources()),
        bytes(raw),
        bytes(disk)
    )?;
    writeln!(
        out,
        "{} bad line{}, {} file{} of unknown type skipped, {} unreadable file{}",
        thousands(s.bad_lines),
        plural(s.bad_lines),
        s.untyped_files.len(),
        plural(s.untyped_files.len() as u64),
        s.unreadable_files.len(),
        plural(s.unreadable_files.len() as u64),
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn print_json(
    out: &mut impl Write,
    s: &FolderStats,
    integrity: Option<&IntegrityReport>,
) -> anyhow::Result<()> {
    let types: serde_json::Map<String, serde_json::Value> = s
        .by_type
        .iter()
        .map(|(t, ts)| {
            (
                t.clone(),
                serde_json::json!({
                    "files": ts.files, "resources": ts.resources,
                    "bytes": ts.bytes, "disk_bytes": ts.disk_bytes,
                }),
            )
        })
        .collect();
    let mut doc = serde_json::json!({
        "types": types,
        "total_resources": s.total_resources(),
        "bad_lines": s.bad_lines,
        "untyped_files": s.untyped_files,
        "unreadable_files": s.unreadable_files.iter()
            .map(|(p, e)| serde_json::json!({"path": p, "error": e})).collect::<Vec<_>>(),
    });
    if let Some(r) = integrity {
        doc["references"] = serde_json::json!({
            "checked": r.checked, "dangling": r.dangling, "external": r.external,
        });
    }
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)?;
    Ok(())
}
