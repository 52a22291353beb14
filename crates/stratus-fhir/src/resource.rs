//! One parsed FHIR resource: a JSON object known to have a string `resourceType` and a
//! non-empty string `id`, the two facts every later stage relies on.

use sonic_rs::{JsonContainerTrait, JsonValueMutTrait, JsonValueTrait, Value};

use crate::error::LineProblem;

/// A FHIR resource held as a JSON value.
#[derive(Debug, Clone)]
pub struct Resource {
    value: Value,
}

impl Resource {
    /// Parses one NDJSON line and checks `resourceType` and `id`.
    pub fn parse(line: &[u8]) -> Result<Resource, LineProblem> {
        let value: Value = sonic_rs::from_slice(line)
            .map_err(|e| LineProblem::InvalidJson(first_line(&e.to_string())))?;
        Resource::from_value(value)
    }

    /// Checks an already-parsed value.
    pub fn from_value(value: Value) -> Result<Resource, LineProblem> {
        if !value.is_object() {
            return Err(LineProblem::NotAnObject);
        }
        let Some(resource_type) = value.get("resourceType").and_then(|v| v.as_str()) else {
            return Err(LineProblem::NoResourceType);
        };
        match value.get("id").and_then(|v| v.as_str()) {
            Some(id) if !id.is_empty() => {}
            _ => {
                return Err(LineProblem::NoId {
                    resource_type: resource_type.to_owned(),
                });
            }
        }
        Ok(Resource { value })
    }

    /// The `resourceType`.
    pub fn resource_type(&self) -> &str {
        self.value
            .get("resourceType")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// The `id`.
    pub fn id(&self) -> &str {
        self.value
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// The whole resource.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The whole resource, for in-place edits (de-identification, id rewriting). Callers
    /// must keep `resourceType` and `id` strings.
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.value
    }

    /// Gives the value back.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// Sets the id.
    pub fn set_id(&mut self, id: &str) {
        if let Some(obj) = self.value.as_object_mut() {
            obj.insert("id", Value::from(id));
        }
    }

    /// Number of top-level elements, `resourceType` included.
    pub fn len(&self) -> usize {
        self.value.as_object().map(|o| o.len()).unwrap_or(0)
    }

    /// True if the resource has no elements at all (never true for a parsed resource).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parser messages can span lines (sonic-rs adds the text around the error); reports are
/// one line per problem.
pub fn first_line(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_resources_and_names_problems() {
        let r = Resource::parse(br#"{"resourceType":"Patient","id":"p1","active":true}"#).unwrap();
        assert_eq!((r.resource_type(), r.id()), ("Patient", "p1"));
        assert!(matches!(
            Resource::parse(b"{nope"),
            Err(LineProblem::InvalidJson(_))
        ));
        assert_eq!(
            Resource::parse(b"[1]").unwrap_err(),
            LineProblem::NotAnObject
        );
        assert_eq!(
            Resource::parse(br#"{"id":"x"}"#).unwrap_err(),
            LineProblem::NoResourceType
        );
        assert_eq!(
            Resource::parse(br#"{"resourceType":"Condition"}"#).unwrap_err(),
            LineProblem::NoId {
                resource_type: "Condition".into()
            }
        );
        assert_eq!(
            Resource::parse(br#"{"resourceType":"Condition","id":""}"#).unwrap_err(),
            LineProblem::NoId {
                resource_type: "Condition".into()
            }
        );
    }

    #[test]
    fn set_id_rewrites() {
        let mut r = Resource::parse(br#"{"resourceType":"Patient","id":"p1"}"#).unwrap();
        r.set_id("p2");
        assert_eq!(r.id(), "p2");
    }
}
