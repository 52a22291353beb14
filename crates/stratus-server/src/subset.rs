//! `_elements`: keep only some top-level elements of a resource, as Bulk Data and search
//! allow, always keeping what R4 makes mandatory and tagging the result `SUBSETTED`.

use std::collections::HashMap;

use sonic_rs::{JsonContainerTrait, JsonValueMutTrait, Value};
use stratus_fhir::elements;

use crate::error::ApiError;

/// Requested elements: for every type (`None` key) or for one type.
#[derive(Debug, Clone, Default)]
pub struct Elements {
    all: Vec<String>,
    per_type: HashMap<String, Vec<String>>,
}

impl Elements {
    /// Parses `_elements` values (`elem` or `Type.elem`, comma-separated, maybe repeated).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Elements, ApiError> {
        let mut out = Elements::default();
        for value in values {
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item.split_once('.') {
                    Some((t, e)) => {
                        let Some(els) = elements::elements_of(t) else {
                            return Err(ApiError::bad_request(format!(
                                "_elements: '{t}' in '{item}' is not an R4 resource type"
                            )));
                        };
                        if !els.iter().any(|el| el.name == e || el.choice_of == Some(e)) {
                            return Err(ApiError::bad_request(format!(
                                "_elements: {t} has no top-level element '{e}'"
                            )));
                        }
                        out.per_type
                            .entry(t.to_owned())
                            .or_default()
                            .push(e.to_owned());
                    }
                    None => {
                        let known = elements::resource_types().iter().any(|t| {
                            elements::elements_of(t).is_some_and(|els| {
                                els.iter()
                                    .any(|el| el.name == item || el.choice_of == Some(item))
                            })
                        });
                        if !known {
                            return Err(ApiError::bad_request(format!(
                                "_elements: no R4 resource has a top-level element '{item}'"
                            )));
                        }
                        out.all.push(item.to_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.per_type.is_empty()
    }

    /// True if `rtype` resources get subsetted: `Type.x` entries name other types only when
    /// the list holds no plain `x` entries, so those types are left whole.
    pub fn applies_to(&self, rtype: &str) -> bool {
        !self.all.is_empty() || self.per_type.contains_key(rtype)
    }

    /// The subsetted resource, re-serialised; `None` if this type is left whole.
    pub fn apply(&self, rtype: &str, raw: &[u8]) -> Result<Option<Vec<u8>>, sonic_rs::Error> {
        if !self.applies_to(rtype) {
            return Ok(None);
        }
        let mut value: Value = sonic_rs::from_slice(raw)?;
        let required: Vec<&str> = elements::elements_of(rtype)
            .map(|els| els.iter().filter(|e| e.required).map(|e| e.name).collect())
            .unwrap_or_default();
        let wanted = self
            .all
            .iter()
            .chain(self.per_type.get(rtype).into_iter().flatten());
        let wanted: Vec<&str> = wanted.map(String::as_str).collect();
        if let Some(obj) = value.as_object_mut() {
            let keys: Vec<String> = obj.iter().map(|(k, _)| k.to_owned()).collect();
            for k in keys {
                let keep = matches!(k.as_str(), "resourceType" | "id" | "meta")
                    || required.iter().any(|r| element_matches(r, &k))
                    || wanted.iter().any(|w| element_matches(w, &k));
                if !keep {
                    obj.remove(&k);
                }
            }
            let tag = sonic_rs::json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
                "display": "subsetted"
            });
            if obj.get(&"meta").is_none() {
                obj.insert("meta", sonic_rs::json!({}));
            }
            if let Some(meta) = obj.get_mut(&"meta").and_then(|m| m.as_object_mut()) {
                if meta.get(&"tag").and_then(|t| t.as_array()).is_none() {
                    meta.insert("tag", sonic_rs::json!([]));
                }
                if let Some(tags) = meta.get_mut(&"tag").and_then(|t| t.as_array_mut()) {
                    tags.push(tag);
                }
            }
        }
        sonic_rs::to_vec(&value).map(Some)
    }
}

/// `value` names `valueQuantity`, `valueString`, ... as well as itself; `_x` primitive
/// extensions follow their element.
fn element_matches(element: &str, key: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    key == element
        || (key.len() > element.len()
            && key.starts_with(element)
            && key.as_bytes()[element.len()].is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonic_rs::JsonValueTrait;

    #[test]
    fn keeps_required_and_chosen_and_tags() {
        let e = Elements::parse(["Observation.value,subject"]).unwrap();
        let raw = br#"{"resourceType":"Observation","id":"1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1"},"valueQuantity":{"value":1},"note":[{"text":"n"}]}"#;
        let out = e.apply("Observation", raw).unwrap().unwrap();
        let v: Value = sonic_rs::from_slice(&out).unwrap();
        assert!(
            v.get("status").is_some() && v.get("code").is_some(),
            "required kept"
        );
        assert!(v.get("valueQuantity").is_some() && v.get("subject").is_some());
        assert!(v.get("note").is_none());
        assert_eq!(v["meta"]["tag"][0]["code"].as_str(), Some("SUBSETTED"));
    }

    #[test]
    fn rejects_unknown_elements() {
        assert!(Elements::parse(["Observation.nope"]).is_err());
        assert!(Elements::parse(["Nope.id"]).is_err());
        assert!(Elements::parse(["zzz"]).is_err());
    }
}
