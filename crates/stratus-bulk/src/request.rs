//! What to export, and how it becomes a kick-off request (GET query or POST Parameters).

use serde_json::{Value, json};

/// Export level.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Level {
    System,
    Patient,
    Group(String),
}

/// The kick-off parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportSpec {
    pub level: Option<Level>,
    pub types: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub type_filters: Vec<String>,
    pub elements: Vec<String>,
    /// Patient ids or `Patient/id` references; forces POST.
    pub patients: Vec<String>,
    pub include_associated_data: Vec<String>,
    pub output_format: Option<String>,
    /// Kick off with POST and a Parameters body.
    pub post: bool,
    /// `Prefer: handling=lenient`.
    pub lenient: bool,
}

impl ExportSpec {
    pub fn level(&self) -> Level {
        self.level.clone().unwrap_or(Level::System)
    }

    /// `{base}/$export`, `{base}/Patient/$export` or `{base}/Group/{id}/$export`.
    pub fn kickoff_url(&self, base: &str) -> String {
        match self.level() {
            Level::System => format!("{base}/$export"),
            Level::Patient => format!("{base}/Patient/$export"),
            Level::Group(id) => format!("{base}/Group/{id}/$export"),
        }
    }

    pub fn uses_post(&self) -> bool {
        self.post || !self.patients.is_empty()
    }

    /// The parameters as name/value pairs, lists comma-joined as GET sends them
    /// (`_typeFilter` repeated, since its values contain commas).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.types.is_empty() {
            out.push(("_type".into(), self.types.join(",")));
        }
        if let Some(s) = &self.since {
            out.push(("_since".into(), s.clone()));
        }
        if let Some(u) = &self.until {
            out.push(("_until".into(), u.clone()));
        }
        for f in &self.type_filters {
            out.push(("_typeFilter".into(), f.clone()));
        }
        if !self.elements.is_empty() {
            out.push(("_elements".into(), self.elements.join(",")));
        }
        if !self.include_associated_data.is_empty() {
            out.push((
                "includeAssociatedData".into(),
                self.include_associated_data.join(","),
            ));
        }
        if let Some(f) = &self.output_format {
            out.push(("_outputFormat".into(), f.clone()));
        }
        out
    }

    /// The kick-off URL with its query string (GET).
    pub fn get_url(&self, base: &str) -> String {
        let url = self.kickoff_url(base);
        let pairs = self.query_pairs();
        if pairs.is_empty() {
            return url;
        }
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            ser.append_pair(k, v);
        }
        format!("{url}?{}", ser.finish())
    }

    /// The POST body: a Parameters resource, one entry per value.
    pub fn parameters(&self) -> Value {
        let mut p: Vec<Value> = Vec::new();
        for t in &self.types {
            p.push(json!({"name": "_type", "valueString": t}));
        }
        if let Some(s) = &self.since {
            p.push(json!({"name": "_since", "valueInstant": s}));
        }
        if let Some(u) = &self.until {
            p.push(json!({"name": "_until", "valueInstant": u}));
        }
        for f in &self.type_filters {
            p.push(json!({"name": "_typeFilter", "valueString": f}));
        }
        for e in &self.elements {
            p.push(json!({"name": "_elements", "valueString": e}));
        }
        for id in &self.patients {
            let r = if id.starts_with("Patient/") {
                id.clone()
            } else {
                format!("Patient/{id}")
            };
            p.push(json!({"name": "patient", "valueReference": {"reference": r}}));
        }
        for a in &self.include_associated_data {
            p.push(json!({"name": "includeAssociatedData", "valueCode": a}));
        }
        if let Some(f) = &self.output_format {
            p.push(json!({"name": "_outputFormat", "valueString": f}));
        }
        json!({"resourceType": "Parameters", "parameter": p})
    }

    /// `requestParameters` of the kickoff log event (patient left out, as the peers do).
    pub fn log_parameters(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.query_pairs() {
            let entry = m.entry(k).or_insert(Value::String(String::new()));
            if let Value::String(s) = entry {
                if !s.is_empty() {
                    s.push(',');
                }
                s.push_str(&v);
            }
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_post_forms() {
        let spec = ExportSpec {
            level: Some(Level::Group("g1".into())),
            types: vec!["Patient".into(), "Observation".into()],
            type_filters: vec!["Observation?category=laboratory,vital-signs".into()],
            since: Some("2024-01-01T00:00:00Z".into()),
            ..ExportSpec::default()
        };
        let url = spec.get_url("http://x/fhir");
        assert!(url.starts_with("http://x/fhir/Group/g1/$export?_type=Patient%2CObservation"));
        assert!(url.contains("_typeFilter=Observation%3Fcategory%3Dlaboratory%2Cvital-signs"));
        let p = spec.parameters();
        assert_eq!(p["parameter"].as_array().unwrap().len(), 4);
        let with_patient = ExportSpec {
            patients: vec!["a".into()],
            ..ExportSpec::default()
        };
        assert!(with_patient.uses_post());
        assert_eq!(
            with_patient.parameters()["parameter"][0]["valueReference"]["reference"],
            "Patient/a"
        );
    }
}
