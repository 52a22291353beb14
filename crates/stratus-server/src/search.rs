//! FHIR search parameters the server understands, and matching them against a resource.
//!
//! One table serves three masters: REST search, `_typeFilter` in exports, and the
//! CapabilityStatement, so a client can trust that what `metadata` lists really works.
//! Parameters a type cannot have (no such element) are not offered for it.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use stratus_fhir::date::DateRange;
use stratus_fhir::elements;
use stratus_fhir::reference::{self, Reference};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Date,
    Reference,
    /// `_id`: exact logical id.
    Id,
}

impl Kind {
    pub fn fhir_name(self) -> &'static str {
        match self {
            Kind::Token | Kind::Id => "token",
            Kind::Date => "date",
            Kind::Reference => "reference",
        }
    }
}

/// A search parameter of one resource type.
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Element paths; `x[x]` matches any choice `xDateTime`, `xPeriod`, ...
    pub paths: &'static [&'static str],
    pub doc: &'static str,
}

/// Date parameters per type: (type, param, paths). R4 names, plus `issued` on Observation,
/// which Epic supports and smart-fetch's created mode uses.
const DATES: &[(&str, &str, &[&str])] = &[
    ("AllergyIntolerance", "date", &["recordedDate"]),
    ("CarePlan", "date", &["period"]),
    ("CareTeam", "date", &["period"]),
    ("Claim", "created", &["created"]),
    ("Condition", "recorded-date", &["recordedDate"]),
    ("Condition", "onset-date", &["onset[x]"]),
    ("DiagnosticReport", "date", &["effective[x]"]),
    ("DiagnosticReport", "issued", &["issued"]),
    ("DocumentReference", "date", &["date"]),
    ("Encounter", "date", &["period"]),
    ("EpisodeOfCare", "date", &["period"]),
    ("ExplanationOfBenefit", "created", &["created"]),
    ("Immunization", "date", &["occurrence[x]"]),
    ("MedicationDispense", "whenhandedover", &["whenHandedOver"]),
    ("MedicationRequest", "authoredon", &["authoredOn"]),
    ("Observation", "date", &["effective[x]"]),
    ("Observation", "issued", &["issued"]),
    ("Patient", "birthdate", &["birthDate"]),
    ("Procedure", "date", &["performed[x]"]),
    ("ServiceRequest", "authored", &["authoredOn"]),
    ("Specimen", "collected", &["collection.collected[x]"]),
];

const EXTRA: &[(&str, &str, Kind, &[&str])] = &[
    (
        "AllergyIntolerance",
        "clinical-status",
        Kind::Token,
        &["clinicalStatus"],
    ),
    (
        "Condition",
        "clinical-status",
        Kind::Token,
        &["clinicalStatus"],
    ),
    (
        "Condition",
        "verification-status",
        Kind::Token,
        &["verificationStatus"],
    ),
    ("Patient", "gender", Kind::Token, &["gender"]),
    (
        "PractitionerRole",
        "practitioner",
        Kind::Reference,
        &["practitioner"],
    ),
    (
        "PractitionerRole",
        "organization",
        Kind::Reference,
        &["organization"],
    ),
    (
        "DocumentReference",
        "encounter",
        Kind::Reference,
        &["context.encounter"],
    ),
];

/// The parameters of `rtype`, `_id` and `_lastUpdated` first.
pub fn params_for(rtype: &str) -> Vec<ParamDef> {
    let mut out = vec![
        ParamDef {
            name: "_id",
            kind: Kind::Id,
            paths: &["id"],
            doc: "logical id; comma-separated ids match any",
        },
        ParamDef {
            name: "_lastUpdated",
            kind: Kind::Date,
            paths: &["meta.lastUpdated"],
            doc: "meta.lastUpdated, with prefixes gt, ge, lt, le, eq, ne, sa, eb",
        },
    ];
    let has = |name: &str| elements::element(rtype, name).is_some();
    let compartment = has("subject") || has("patient") || has("beneficiary");
    if compartment && rtype != "Patient" {
        out.push(ParamDef {
            name: "patient",
            kind: Kind::Reference,
            paths: &["subject", "patient", "beneficiary"],
            doc: "the patient whose record this is (Patient/id or id)",
        });
    }
    if has("subject") {
        out.push(ParamDef {
            name: "subject",
            kind: Kind::Reference,
            paths: &["subject"],
            doc: "the subject reference",
        });
    }
    for (name, doc) in [
        ("identifier", "system|value, or value"),
        ("category", "system|code, or code"),
        ("code", "system|code, or code"),
        ("status", "code"),
        ("type", "system|code, or code"),
    ] {
        if has(name) {
            out.push(ParamDef {
                name,
                kind: Kind::Token,
                paths: match name {
                    "identifier" => &["identifier"],
                    "category" => &["category"],
                    "code" => &["code"],
                    "status" => &["status"],
                    _ => &["type"],
                },
                doc,
            });
        }
    }
    if has("encounter") {
        out.push(ParamDef {
            name: "encounter",
            kind: Kind::Reference,
            paths: &["encounter"],
            doc: "the encounter reference",
        });
    }
    for &(t, name, kind, paths) in EXTRA {
        if t == rtype {
            out.push(ParamDef {
                name,
                kind,
                paths,
                doc: "",
            });
        }
    }
    for &(t, name, paths) in DATES {
        if t == rtype {
            out.push(ParamDef {
                name,
                kind: Kind::Date,
                paths,
                doc: "date, with prefixes gt, ge, lt, le, eq, ne, sa, eb",
            });
        }
    }
    out
}

/// One parsed search criterion: a parameter and the values any of which may match.
#[derive(Debug, Clone)]
pub struct Criterion {
    pub def: ParamDef,
    pub values: Vec<Value_>,
}

/// One comma-separated alternative of a criterion.
#[derive(Debug, Clone)]
pub enum Value_ {
    Token {
        system: Option<String>,
        code: Option<String>,
    },
    Date {
        prefix: Prefix,
        range: DateRange,
    },
    Reference {
        resource_type: Option<String>,
        id: String,
    },
    Id(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// Parses `name=value` for `rtype`. `Ok(None)` means "not a search parameter of this type".
pub fn parse_criterion(
    rtype: &str,
    name: &str,
    value: &str,
) -> Result<Option<Criterion>, ApiError> {
    let (base, modifier) = match name.split_once(':') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    let Some(def) = params_for(rtype).into_iter().find(|p| p.name == base) else {
        return Ok(None);
    };
    if let Some(m) = modifier {
        return Err(ApiError::bad_request(format!(
            "search modifier ':{m}' on {rtype}.{base} is not supported"
        )));
    }
    let mut values = Vec::new();
    for part in split_commas(value) {
        values.push(parse_value(rtype, def, &part)?);
    }
    if values.is_empty() {
        return Err(ApiError::bad_request(format!(
            "search parameter {base} on {rtype} has an empty value"
        )));
    }
    Ok(Some(Criterion { def, values }))
}

/// Splits on commas not escaped with a backslash, unescaping `\,`.
fn split_commas(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = out.last_mut()
                {
                    last.push(n);
                }
            }
            ',' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn parse_value(rtype: &str, def: ParamDef, v: &str) -> Result<Value_, ApiError> {
    Ok(match def.kind {
        Kind::Id => Value_::Id(v.to_owned()),
        Kind::Token => match v.split_once('|') {
            Some((s, c)) => Value_::Token {
                system: Some(s.to_owned()),
                code: (!c.is_empty()).then(|| c.to_owned()),
            },
            None => Value_::Token {
                system: None,
                code: Some(v.to_owned()),
            },
        },
        Kind::Reference => match reference::parse(v) {
            Reference::Relative {
                resource_type, id, ..
            }
            | Reference::Absolute {
                resource_type, id, ..
            } => Value_::Reference {
                resource_type: Some(resource_type.to_owned()),
                id: id.to_owned(),
            },
            _ if reference::is_valid_id(v) => Value_::Reference {
                resource_type: None,
                id: v.to_owned(),
            },
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{rtype}.{}: '{v}' is not a reference (use Type/id or id)",
                    def.name
                )));
            }
        },
        Kind::Date => {
            let (prefix, rest) = match v.get(..2) {
                Some("eq") => (Prefix::Eq, &v[2..]),
                Some("ne") => (Prefix::Ne, &v[2..]),
                Some("gt") => (Prefix::Gt, &v[2..]),
                Some("lt") => (Prefix::Lt, &v[2..]),
                Some("ge") => (Prefix::Ge, &v[2..]),
                Some("le") => (Prefix::Le, &v[2..]),
                Some("sa") => (Prefix::Sa, &v[2..]),
                Some("eb") => (Prefix::Eb, &v[2..]),
                Some("ap") => (Prefix::Ap, &v[2..]),
                _ => (Prefix::Eq, v),
            };
            let range = DateRange::parse(rest).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{rtype}.{}: '{rest}' is not a FHIR date (YYYY, YYYY-MM-DD or an instant such as 2024-01-31T12:00:00Z)",
                    def.name
                ))
            })?;
            Value_::Date { prefix, range }
        }
    })
}

impl Criterion {
    /// True if the resource matches any of the values.
    pub fn matches(&self, resource: &Value) -> bool {
        let mut found = Vec::new();
        for path in self.def.paths {
            collect(resource, path, &mut found);
        }
        self.values.iter().any(|v| match v {
            Value_::Id(id) => resource.get("id").and_then(|x| x.as_str()) == Some(id.as_str()),
            Value_::Token { system, code } => found.iter().any(|f| token_matches(f, system, code)),
            Value_::Reference { resource_type, id } => found
                .iter()
                .any(|f| reference_matches(f, resource_type, id)),
            Value_::Date { prefix, range } => {
                let ranges: Vec<DateRange> = found.iter().filter_map(|f| date_range(f)).collect();
                if *prefix == Prefix::Ne {
                    !ranges.is_empty() && !ranges.iter().any(|r| date_matches(Prefix::Eq, r, range))
                } else {
                    ranges.iter().any(|r| date_matches(*prefix, r, range))
                }
            }
        })
    }

    /// For `_lastUpdated`: decides from the index value alone (ms or `None`).
    pub fn matches_time(&self, ms: Option<i64>) -> bool {
        let Some(ms) = ms else { return false };
        let r = DateRange {
            start: ms,
            end: ms + 1,
        };
        self.values.iter().any(|v| match v {
            Value_::Date {
                prefix: Prefix::Ne,
                range,
            } => !date_matches(Prefix::Eq, &r, range),
            Value_::Date { prefix, range } => date_matches(*prefix, &r, range),
            _ => false,
        })
    }
}

/// Collects the values at `path` (dot-separated, arrays flattened, `[x]` choices).
fn collect<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let mut step = |child: &'a Value| match rest {
        Some(r) => {
            if let Some(arr) = child.as_array() {
                for c in arr.iter() {
                    collect(c, r, out);
                }
            } else {
                collect(child, r, out);
            }
        }
        None => {
            if let Some(arr) = child.as_array() {
                out.extend(arr.iter());
            } else {
                out.push(child);
            }
        }
    };
    if let Some(prefix) = head.strip_suffix("[x]") {
        if let Some(obj) = v.as_object() {
            for (k, child) in obj.iter() {
                if k.len() > prefix.len()
                    && k.starts_with(prefix)
                    && k.as_bytes()[prefix.len()].is_ascii_uppercase()
                {
                    step(child);
                }
            }
        }
    } else if let Some(child) = v.get(head) {
        step(child);
    }
}

fn token_matches(v: &Value, system: &Option<String>, code: &Option<String>) -> bool {
    let pair_matches = |s: Option<&str>, c: Option<&str>| {
        let system_ok = match system.as_deref() {
            None => true,
            Some("") => s.is_none(),
            Some(want) => s == Some(want),
        };
        let code_ok = match code.as_deref() {
            None => true,
            Some(want) => c == Some(want),
        };
        system_ok && code_ok
    };
    if let Some(s) = v.as_str() {
        return pair_matches(None, Some(s));
    }
    if let Some(codings) = v.get("coding").and_then(|c| c.as_array()) {
        return codings.iter().any(|c| {
            pair_matches(
                c.get("system").and_then(|x| x.as_str()),
                c.get("code").and_then(|x| x.as_str()),
            )
        });
    }
    let s = v.get("system").and_then(|x| x.as_str());
    if let Some(value) = v.get("value").and_then(|x| x.as_str()) {
        return pair_matches(s, Some(value));
    }
    pair_matches(s, v.get("code").and_then(|x| x.as_str()))
}

fn reference_matches(v: &Value, want_type: &Option<String>, want_id: &str) -> bool {
    let Some(r) = v.get("reference").and_then(|r| r.as_str()) else {
        return false;
    };
    match reference::parse(r) {
        Reference::Relative {
            resource_type, id, ..
        }
        | Reference::Absolute {
            resource_type, id, ..
        } => id == want_id && want_type.as_deref().is_none_or(|t| t == resource_type),
        _ => false,
    }
}

fn date_range(v: &Value) -> Option<DateRange> {
    if let Some(s) = v.as_str() {
        return DateRange::parse(s);
    }
    // A Period: open ends reach to the ends of time.
    let start = v.get("start").and_then(|s| s.as_str());
    let end = v.get("end").and_then(|s| s.as_str());
    if start.is_none() && end.is_none() {
        return None;
    }
    Some(DateRange {
        start: start
            .and_then(DateRange::parse)
            .map_or(i64::MIN, |r| r.start),
        end: end.and_then(DateRange::parse).map_or(i64::MAX, |r| r.end),
    })
}

/// FHIR R4 §3.1.1.4.2: the resource's range `r` against the parameter's range `p`.
pub fn date_matches(prefix: Prefix, r: &DateRange, p: &DateRange) -> bool {
    let eq = r.start >= p.start && r.end <= p.end;
    match prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => r.end > p.end,
        Prefix::Lt => r.start < p.start,
        Prefix::Ge => r.end > p.end || eq,
        Prefix::Le => r.start < p.start || eq,
        Prefix::Sa => r.start >= p.end,
        Prefix::Eb => r.end <= p.start,
        Prefix::Ap => r.overlaps(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Value {
        sonic_rs::from_str(
            r#"{"resourceType":"Observation","id":"o1","status":"final",
            "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
            "code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},
            "subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},
            "effectiveDateTime":"2011-02-02T16:30:49-05:00","issued":"2011-02-02T16:30:49.825-05:00",
            "meta":{"lastUpdated":"2020-05-01T00:00:00Z"}}"#,
        )
        .unwrap()
    }

    fn check(name: &str, value: &str) -> bool {
        parse_criterion("Observation", name, value)
            .unwrap()
            .unwrap()
            .matches(&obs())
    }

    #[test]
    fn tokens() {
        assert!(check("category", "laboratory"));
        assert!(check("category", "vital-signs,laboratory"));
        assert!(check(
            "category",
            "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
        ));
        assert!(!check("category", "http://other|laboratory"));
        assert!(!check("category", "|laboratory"));
        assert!(check("code", "http://loinc.org|"));
        assert!(check("status", "final"));
    }

    #[test]
    fn references_and_dates() {
        assert!(check("patient", "p1"));
        assert!(check("subject", "Patient/p1"));
        assert!(!check("patient", "Group/p1"));
        assert!(check("encounter", "e1"));
        assert!(check("date", "2011-02-02"));
        assert!(check("date", "gt2011-01-01"));
        assert!(!check("date", "gt2011-02-02"));
        assert!(check("date", "ge2011-02-02"));
        assert!(check("issued", "lt2012"));
        assert!(check("_lastUpdated", "gt2020-04-30T23:59:59Z"));
        assert!(!check("_lastUpdated", "gt2020-05-01T00:00:00Z"));
        assert!(check("date", "ne2012"));
    }

    #[test]
    fn unknown_and_bad() {
        assert!(
            parse_criterion("Observation", "gender", "male")
                .unwrap()
                .is_none()
        );
        assert!(parse_criterion("Observation", "date", "last week").is_err());
        assert!(parse_criterion("Observation", "category:text", "x").is_err());
        assert!(
            parse_criterion("Patient", "gender", "female")
                .unwrap()
                .is_some()
        );
        // Patient has no patient parameter; identifier exists everywhere it is an element.
        assert!(
            parse_criterion("Patient", "patient", "x")
                .unwrap()
                .is_none()
        );
        assert!(
            parse_criterion("Patient", "identifier", "a|b")
                .unwrap()
                .is_some()
        );
    }
}
