//! SMART scopes as the server grants them. v2 `system/Observation.rs` and v1
//! `system/Observation.read` both parse; many deployed servers know only v1, so a client
//! asking in either syntax gets its answer in the same syntax.

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
    if perm.contains('?') {
        return Err(malformed(
            s,
            "scopes with a ?query are not supported by this server",
        ));
    }
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
    }))
}

impl ResourceScope {
    fn covers_type(&self, t: &str) -> bool {
        self.resource == "*" || self.resource == t
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
        format!("{ctx}/{}.{perm}", self.resource)
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
            })],
        }
    }

    fn system(&self) -> impl Iterator<Item = &ResourceScope> {
        self.items.iter().filter_map(|i| match i {
            Item::Resource(r) if r.context == Context::System => Some(r),
            _ => None,
        })
    }

    /// True if a system scope lets the client read resources of `resource_type`.
    pub fn can_read(&self, resource_type: &str) -> bool {
        self.system()
            .any(|r| r.covers_type(resource_type) && r.perms & R != 0)
    }

    /// True if a system scope lets the client search resources of `resource_type`.
    pub fn can_search(&self, resource_type: &str) -> bool {
        self.system()
            .any(|r| r.covers_type(resource_type) && r.perms & S != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// What a client registered with `self` gets when it asks for `requested`: every
    /// requested system scope the registration covers, as asked; one that is only partly
    /// covered is narrowed to the registered types and permissions it overlaps.
    pub fn grant(&self, requested: &Scopes) -> Result<Scopes, ScopeError> {
        let mut out: Vec<Item> = Vec::new();
        let mut push = |r: ResourceScope| {
            let item = Item::Resource(r);
            if !out.contains(&item) {
                out.push(item);
            }
        };
        for want in requested.system() {
            let covered = self.system().any(|have| {
                (have.resource == "*" || have.resource == want.resource)
                    && have.perms & want.perms == want.perms
            });
            if covered {
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
                let perms = want.perms & have.perms;
                if perms != 0 {
                    push(ResourceScope {
                        context: Context::System,
                        resource,
                        perms,
                        v1: want.v1
                            && matches!(perms, p if p == R | S || p == C | U | D || p == ALL),
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

    #[test]
    fn parses_v1_and_v2() {
        let s = Scopes::parse("system/*.read launch system/Observation.rs").unwrap();
        assert!(s.can_read("Patient") && s.can_search("Patient"));
        assert_eq!(s.to_string(), "system/*.read launch system/Observation.rs");
        let w = Scopes::parse("system/Patient.cud").unwrap();
        assert!(!w.can_read("Patient"));
        assert!(
            Scopes::parse("patient/*.rs")
                .map(|s| !s.can_read("Patient"))
                .unwrap()
        );
        for bad in [
            "system/*.rx",
            "system/.rs",
            "system/*",
            "system/*.sr",
            "system/*.rr",
            "system/obs.rs",
            "system/*.rs?x=1",
        ] {
            assert!(Scopes::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_within_registration() {
        let all = Scopes::all_read();
        let v1 = Scopes::parse("system/*.read").unwrap();
        assert_eq!(all.grant(&v1).unwrap().to_string(), "system/*.read");
        let narrow = Scopes::parse("system/Patient.rs system/Observation.rs").unwrap();
        let g = narrow
            .grant(&Scopes::parse("system/*.rs").unwrap())
            .unwrap();
        assert_eq!(g.to_string(), "system/Patient.rs system/Observation.rs");
        assert!(g.can_read("Patient") && !g.can_read("Condition"));
        let g = narrow
            .grant(&Scopes::parse("system/*.read").unwrap())
            .unwrap();
        assert_eq!(g.to_string(), "system/Patient.read system/Observation.read");
        assert!(
            narrow
                .grant(&Scopes::parse("system/Condition.rs").unwrap())
                .is_err()
        );
        assert!(all.grant(&Scopes::parse("system/*.cud").unwrap()).is_err());
        let g = all
            .grant(&Scopes::parse("system/*.cruds").unwrap())
            .unwrap();
        assert_eq!(g.to_string(), "system/*.rs");
    }
}
