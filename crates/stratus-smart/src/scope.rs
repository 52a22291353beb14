//! SMART scopes as the server grants them. v2 `system/Observation.rs` and v1
//! `system/Observation.read` both parse; many deployed servers know only v1, so a client
//! asking in either syntax gets its answer in the same syntax.
//!
//! A v2 scope may carry a `?query` (`system/Observation.rs?category=laboratory`). It is
//! parsed, granted and echoed, but it opens nothing through `can_read`/`can_search`: this
//! server does not filter results by such queries, and answering with more than the query
//! allows would defeat the restriction the client asked for.

use std::fmt;

const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;
const ALL: u8 = C | R | U | D | S;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    System,
    User,
    Patient,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ResourceScope {
    context: Context,
    /// `*` or a resource type.
    resource: String,
    perms: u8,
    v1: bool,
    /// The v2 `?query` restriction, without the `?`.
    query: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Resource(ResourceScope),
    /// `launch`, `openid`, ...: kept for display, grants nothing here.
    Other(String),
}

/// A set of SMART scopes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scopes {
    items: Vec<Item>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("malformed scope '{scope}': {why}")]
    Malformed { scope: String, why: &'static str },
    #[error("none of the requested scopes ({requested}) is within the client's ({allowed})")]
    NothingGranted { requested: String, allowed: String },
}

fn malformed(scope: &str, why: &'static str) -> ScopeError {
    ScopeError::Malformed {
        scope: scope.to_owned(),
        why,
    }
}

fn parse_one(s: &str) -> Result<Item, ScopeError> {
    let (context, rest) = match s.split_once('/') {
        Some(("system", r)) => (Context::System, r),
        Some(("user", r)) => (Context::User, r),
        Some(("patient", r)) => (Context::Patient, r),
        _ => return Ok(Item::Other(s.to_owned())),
    };
    let Some((resource, perm)) = rest.split_once('.') else {
        return Err(malformed(s, "expected Type.permissions, e.g. system/*.rs"));
    };
    let (perm, query) = match perm.split_once('?') {
        None => (perm, None),
        Some((_, "")) => return Err(malformed(s, "an empty ?query")),
        Some(("read" | "write" | "*", _)) => {
            return Err(malformed(
                s,
                "a ?query needs v2 permissions, e.g. system/Observation.rs?category=laboratory",
            ));
        }
        Some((p, q)) => (p, Some(q.to_owned())),
    };
    if resource != "*"
        && !(resource.starts_with(|c: char| c.is_ascii_uppercase())
            && resource.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(malformed(s, "the resource must be * or a resource type"));
    }
    let (perms, v1) = match perm {
        "read" => (R | S, true),
        "write" => (C | U | D, true),
        "*" => (ALL, true),
        letters => {
            let mut bits = 0;
            let mut last = 0;
            for ch in letters.chars() {
                let (bit, order) = match ch {
                    'c' => (C, 1),
                    'r' => (R, 2),
                    'u' => (U, 3),
                    'd' => (D, 4),
                    's' => (S, 5),
                    _ => {
                        return Err(malformed(
                            s,
                            "permissions are read, write, * or letters of cruds",
                        ));
                    }
                };
                if order <= last {
                    return Err(malformed(
                        s,
                        "cruds letters must appear once each, in that order",
                    ));
                }
                last = order;
                bits |= bit;
            }
            if bits == 0 {
                return Err(malformed(s, "no permissions"));
            }
            (bits, false)
        }
    };
    Ok(Item::Resource(ResourceScope {
        context,
        resource: resource.to_owned(),
        perms,
        v1,
        query,
    }))
}

impl ResourceScope {
    fn covers_type(&self, t: &str) -> bool {
        self.resource == "*" || self.resource == t
    }

    /// Whether this scope opens `t` with permission `bit` outright (no `?query`).
    fn opens(&self, t: &str, bit: u8) -> bool {
        self.query.is_none() && self.covers_type(t) && self.perms & bit != 0
    }

    /// Whether everything `want` allows is allowed by `self`.
    fn covers(&self, want: &ResourceScope) -> bool {
        self.covers_type(&want.resource)
            && self.perms & want.perms == want.perms
            && (self.query.is_none() || self.query == want.query)
    }

    fn render(&self) -> String {
        let ctx = match self.context {
            Context::System => "system",
            Context::User => "user",
            Context::Patient => "patient",
        };
        let perm = match (self.v1, self.perms) {
            (true, p) if p == R | S => "read".to_owned(),
            (true, p) if p == C | U | D => "write".to_owned(),
            (true, ALL) => "*".to_owned(),
            (_, p) => [(C, 'c'), (R, 'r'), (U, 'u'), (D, 'd'), (S, 's')]
                .iter()
                .filter(|(b, _)| p & b != 0)
                .map(|(_, c)| *c)
                .collect(),
        };
        match &self.query {
            Some(q) => format!("{ctx}/{}.{perm}?{q}", self.resource),
            None => format!("{ctx}/{}.{perm}", self.resource),
        }
    }
}

impl Scopes {
    /// Parses a space-separated scope string.
    pub fn parse(s: &str) -> Result<Scopes, ScopeError> {
        let items = s
            .split_whitespace()
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scopes { items })
    }

    /// `system/*.rs`: everything readable.
    pub fn all_read() -> Scopes {
        Scopes {
            items: vec![Item::Resource(ResourceScope {
                context: Context::System,
                resource: "*".into(),
                perms: R | S,
                v1: false,
                query: None,
            })],
        }
    }

    fn system(&self) -> impl Iterator<Item = &ResourceScope> {
        self.items.iter().filter_map(|i| match i {
            Item::Resource(r) if r.context == Context::System => Some(r),
            _ => None,
        })
    }

    /// True if a system scope without a `?query` lets the client read (`r`) resources of
    /// `resource_type`.
    pub fn can_read(&self, resource_type: &str) -> bool {
        self.system().any(|r| r.opens(resource_type, R))
    }

    /// True if a system scope without a `?query` lets the client search (`s`) resources of
    /// `resource_type`.
    pub fn can_search(&self, resource_type: &str) -> bool {
        self.system().any(|r| r.opens(resource_type, S))
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// What a client registered with `self` gets when it asks for `requested`: every
    /// requested system scope the registration covers, as asked (v1 or v2); one that is
    /// only partly covered is narrowed to the registered types and permissions it overlaps
    /// (so `system/*.rs` from a client registered for `system/Patient.rs` gets
    /// `system/Patient.rs`). Non-system and unknown scopes are never granted. An error if
    /// nothing at all can be granted.
    pub fn grant(&self, requested: &Scopes) -> Result<Scopes, ScopeError> {
        let mut out: Vec<Item> = Vec::new();
        let mut push = |r: ResourceScope| {
            let item = Item::Resource(r);
            if !out.contains(&item) {
                out.push(item);
            }
        };
        for want in requested.system() {
            if self.system().any(|have| have.covers(want)) {
                push(want.clone());
                continue;
            }
            for have in self.system() {
                let resource = if want.resource == "*" {
                    have.resource.clone()
                } else if have.covers_type(&want.resource) {
                    want.resource.clone()
                } else {
                    continue;
                };
                let query = match (&want.query, &have.query) {
                    (q, None) | (None, q) => q.clone(),
                    (Some(a), Some(b)) if a == b => Some(a.clone()),
                    // Two different queries do not intersect into one scope.
                    _ => continue,
                };
                let perms = want.perms & have.perms;
                if perms != 0 {
                    push(ResourceScope {
                        context: Context::System,
                        resource,
                        perms,
                        v1: want.v1
                            && query.is_none()
                            && matches!(perms, p if p == R | S || p == C | U | D || p == ALL),
                        query,
                    });
                }
            }
        }
        if out.is_empty() {
            return Err(ScopeError::NothingGranted {
                requested: requested.to_string(),
                allowed: self.to_string(),
            });
        }
        Ok(Scopes { items: out })
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .items
            .iter()
            .map(|i| match i {
                Item::Resource(r) => r.render(),
                Item::Other(s) => s.clone(),
            })
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Scopes {
        Scopes::parse(s).unwrap()
    }

    #[test]
    fn parses_v1_and_v2() {
        let s = p("system/*.read launch openid system/Observation.rs");
        assert!(s.can_read("Patient") && s.can_search("Patient"));
        assert_eq!(
            s.to_string(),
            "system/*.read launch openid system/Observation.rs"
        );
        let w = p("system/Patient.cud");
        assert!(!w.can_read("Patient") && !w.can_search("Patient"));
        let r = p("system/Patient.r");
        assert!(r.can_read("Patient") && !r.can_search("Patient") && !r.can_read("Encounter"));
        assert!(p("system/*.*").can_search("Encounter"));
        assert!(p("system/Patient.write").to_string() == "system/Patient.write");
        for other in ["patient/*.rs", "user/Observation.read", "launch", "openid"] {
            let s = p(other);
            assert!(!s.can_read("Patient") && !s.is_empty(), "{other}");
        }
        assert!(p("  ").is_empty());
    }

    #[test]
    fn malformed_scopes_are_named() {
        for bad in [
            "system/*.rx",
            "system/.rs",
            "system/*",
            "system/*.sr",
            "system/*.rr",
            "system/*.",
            "system/obs.rs",
            "system/Patient.read?x=1",
            "system/*.rs?",
            "patient/*.bogus",
        ] {
            let e = Scopes::parse(&format!("system/*.rs {bad}")).unwrap_err();
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn queries_parse_and_echo_but_open_nothing() {
        let q = p("system/Observation.rs?category=laboratory");
        assert_eq!(q.to_string(), "system/Observation.rs?category=laboratory");
        assert!(!q.can_read("Observation") && !q.can_search("Observation"));
        let g = Scopes::all_read().grant(&q).unwrap();
        assert_eq!(g.to_string(), "system/Observation.rs?category=laboratory");
        // A registration restricted by a query narrows a broad request to that query.
        let g = q.grant(&p("system/*.rs")).unwrap();
        assert_eq!(g.to_string(), "system/Observation.rs?category=laboratory");
        assert!(q.grant(&p("system/Observation.rs?code=1234-5")).is_err());
    }

    #[test]
    fn grants_within_registration() {
        let all = Scopes::all_read();
        assert_eq!(
            all.grant(&p("system/*.read")).unwrap().to_string(),
            "system/*.read"
        );
        assert_eq!(
            all.grant(&p("system/*.rs")).unwrap().to_string(),
            "system/*.rs"
        );
        assert_eq!(
            all.grant(&p("launch system/Patient.read"))
                .unwrap()
                .to_string(),
            "system/Patient.read"
        );
        let narrow = p("system/Patient.rs system/Observation.rs");
        let g = narrow.grant(&p("system/*.rs")).unwrap();
        assert_eq!(g.to_string(), "system/Patient.rs system/Observation.rs");
        assert!(g.can_read("Patient") && !g.can_read("Condition"));
        let g = narrow.grant(&p("system/*.read")).unwrap();
        assert_eq!(g.to_string(), "system/Patient.read system/Observation.read");
        let e = narrow.grant(&p("system/Condition.rs")).unwrap_err();
        assert!(e.to_string().contains("system/Condition.rs"), "{e}");
        assert!(all.grant(&p("system/*.cud")).is_err());
        assert!(all.grant(&p("patient/*.rs")).is_err());
        // Partly covered permissions are intersected: cruds within rs is rs.
        assert_eq!(
            all.grant(&p("system/*.cruds")).unwrap().to_string(),
            "system/*.rs"
        );
        // A v1 request narrowed to permissions v1 cannot spell falls back to v2 letters.
        let read_only = p("system/Patient.r");
        assert_eq!(
            read_only.grant(&p("system/*.read")).unwrap().to_string(),
            "system/Patient.r"
        );
    }
}
