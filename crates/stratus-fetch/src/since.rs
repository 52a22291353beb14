//! "Since" exports: which search parameter carries the since value for each type, which
//! time a finished type records in `done`, and how `--since auto` finds per-type values in
//! earlier work folders.

use std::collections::BTreeMap;

use stratus_fhir::date::DateRange;

use crate::FetchError;
use crate::metadata::Output;
use crate::server::ServerInfo;
use crate::workdir::Workdir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceMode {
    /// `_lastUpdated` / bulk `_since`: everything changed.
    Updated,
    /// Per-type creation dates: only new records (for servers without `meta.lastUpdated`).
    Created,
}

impl SinceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SinceMode::Updated => "updated",
            SinceMode::Created => "created",
        }
    }

    /// `auto` picks `updated` when the server can search Patient by `_lastUpdated`.
    pub fn resolve(arg: &str, info: &ServerInfo) -> Result<SinceMode, FetchError> {
        match arg {
            "updated" => Ok(SinceMode::Updated),
            "created" => Ok(SinceMode::Created),
            "auto" => Ok(if info.supports_param("Patient", "_lastUpdated") {
                SinceMode::Updated
            } else {
                tracing::info!(
                    "the server cannot search by _lastUpdated; using the 'created' since mode"
                );
                SinceMode::Created
            }),
            other => Err(FetchError::Usage(format!(
                "--since-mode '{other}': choose auto, updated or created"
            ))),
        }
    }
}

/// The creation-date search parameter of a type, and the field it reads.
pub fn created_param(t: &str) -> Option<(&'static str, &'static str)> {
    Some(match t {
        "AllergyIntolerance" => ("date", "recordedDate"),
        "Condition" => ("recorded-date", "recordedDate"),
        "DiagnosticReport" => ("issued", "issued"),
        "DocumentReference" => ("date", "date"),
        "MedicationRequest" => ("authoredon", "authoredOn"),
        "Observation" => ("issued", "issued"),
        "ServiceRequest" => ("authored", "authoredOn"),
        _ => return None,
    })
}

/// The field whose newest value a finished type records in `done`.
pub fn time_field(mode: SinceMode, t: &str) -> Option<&'static str> {
    match mode {
        SinceMode::Updated => Some("meta.lastUpdated"),
        SinceMode::Created if t == "Immunization" => Some("recorded"),
        SinceMode::Created => created_param(t).map(|(_, f)| f),
    }
}

/// The search parameter that carries "since" for `t`, if the server has one. Without a
/// CapabilityStatement nothing is assumed supported.
pub fn param_for(mode: SinceMode, t: &str, info: &ServerInfo) -> Option<&'static str> {
    match mode {
        SinceMode::Updated => Some("_lastUpdated"),
        SinceMode::Created => {
            created_param(t).and_then(|(p, _)| info.supports_param(t, p).then_some(p))
        }
    }
}

/// A FHIR date as milliseconds, for comparing `done` times. A time without a zone is read
/// as UTC+14, the earliest zone there is, so a later since never skips data.
pub fn instant_ms(s: &str) -> Option<i64> {
    let s = s.trim().replace(":60", ":59");
    let r = DateRange::parse(&s)?;
    let has_time = s.contains('T');
    let has_zone = has_time && (s.ends_with('Z') || s[s.find('T')?..].contains(['+', '-']));
    Some(if has_time && !has_zone {
        r.start - 14 * 3_600_000
    } else {
        r.start
    })
}

/// The newest time value seen so far for one type, kept in its original spelling.
#[derive(Debug, Clone, Default)]
pub struct Newest {
    pub ms: i64,
    pub text: String,
}

impl Newest {
    /// Offers one time value; future times and values that are not dates are ignored.
    pub fn offer_text(slot: &mut Option<Newest>, text: &str, now: i64) {
        let Some(ms) = instant_ms(text) else { return };
        if ms > now {
            return;
        }
        if slot.as_ref().is_none_or(|n| ms > n.ms) {
            *slot = Some(Newest {
                ms,
                text: text.to_owned(),
            });
        }
    }

    /// What `done` records: the newest time seen, but never later than when the crawl of
    /// the type started (what changed during the crawl may have been missed).
    pub fn done_value(newest: Option<&Newest>, started_ms: i64) -> String {
        match newest {
            Some(n) if n.ms <= started_ms => n.text.clone(),
            _ => stratus_fhir::date::format_instant(started_ms),
        }
    }
}

/// `--since auto`: for each type, the newest `done` time among earlier work folders made
/// with the same since mode and filters that cover this run's. Types never exported before
/// get no since value (a full export).
pub fn auto_values(
    earlier: &[(Workdir, Output)],
    types: &[&str],
    filters: &BTreeMap<String, Vec<String>>,
    mode: SinceMode,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for (_, m) in earlier {
        if let Some(old_mode) = &m.since_mode
            && old_mode != mode.as_str()
        {
            continue;
        }
        for t in types {
            let Some(done) = m.done.get(*t) else { continue };
            let Some(old) = m.filters_of(t) else { continue };
            let new = filters.get(*t).map(Vec::as_slice).unwrap_or_default();
            let covered = (old.is_empty() && new.is_empty())
                || (!old.is_empty() && new.iter().all(|f| old.contains(f)) && !new.is_empty());
            if !covered {
                continue;
            }
            let Some(ms) = instant_ms(done) else { continue };
            if out.get(*t).is_none_or(|(cur, _)| ms > *cur) {
                out.insert((*t).to_owned(), (ms, done.clone()));
            }
        }
    }
    out.into_iter().map(|(t, (_, v))| (t, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoneless_times_read_as_the_earliest_zone() {
        let z = instant_ms("2024-01-01T14:00:00Z").unwrap();
        assert_eq!(
            instant_ms("2024-01-01T14:00:00").unwrap(),
            z - 14 * 3_600_000
        );
        assert_eq!(
            instant_ms("2024-01-01T14:00:00-05:00").unwrap(),
            z + 5 * 3_600_000
        );
        assert!(instant_ms("2024-01").is_some());
        assert!(instant_ms("2024-01-01T23:59:60Z").is_some());
    }

    #[test]
    fn done_is_capped_by_the_start() {
        let mut slot = None;
        Newest::offer_text(&mut slot, "2025-06-24T09:27:51.986-05:00", i64::MAX);
        let started = instant_ms("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(
            Newest::done_value(slot.as_ref(), started),
            "2025-06-24T09:27:51.986-05:00"
        );
        let early = instant_ms("2020-01-01T00:00:00Z").unwrap();
        assert_eq!(
            Newest::done_value(slot.as_ref(), early),
            "2020-01-01T00:00:00.000Z"
        );
    }
}
