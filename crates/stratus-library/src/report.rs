//! A page a person would rather look at than a folder of CSVs: one self-contained HTML file
//! (no script, no network) with bar charts of the core counts (patients by gender, race
//! and ethnicity; encounters by month and class; the commonest conditions and lab tests)
//! and every exported table below them. It shows only what the export holds: counts
//! already suppressed under the minimum cell size.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use stratus_lake::deltalake::arrow::array::{Array, RecordBatch};
use stratus_lake::deltalake::arrow::util::display::array_value_to_string;
use stratus_lake::deltalake::datafusion::prelude::SessionContext;

use crate::LibraryError;
use crate::build::session;
use crate::export::sorted;
use crate::lake::Lake;
use crate::study::Study;

/// Rows of each table shown in full at the bottom of the page.
const TABLE_ROWS: usize = 200;

/// What the report showed.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    pub path: PathBuf,
    pub charts: usize,
    pub tables: usize,
}

/// Writes the report of study `target` (its exportable tables) to `out`.
pub fn report(
    lake: &str,
    target: &str,
    study_dirs: &[PathBuf],
    out: &Path,
) -> Result<ReportSummary, LibraryError> {
    let study = Study::find(target, study_dirs)?;
    let rt = crate::build::runtime()?;
    rt.block_on(async {
        let lake = Lake::open(lake)?;
        let ctx = session();
        let exports = study.exports()?;
        for (t, _) in &exports {
            lake.register_study_table(&ctx, t).await?;
        }
        let mut charts = Vec::new();
        for c in chart_specs(&study.prefix) {
            if exports.iter().any(|(t, _)| *t == c.table) {
                let bars = marginal(&ctx, &c).await?;
                if !bars.is_empty() {
                    charts.push((c, bars));
                }
            }
        }
        let mut html = String::new();
        head(&mut html, &study);
        if let Some(span) = meta_span(&ctx, &study.prefix, &exports).await? {
            let _ = write!(html, "<p class=\"span\">Encounters from {span}.</p>");
        }
        html.push_str("<section class=\"charts\">");
        for (c, bars) in &charts {
            chart(&mut html, c, bars);
        }
        html.push_str("</section><h2>Tables</h2>");
        let mut tables = 0;
        for (t, kind) in &exports {
            let batches = sorted(&ctx, t).await?;
            table(&mut html, t, kind, &batches);
            tables += 1;
        }
        html.push_str("</main></body></html>\n");
        let mut f = stratus_fhir::writer::AtomicFile::create(out)
            .map_err(|e| LibraryError::Usage(format!("{}: {e}", out.display())))?;
        std::io::Write::write_all(&mut f, html.as_bytes()).map_err(|e| LibraryError::io(out, e))?;
        f.commit()
            .map_err(|e| LibraryError::Usage(format!("{}: {e}", out.display())))?;
        Ok(ReportSummary {
            path: out.to_owned(),
            charts: charts.len(),
            tables,
        })
    })
}

/// A bar chart: the cells of `table` where `column` has a value and every other
/// dimension is NULL (the cube's marginal for that column).
struct ChartSpec {
    title: &'static str,
    table: String,
    column: &'static str,
    /// Sort by the label (time series) rather than by count.
    by_label: bool,
    top: usize,
}

fn chart_specs(prefix: &str) -> Vec<ChartSpec> {
    if prefix != "core" {
        return Vec::new();
    }
    let spec = |title, table: &str, column, by_label, top| ChartSpec {
        title,
        table: format!("core__{table}"),
        column,
        by_label,
        top,
    };
    vec![
        spec("Patients by gender", "count_patient", "gender", false, 10),
        spec(
            "Patients by race",
            "count_patient",
            "race_display",
            false,
            10,
        ),
        spec(
            "Patients by ethnicity",
            "count_patient",
            "ethnicity_display",
            false,
            10,
        ),
        spec(
            "Finished encounters by month",
            "count_encounter_month",
            "period_start_month",
            true,
            600,
        ),
        spec(
            "Finished encounters by class",
            "count_encounter_month",
            "class_display",
            false,
            12,
        ),
        spec(
            "Finished encounters by age at visit",
            "count_encounter_month",
            "age_at_visit",
            true,
            200,
        ),
        spec(
            "Commonest conditions (encounters)",
            "count_condition_month",
            "code_display",
            false,
            20,
        ),
        spec(
            "Commonest lab tests (results)",
            "count_observation_lab_month",
            "observation_code",
            false,
            20,
        ),
        spec(
            "Commonest medications (patients)",
            "count_medicationrequest_month",
            "medication_display",
            false,
            20,
        ),
    ]
}

async fn marginal(ctx: &SessionContext, c: &ChartSpec) -> Result<Vec<(String, i64)>, LibraryError> {
    let fail = |e: &dyn std::fmt::Display| LibraryError::table(&c.table, e);
    let df = ctx.table(c.table.as_str()).await.map_err(|e| fail(&e))?;
    let others: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "cnt" && n != c.column)
        .collect();
    if df.schema().field_with_unqualified_name(c.column).is_err() {
        return Ok(Vec::new());
    }
    let mut sql = format!(
        "SELECT CAST({col} AS VARCHAR), CAST(cnt AS BIGINT) FROM {t} WHERE {col} IS NOT NULL",
        col = c.column,
        t = c.table
    );
    for o in &others {
        let _ = write!(sql, " AND {o} IS NULL");
    }
    // Ages in numeric order, months as text.
    let order = if c.by_label {
        format!("try_cast(CAST({} AS VARCHAR) AS BIGINT), 1", c.column)
    } else {
        "2 DESC, 1".to_owned()
    };
    let _ = write!(sql, " ORDER BY {order} LIMIT {}", c.top);
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| fail(&e))?
        .collect()
        .await
        .map_err(|e| fail(&e))?;
    let mut out = Vec::new();
    for b in &batches {
        let (labels, counts) = (b.column(0), b.column(1));
        for r in 0..b.num_rows() {
            let label = array_value_to_string(labels, r).map_err(|e| fail(&e))?;
            let n = array_value_to_string(counts, r)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            out.push((label, n));
        }
    }
    Ok(out)
}

async fn meta_span(
    ctx: &SessionContext,
    prefix: &str,
    exports: &[(String, &str)],
) -> Result<Option<String>, LibraryError> {
    let t = format!("{prefix}__meta_date");
    if !exports.iter().any(|(n, _)| *n == t) {
        return Ok(None);
    }
    let sql = format!("SELECT CAST(min_date AS VARCHAR), CAST(max_date AS VARCHAR) FROM {t}");
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| LibraryError::table(&t, e))?
        .collect()
        .await
        .map_err(|e| LibraryError::table(&t, e))?;
    Ok(batches.first().filter(|b| b.num_rows() > 0).and_then(|b| {
        let from = array_value_to_string(b.column(0), 0).ok()?;
        let to = array_value_to_string(b.column(1), 0).ok()?;
        Some(format!("{} to {}", esc(&from), esc(&to)))
    }))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn head(html: &mut String, study: &Study) {
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{p} study report</title><style>\
body{{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}}\
main{{max-width:1100px;margin:0 auto;padding:24px}}h1{{margin:0 0 4px}}\
.charts{{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:16px;align-items:start}}\
figure{{margin:0;background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:12px}}\
figcaption{{font-weight:600;margin-bottom:8px}}svg text{{font-size:12px;fill:#1d2433}}\
rect.bar{{fill:#3a6ea5}}table{{border-collapse:collapse;background:#fff;font-size:13px}}\
td,th{{border:1px solid #dde1e8;padding:2px 6px;text-align:left}}td.n{{text-align:right}}\
details{{margin:8px 0}}summary{{cursor:pointer;font-weight:600}}.note{{color:#5b6577}}\
</style></head><body><main><h1>{p} study report</h1><p class=\"note\">{d}. Counts only; \
cells counting fewer than the minimum cell size were left out before this page was made. \
In the tables, an empty cell means all values; cumulus__none means no value.</p>",
        p = esc(&study.prefix),
        d = esc(&study.description),
    );
}

fn chart(html: &mut String, c: &ChartSpec, bars: &[(String, i64)]) {
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    if c.by_label {
        // A time series: vertical bars, labels on every few.
        let (w, h, pad) = (460.0, 180.0, 30.0);
        let step = (w - pad) / bars.len().max(1) as f64;
        let _ = write!(
            html,
            "<figure data-chart=\"{col}\"><figcaption>{t}</figcaption>\
<svg viewBox=\"0 0 {w} {hh}\" width=\"100%\" role=\"img\" aria-label=\"{t}\">",
            col = c.column,
            t = esc(c.title),
            hh = h + 30.0
        );
        let every = (bars.len() / 6).max(1);
        for (i, (label, n)) in bars.iter().enumerate() {
            let bh = (*n as f64 / max as f64) * h;
            let x = pad + i as f64 * step;
            let _ = write!(
                html,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\"><title>{l}: {n}</title></rect>",
                y = h - bh,
                bw = (step * 0.9).max(0.5),
                l = esc(label)
            );
            if i % every == 0 {
                let _ = write!(
                    html,
                    "<text x=\"{x:.1}\" y=\"{ty}\">{l}</text>",
                    ty = h + 16.0,
                    l = esc(label.get(..7).unwrap_or(label))
                );
            }
        }
        let _ = write!(html, "<text x=\"0\" y=\"12\">{max}</text></svg></figure>");
        return;
    }
    let row = 20.0;
    let label_w = 200.0;
    let w = 460.0;
    let _ = write!(
        html,
        "<figure data-chart=\"{col}\"><figcaption>{t}</figcaption>\
<svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"{t}\">",
        col = c.column,
        t = esc(c.title),
        h = row * bars.len() as f64 + 4.0
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = i as f64 * row;
        let bw = (*n as f64 / max as f64) * (w - label_w - 60.0);
        let short: String = label.chars().take(30).collect();
        let _ = write!(
            html,
            "<text x=\"0\" y=\"{ty:.1}\">{s}</text><rect class=\"bar\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh}\"><title>{l}: {n}</title></rect><text x=\"{tx:.1}\" y=\"{ty:.1}\">{n}</text>",
            ty = y + 14.0,
            s = esc(&short),
            l = esc(label),
            bh = row - 4.0,
            tx = label_w + bw + 4.0
        );
    }
    html.push_str("</svg></figure>");
}

fn table(html: &mut String, name: &str, kind: &str, batches: &[RecordBatch]) {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let _ = write!(
        html,
        "<details data-table=\"{n}\"><summary>{n} <span class=\"note\">({kind}, {rows} rows)</span></summary>",
        n = esc(name)
    );
    let Some(first) = batches.first() else {
        html.push_str("<p class=\"note\">No rows.</p></details>");
        return;
    };
    html.push_str("<table><thead><tr>");
    for f in first.schema().fields() {
        let _ = write!(html, "<th>{}</th>", esc(f.name()));
    }
    html.push_str("</tr></thead><tbody>");
    let mut shown = 0;
    'outer: for b in batches {
        for r in 0..b.num_rows() {
            if shown == TABLE_ROWS {
                break 'outer;
            }
            html.push_str("<tr>");
            for (i, c) in b.columns().iter().enumerate() {
                let v = if c.is_null(r) {
                    String::new()
                } else {
                    array_value_to_string(c, r).unwrap_or_default()
                };
                let class = if i == 0 && b.schema().field(0).name() == "cnt" {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(html, "<td{class}>{}</td>", esc(&v));
            }
            html.push_str("</tr>");
            shown += 1;
        }
    }
    html.push_str("</tbody></table>");
    if rows > shown {
        let _ = write!(
            html,
            "<p class=\"note\">The first {shown} of {rows} rows; the export has them all.</p>"
        );
    }
    html.push_str("</details>");
}
