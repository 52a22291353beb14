//! FHIR references as the wild has them: `Type/id`, `Type/id/_history/v`, `#contained`,
//! absolute URLs, `urn:uuid:` and `urn:oid:`.
//!
//! Parsing is lenient and never fails: a string that fits no form is [`Reference::Other`],
//! and callers (the de-identifier, the multiplier, hydration) decide what to do with it.

use crate::elements;

/// A parsed reference string, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    /// `Type/id` or `Type/id/_history/version`.
    Relative {
        resource_type: &'a str,
        id: &'a str,
        version: Option<&'a str>,
    },
    /// `http(s)://base/Type/id[/_history/version]`.
    Absolute {
        base: &'a str,
        resource_type: &'a str,
        id: &'a str,
        version: Option<&'a str>,
    },
    /// `#id`: a resource in the same resource's `contained` list (`#` alone is the container).
    Contained(&'a str),
    /// `urn:uuid:...`, the id part only.
    UrnUuid(&'a str),
    /// `urn:oid:...`, the id part only.
    UrnOid(&'a str),
    /// Anything else (a canonical URL to a non-resource, a logical id, garbage).
    Other(&'a str),
}

/// Parses one reference string.
pub fn parse(s: &str) -> Reference<'_> {
    if let Some(rest) = s.strip_prefix('#') {
        return Reference::Contained(rest);
    }
    if let Some(rest) = s.strip_prefix("urn:uuid:") {
        return Reference::UrnUuid(rest);
    }
    if let Some(rest) = s.strip_prefix("urn:oid:") {
        return Reference::UrnOid(rest);
    }
    let is_absolute = s.starts_with("http://") || s.starts_with("https://");
    // Look at the last two (or four, with _history) path segments.
    let parts: Vec<&str> = s.rsplitn(5, '/').collect();
    let (type_at, id_at, version) = if parts.len() >= 4 && parts[1] == "_history" {
        (3, 2, Some(parts[0]))
    } else {
        (1, 0, None)
    };
    let (Some(&resource_type), Some(&id)) = (parts.get(type_at), parts.get(id_at)) else {
        return Reference::Other(s);
    };
    if elements::resource_type(resource_type).is_none() || !is_valid_id(id) {
        return Reference::Other(s);
    }
    if is_absolute {
        // The base is everything before "/Type/".
        let type_start = type_start_offset(s, resource_type, id, version);
        match type_start {
            Some(off) if off > 0 => Reference::Absolute {
                base: &s[..off - 1],
                resource_type,
                id,
                version,
            },
            _ => Reference::Other(s),
        }
    } else if parts.len() == type_at + 1 {
        Reference::Relative {
            resource_type,
            id,
            version,
        }
    } else {
        Reference::Other(s)
    }
}

fn type_start_offset(
    s: &str,
    resource_type: &str,
    id: &str,
    version: Option<&str>,
) -> Option<usize> {
    let tail_len = resource_type.len()
        + 1
        + id.len()
        + version.map(|v| "/_history/".len() + v.len()).unwrap_or(0);
    s.len().checked_sub(tail_len)
}

/// True for strings that are valid FHIR ids: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

impl Reference<'_> {
    /// The same reference with its id replaced, in its original form; `None` for forms
    /// without an id ([`Reference::Other`]).
    pub fn with_id(&self, new_id: &str) -> Option<String> {
        Some(match *self {
            Reference::Relative {
                resource_type,
                version,
                ..
            } => match version {
                Some(v) => format!("{resource_type}/{new_id}/_history/{v}"),
                None => format!("{resource_type}/{new_id}"),
            },
            Reference::Absolute {
                base,
                resource_type,
                version,
                ..
            } => match version {
                Some(v) => format!("{base}/{resource_type}/{new_id}/_history/{v}"),
                None => format!("{base}/{resource_type}/{new_id}"),
            },
            Reference::Contained(_) => format!("#{new_id}"),
            Reference::UrnUuid(_) => format!("urn:uuid:{new_id}"),
            Reference::UrnOid(_) => format!("urn:oid:{new_id}"),
            Reference::Other(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            parse("Patient/123"),
            Reference::Relative {
                resource_type: "Patient",
                id: "123",
                version: None
            }
        );
        assert_eq!(
            parse("Patient/123/_history/4"),
            Reference::Relative {
                resource_type: "Patient",
                id: "123",
                version: Some("4")
            }
        );
        assert_eq!(
            parse("https://ehr.example.org/fhir/R4/Encounter/e-1"),
            Reference::Absolute {
                base: "https://ehr.example.org/fhir/R4",
                resource_type: "Encounter",
                id: "e-1",
                version: None
            }
        );
        assert_eq!(
            parse("http://x/Encounter/e/_history/2"),
            Reference::Absolute {
                base: "http://x",
                resource_type: "Encounter",
                id: "e",
                version: Some("2")
            }
        );
        assert_eq!(parse("#med1"), Reference::Contained("med1"));
        assert_eq!(parse("urn:uuid:abc"), Reference::UrnUuid("abc"));
        assert_eq!(parse("urn:oid:1.2.3"), Reference::UrnOid("1.2.3"));
        assert_eq!(parse("Nope/123"), Reference::Other("Nope/123"));
        assert_eq!(parse("a/Patient/123"), Reference::Other("a/Patient/123"));
        assert_eq!(parse("Patient/"), Reference::Other("Patient/"));
        assert_eq!(parse("Patient/a b"), Reference::Other("Patient/a b"));
    }

    proptest::proptest! {
        /// Replacing an id and parsing again gives the same form with the new id.
        #[test]
        fn with_id_round_trips(
            t in proptest::sample::select(vec!["Patient", "Encounter", "Binary", "PractitionerRole"]),
            id in "[A-Za-z0-9.-]{1,64}",
            new in "[A-Za-z0-9.-]{1,64}",
            base in proptest::option::of("https?://[a-z]{1,10}(/[a-z0-9]{1,5}){0,3}"),
            version in proptest::option::of("[0-9]{1,3}"),
        ) {
            let mut s = match &base { Some(b) => format!("{b}/{t}/{id}"), None => format!("{t}/{id}") };
            if let Some(v) = &version {
                s.push_str(&format!("/_history/{v}"));
            }
            let parsed = parse(&s);
            let rewritten = parsed.with_id(&new).unwrap();
            let again = parse(&rewritten);
            match (parsed, again) {
                (Reference::Relative { resource_type: a, version: va, .. },
                 Reference::Relative { resource_type: b, id, version: vb }) => {
                    proptest::prop_assert!(base.is_none());
                    proptest::prop_assert_eq!((a, va), (b, vb));
                    proptest::prop_assert_eq!(id, new.as_str());
                }
                (Reference::Absolute { base: ba, resource_type: a, version: va, .. },
                 Reference::Absolute { base: bb, resource_type: b, id, version: vb }) => {
                    proptest::prop_assert_eq!(Some(ba), base.as_deref());
                    proptest::prop_assert_eq!((ba, a, va), (bb, b, vb));
                    proptest::prop_assert_eq!(id, new.as_str());
                }
                other => proptest::prop_assert!(false, "{:?} from {}", other, s),
            }
        }
    }

    #[test]
    fn replaces_ids_keeping_the_form() {
        assert_eq!(
            parse("Patient/1").with_id("2").as_deref(),
            Some("Patient/2")
        );
        assert_eq!(
            parse("http://x/fhir/Patient/1/_history/3")
                .with_id("2")
                .as_deref(),
            Some("http://x/fhir/Patient/2/_history/3")
        );
        assert_eq!(
            parse("urn:uuid:1").with_id("2").as_deref(),
            Some("urn:uuid:2")
        );
        assert_eq!(parse("whatever").with_id("2"), None);
    }
}
