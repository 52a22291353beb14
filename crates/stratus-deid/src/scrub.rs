//! The scrubber: walks a resource with its type's field table, keeps what the allow-list
//! names (hashing ids, rewriting references, masking, generalising dates and zip codes)
//! and drops everything else. A resource whose shape does not fit the rules, that carries
//! an unknown modifier extension, or an unusable reference is rejected whole: half a
//! resource is worse than none.

use std::collections::BTreeMap;
use std::sync::Mutex;

use stratus_fhir::sonic_rs::{
    JsonContainerTrait, JsonValueMutTrait, JsonValueTrait, Object, Value,
};

use crate::codebook::Codebook;
use crate::rules::{Action, Fields, RuleSet};

const DAR_URL: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
const EPIC_OID: &str = "urn:oid:1.2.840.114350.";
const RESTRICTED_ZIPS: [&str; 14] = [
    "036", "059", "102", "203", "205", "369", "556", "692", "821", "823", "878", "879", "884",
    "893",
];

/// Why a resource was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// What the scrubber dropped, for the end-of-run report.
#[derive(Debug, Default, Clone)]
pub struct ScrubReport {
    /// Extension URLs dropped (not allowed, not on the ignore list), with counts.
    pub dropped_extensions: BTreeMap<String, u64>,
    /// Resources skipped for a modifier extension, by URL.
    pub modifier_skips: BTreeMap<String, u64>,
}

/// Applies the rules with one codebook.
pub struct Scrubber<'a> {
    rules: &'static RuleSet,
    book: &'a Codebook,
    report: Mutex<ScrubReport>,
}

enum Kept {
    Keep,
    Drop,
    Mask,
    EpicMask,
}

struct Ctx<'r> {
    resource_type: &'r str,
    in_extension: bool,
}

impl<'a> Scrubber<'a> {
    pub fn new(book: &'a Codebook) -> Scrubber<'a> {
        Scrubber {
            rules: RuleSet::builtin(),
            book,
            report: Mutex::new(ScrubReport::default()),
        }
    }

    pub fn report(&self) -> ScrubReport {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Scrubs one resource in place.
    pub fn scrub(&self, resource: &mut Value) -> Result<(), Rejected> {
        let obj = resource
            .as_object_mut()
            .ok_or_else(|| Rejected("not a JSON object".into()))?;
        let rtype = obj
            .get(&"resourceType")
            .and_then(|t| t.as_str())
            .ok_or_else(|| Rejected("no resourceType".into()))?
            .to_owned();
        let fields = self.rules.fields(&rtype);
        let ctx = Ctx {
            resource_type: &rtype,
            in_extension: false,
        };
        self.object(obj, fields, "Resource", &ctx)
    }

    fn object(
        &self,
        obj: &mut Object,
        fields: &Fields,
        type_name: &str,
        ctx: &Ctx,
    ) -> Result<(), Rejected> {
        // This runs for every object of every resource: copy the code out (the retain below
        // borrows the object) only where the Epic rule will read it.
        let epic = obj
            .get(&"system")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.starts_with(EPIC_OID));
        let code = if epic {
            obj.get(&"code")
                .and_then(|c| c.as_str())
                .map(|c| c.trim().to_owned())
        } else {
            None
        };
        let ref_type = if type_name == "Reference" {
            obj.get(&"type").and_then(|t| t.as_str()).map(str::to_owned)
        } else {
            None
        };
        let mut err: Option<Rejected> = None;
        let mut masks: Vec<String> = Vec::new();
        let mut epic_masked = false;
        obj.retain(|key, value| {
            if err.is_some() {
                return true;
            }
            if value.is_null() {
                return false;
            }
            if let Some(base) = key.strip_prefix('_') {
                if fields.get(base).is_none() {
                    return false;
                }
                return match self.primitive_extension(value, ctx) {
                    Ok(keep) => keep,
                    Err(e) => {
                        err = Some(e);
                        true
                    }
                };
            }
            let Some(field) = fields.field(key) else {
                return false;
            };
            if let Some(list) = field.list
                && value.is_array() != list
            {
                err = Some(cardinality(ctx, type_name, key, list));
                return true;
            }
            let r = self.apply(
                key,
                value,
                &field.action,
                ctx,
                &ref_type,
                epic,
                code.as_deref(),
            );
            match r {
                Ok(Kept::Keep) => true,
                Ok(Kept::Drop) => false,
                Ok(Kept::Mask) => {
                    masks.push(key.to_owned());
                    false
                }
                Ok(Kept::EpicMask) => {
                    epic_masked = true;
                    false
                }
                Err(e) => {
                    err = Some(e);
                    true
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        for k in masks {
            let slot = format!("_{k}");
            if obj.get(&slot).and_then(|v| v.as_object()).is_none() {
                obj.insert(&slot, Value::new_object());
            }
            if let Some(o) = obj.get_mut(&slot).and_then(|v| v.as_object_mut()) {
                add_dar(o);
            }
        }
        if epic_masked {
            add_dar(obj);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        key: &str,
        value: &mut Value,
        action: &Action,
        ctx: &Ctx,
        ref_type: &Option<String>,
        epic: bool,
        code: Option<&str>,
    ) -> Result<Kept, Rejected> {
        match action {
            Action::Type(name) if &**name == "Extension" => self.extensions(key, value, ctx),
            Action::Type(name) => {
                let fields = self.rules.fields(name);
                self.structs(key, value, ctx, |o| {
                    self.object(o, fields, name, ctx).map(|()| true)
                })
            }
            Action::TypeIf {
                name,
                key: k,
                values,
            } => {
                let fields = self.rules.fields(name);
                self.structs(key, value, ctx, |o| {
                    let matches = o
                        .get(&k.as_str())
                        .and_then(|v| v.as_str())
                        .is_some_and(|v| values.iter().any(|x| x == v));
                    if !matches {
                        return Ok(false);
                    }
                    self.object(o, fields, name, ctx).map(|()| true)
                })
            }
            Action::Backbone(fields) => self.structs(key, value, ctx, |o| {
                self.object(o, fields, "BackboneElement", ctx)
                    .map(|()| true)
            }),
            Action::Resource => self.structs(key, value, ctx, |o| {
                let rtype = o
                    .get(&"resourceType")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let fields = self.rules.fields(&rtype);
                let inner = Ctx {
                    resource_type: &rtype,
                    in_extension: false,
                };
                self.object(o, fields, "Resource", &inner).map(|()| true)
            }),
            Action::AnonRef => {
                let Some(r) = value.as_str() else {
                    return Err(shape(ctx, "anon-ref", key));
                };
                let new = self.reference(r, ref_type.as_deref())?;
                *value = Value::from(new.as_str());
                Ok(Kept::Keep)
            }
            Action::CheckSystem(inner) if epic => {
                let integer = code.is_some_and(is_integer);
                let keep = match key {
                    "code" => code.is_none() || integer,
                    _ => integer && code != Some("0"),
                };
                if keep {
                    self.primitives(key, value, inner, ctx)
                } else {
                    Ok(Kept::EpicMask)
                }
            }
            Action::CheckSystem(inner) => self.primitives(key, value, inner, ctx),
            other => self.primitives(key, value, other, ctx),
        }
    }

    /// A final action on a primitive or a list of primitives.
    fn primitives(
        &self,
        key: &str,
        value: &mut Value,
        action: &Action,
        ctx: &Ctx,
    ) -> Result<Kept, Rejected> {
        if let Some(items) = value.as_array_mut() {
            let mut err = None;
            let mut masked = false;
            items.retain_mut(|v| {
                if err.is_some() || v.is_null() {
                    return false;
                }
                match self.primitive(key, v, action, ctx) {
                    Ok(Kept::Keep) => true,
                    Ok(Kept::Mask | Kept::EpicMask) => {
                        masked = true;
                        false
                    }
                    Ok(Kept::Drop) => false,
                    Err(e) => {
                        err = Some(e);
                        false
                    }
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            if masked {
                return Ok(Kept::Mask);
            }
            return Ok(if items.is_empty() {
                Kept::Drop
            } else {
                Kept::Keep
            });
        }
        self.primitive(key, value, action, ctx)
    }

    fn primitive(
        &self,
        key: &str,
        value: &mut Value,
        action: &Action,
        ctx: &Ctx,
    ) -> Result<Kept, Rejected> {
        if value.is_object() || value.is_array() {
            return Err(shape(ctx, &format!("{action:?}"), key));
        }
        let text = value.as_str().map(str::trim);
        if text == Some("") {
            return Ok(Kept::Drop);
        }
        if let Some(t) = text
            && t.len() != value.as_str().map_or(0, str::len)
        {
            *value = Value::from(t);
        }
        match action {
            Action::Val | Action::Philter => Ok(Kept::Keep),
            Action::Mask | Action::MaskNote => Ok(Kept::Mask),
            Action::AnonId => {
                let Some(id) = value.as_str() else {
                    return Err(shape(ctx, "anon-id", key));
                };
                let fake = if key == "id" && !ctx.in_extension {
                    self.book.fake_id(ctx.resource_type, id, true)
                } else {
                    self.book.fake_id("", id, false)
                };
                *value = Value::from(fake.as_str());
                Ok(Kept::Keep)
            }
            Action::Year => {
                if let Some(s) = value.as_str() {
                    let y: String = s.chars().take(4).collect();
                    *value = Value::from(y.as_str());
                }
                Ok(Kept::Keep)
            }
            Action::Zip => {
                if let Some(s) = value.as_str() {
                    let z = zip(s);
                    *value = Value::from(z.as_str());
                }
                Ok(Kept::Keep)
            }
            _ => Err(shape(ctx, &format!("{action:?}"), key)),
        }
    }

    /// One struct or a list of structs, each handled by `f` (which says whether to keep it).
    fn structs(
        &self,
        key: &str,
        value: &mut Value,
        ctx: &Ctx,
        mut f: impl FnMut(&mut Object) -> Result<bool, Rejected>,
    ) -> Result<Kept, Rejected> {
        if let Some(items) = value.as_array_mut() {
            let mut err = None;
            items.retain_mut(|v| {
                if err.is_some() {
                    return false;
                }
                let Some(o) = v.as_object_mut() else {
                    err = Some(shape(ctx, "struct", key));
                    return false;
                };
                match f(o) {
                    Ok(keep) => keep && !o.is_empty(),
                    Err(e) => {
                        err = Some(e);
                        false
                    }
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
            return Ok(if items.is_empty() {
                Kept::Drop
            } else {
                Kept::Keep
            });
        }
        let Some(o) = value.as_object_mut() else {
            return Err(shape(ctx, "struct", key));
        };
        Ok(if f(o)? && !o.is_empty() {
            Kept::Keep
        } else {
            Kept::Drop
        })
    }

    /// `extension` and `modifierExtension` lists: the URL lists decide, except inside an
    /// extension, where only the Extension rules apply.
    fn extensions(&self, key: &str, value: &mut Value, ctx: &Ctx) -> Result<Kept, Rejected> {
        let fields = self.rules.fields("Extension");
        let inner = Ctx {
            resource_type: ctx.resource_type,
            in_extension: true,
        };
        let modifier = key == "modifierExtension";
        let in_ext = ctx.in_extension;
        self.structs(key, value, ctx, |o| {
            // Copied only when reported: most extensions are allowed and need no copy.
            let url = o.get(&"url").and_then(|u| u.as_str()).unwrap_or_default();
            if modifier {
                if !self.rules.modifiers_allowed.contains(url) {
                    let mut r = self.report.lock().unwrap_or_else(|p| p.into_inner());
                    *r.modifier_skips.entry(url.to_owned()).or_default() += 1;
                    return Err(Rejected(format!("unrecognized modifier extension {url}")));
                }
            } else if !in_ext && !self.rules.extensions_allowed.contains(url) {
                if !self.rules.extensions_ignored.contains(url) {
                    let mut r = self.report.lock().unwrap_or_else(|p| p.into_inner());
                    *r.dropped_extensions.entry(url.to_owned()).or_default() += 1;
                }
                return Ok(false);
            }
            self.object(o, fields, "Extension", &inner).map(|()| true)
        })
    }

    /// `_key` siblings of primitives: only their extensions survive.
    fn primitive_extension(&self, value: &mut Value, ctx: &Ctx) -> Result<bool, Rejected> {
        let fields = self.rules.fields("Element");
        if let Some(items) = value.as_array_mut() {
            let mut err = None;
            for v in items.iter_mut() {
                if let Some(o) = v.as_object_mut()
                    && let Err(e) = self.object(o, fields, "Element", ctx)
                {
                    err = Some(e);
                }
                if v.as_object().is_some_and(|o| o.is_empty()) {
                    *v = Value::new_null();
                }
            }
            if let Some(e) = err {
                return Err(e);
            }
            return Ok(items.iter().any(|v| !v.is_null()));
        }
        match value.as_object_mut() {
            Some(o) => {
                self.object(o, fields, "Element", ctx)?;
                Ok(!o.is_empty())
            }
            None => Ok(false),
        }
    }

    /// Rewrites a reference: `Type/id` → `Type/hash(id)`, `#id` → `#hash(id)`, `Type?query`
    /// → `Type/hash(query)`, a bare id or URL with a sibling `type` → `Type/hash(...)`.
    fn reference(&self, r: &str, ref_type: Option<&str>) -> Result<String, Rejected> {
        if let Some(local) = r.strip_prefix('#') {
            return Ok(format!("#{}", self.book.fake_id("", local, false)));
        }
        let absolute = r.contains("://") || r.starts_with("urn:");
        if !absolute && let Some(i) = r.find(['/', '?']) {
            let (t, rest) = (&r[..i], &r[i + 1..]);
            if !t.is_empty()
                && t.chars().all(|c| c.is_ascii_alphabetic())
                && t.starts_with(|c: char| c.is_ascii_uppercase())
                && !rest.is_empty()
            {
                return Ok(format!("{t}/{}", self.book.fake_id(t, rest, true)));
            }
        }
        match ref_type {
            Some(t) if !t.is_empty() && !r.is_empty() && (absolute || !r.contains('/')) => {
                Ok(format!("{t}/{}", self.book.fake_id(t, r, true)))
            }
            _ => Err(Rejected(format!("Could not parse value: {r}"))),
        }
    }
}

fn add_dar(o: &mut Object) {
    let has = o
        .get(&"extension")
        .and_then(|e| e.as_array())
        .is_some_and(|list| {
            list.iter()
                .any(|x| x.get("url").and_then(|u| u.as_str()) == Some(DAR_URL))
        });
    if has {
        return;
    }
    let mut dar = Value::new_object();
    if let Some(d) = dar.as_object_mut() {
        d.insert(&"url", Value::from(DAR_URL));
        d.insert(&"valueCode", Value::from("masked"));
    }
    match o.get_mut(&"extension").and_then(|e| e.as_array_mut()) {
        Some(list) => list.push(dar),
        None => {
            let mut list = Value::new_array();
            if let Some(l) = list.as_array_mut() {
                l.push(dar);
            }
            o.insert(&"extension", list);
        }
    }
}

fn is_integer(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// First three characters kept (or `000` for the restricted prefixes); digits 1-9 after
/// them become 0.
pub fn zip(s: &str) -> String {
    let head: String = s.chars().take(3).collect();
    let head = if RESTRICTED_ZIPS.contains(&head.as_str()) {
        "000".to_owned()
    } else {
        head
    };
    let tail: String = s
        .chars()
        .skip(3)
        .map(|c| if ('1'..='9').contains(&c) { '0' } else { c })
        .collect();
    head + &tail
}

/// A list where R4 allows one value, or one value where it wants a list.
fn cardinality(ctx: &Ctx, type_name: &str, key: &str, list: bool) -> Rejected {
    let within = match type_name {
        "Resource" | "BackboneElement" => String::new(),
        t => format!(" (in a {t})"),
    };
    let (got, want) = if list {
        ("one value", "a list")
    } else {
        ("a list", "one value")
    };
    Rejected(format!(
        "{} element '{key}'{within} is {got} where FHIR R4 wants {want}",
        ctx.resource_type
    ))
}

fn shape(ctx: &Ctx, action: &str, key: &str) -> Rejected {
    Rejected(format!(
        "Unexpected formatting for resource {}, action {action}, key {key}.",
        ctx.resource_type
    ))
}
