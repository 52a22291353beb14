//! A compact JSON writer with shorthands for the FHIR datatypes the generator uses.
//!
//! Resources are written straight into a byte buffer instead of being built as
//! `sonic_rs::Value` trees: a population is a few hundred million small objects, and
//! skipping the tree (allocation per node, then a sorted-key serialisation pass) is what
//! makes the generator fast. It also keeps keys in the order FHIR examples use
//! (`resourceType`, `id`, `meta`, ...), which is easier to read than sorted keys. Every test
//! parses the output back, so a malformed line cannot go unnoticed.

use std::fmt::{self, Write as _};

use super::codes::{Code, UCUM};
use super::time::Stamp;

/// A JSON document being written. Keys are always static identifiers (never escaped); string
/// values are escaped.
pub(super) struct Json {
    buf: Vec<u8>,
    /// Whether the next value or key needs a separating comma.
    comma: bool,
}

impl Json {
    /// Starts an empty document in `buf` (cleared), reusing its allocation.
    pub fn with_buffer(mut buf: Vec<u8>) -> Json {
        buf.clear();
        Json { buf, comma: false }
    }

    /// The bytes written.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Gives the buffer back for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn sep(&mut self) {
        if self.comma {
            self.buf.push(b',');
        }
    }

    fn key(&mut self, k: &str) {
        self.sep();
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.comma = false;
    }

    /// Opens an object as a value (top level, array item, or after a key).
    pub fn open(&mut self) {
        self.sep();
        self.buf.push(b'{');
        self.comma = false;
    }

    /// Closes the innermost object.
    pub fn close(&mut self) {
        self.buf.push(b'}');
        self.comma = true;
    }

    fn open_array(&mut self) {
        self.sep();
        self.buf.push(b'[');
        self.comma = false;
    }

    fn close_array(&mut self) {
        self.buf.push(b']');
        self.comma = true;
    }

    fn string_value(&mut self, v: &str) {
        self.sep();
        self.buf.push(b'"');
        escape_into(&mut self.buf, v);
        self.buf.push(b'"');
        self.comma = true;
    }

    /// `"k":"v"`.
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.string_value(v);
    }

    /// `"k":"<formatted>"`, formatting straight into the buffer (escaped).
    pub fn str_fmt(&mut self, k: &str, args: fmt::Arguments<'_>) {
        self.key(k);
        self.sep();
        self.buf.push(b'"');
        // Writing into a Vec cannot fail.
        let _ = Escaping(&mut self.buf).write_fmt(args);
        self.buf.push(b'"');
        self.comma = true;
    }

    /// `"k":n`.
    pub fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(Escaping(&mut self.buf), "{v}");
        self.comma = true;
    }

    /// `"k":v` with `places` decimals (FHIR decimals keep their precision as written).
    pub fn dec(&mut self, k: &str, v: f64, places: usize) {
        self.key(k);
        let v = if v.is_finite() { v } else { 0.0 };
        let _ = write!(Escaping(&mut self.buf), "{v:.places$}");
        self.comma = true;
    }

    /// `"k":true|false`.
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
        self.comma = true;
    }

    /// `"k":{...}`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Json)) {
        self.key(k);
        self.open();
        f(self);
        self.close();
    }

    /// `"k":[...]`; `f` adds items with [`Json::item`] or [`Json::item_str`].
    pub fn arr(&mut self, k: &str, f: impl FnOnce(&mut Json)) {
        self.key(k);
        self.open_array();
        f(self);
        self.close_array();
    }

    /// One object inside an array.
    pub fn item(&mut self, f: impl FnOnce(&mut Json)) {
        self.open();
        f(self);
        self.close();
    }

    /// One string inside an array.
    pub fn item_str(&mut self, v: &str) {
        self.string_value(v);
    }

    /// `"k":"<dateTime>"` with seconds and offset.
    pub fn datetime(&mut self, k: &str, t: Stamp) {
        self.key(k);
        self.sep();
        self.buf.push(b'"');
        t.write_datetime(&mut self.buf);
        self.buf.push(b'"');
        self.comma = true;
    }

    /// `"k":"<instant>"` with milliseconds and offset.
    pub fn instant(&mut self, k: &str, t: Stamp, millis: u32) {
        self.key(k);
        self.sep();
        self.buf.push(b'"');
        t.write_instant(&mut self.buf, millis);
        self.buf.push(b'"');
        self.comma = true;
    }

    /// `"k":"YYYY-MM-DD"`.
    pub fn date(&mut self, k: &str, t: Stamp) {
        self.key(k);
        self.sep();
        self.buf.push(b'"');
        t.write_date(&mut self.buf);
        self.buf.push(b'"');
        self.comma = true;
    }

    // ---- FHIR datatypes -------------------------------------------------------------------

    /// A Coding object as an array item.
    pub fn coding_item(&mut self, c: &Code) {
        self.item(|j| {
            j.str("system", c.system);
            j.str("code", c.code);
            j.str("display", c.display);
        });
    }

    /// `"k":{"coding":[c],"text":display}`.
    pub fn concept(&mut self, k: &str, c: &Code) {
        self.obj(k, |j| {
            j.arr("coding", |j| j.coding_item(c));
            j.str("text", c.display);
        });
    }

    /// A CodeableConcept with several codings (the same idea in several systems) as `"k"`.
    pub fn concept_multi(&mut self, k: &str, codes: &[&Code], text: &str) {
        self.obj(k, |j| {
            j.arr("coding", |j| {
                for c in codes {
                    j.coding_item(c);
                }
            });
            j.str("text", text);
        });
    }

    /// `"k":[{"coding":[c],"text":display}]`: the common one-element list of concepts.
    pub fn concept_list(&mut self, k: &str, c: &Code) {
        self.arr(k, |j| {
            j.item(|j| {
                j.arr("coding", |j| j.coding_item(c));
                j.str("text", c.display);
            })
        });
    }

    /// A CodeableConcept with a coding only (no text), for status-like codes.
    pub fn coded(&mut self, k: &str, c: &Code) {
        self.obj(k, |j| j.arr("coding", |j| j.coding_item(c)));
    }

    /// `"k":{"reference":"Type/id"}`.
    pub fn reference(&mut self, k: &str, resource_type: &str, id: &str) {
        self.obj(k, |j| j.reference_field(resource_type, id));
    }

    /// `{"reference":"Type/id"}` as an array item.
    pub fn reference_item(&mut self, resource_type: &str, id: &str) {
        self.item(|j| j.reference_field(resource_type, id));
    }

    /// `"k":[{"reference":"Type/id"}]`.
    pub fn reference_list(&mut self, k: &str, resource_type: &str, id: &str) {
        self.arr(k, |j| j.reference_item(resource_type, id));
    }

    fn reference_field(&mut self, resource_type: &str, id: &str) {
        self.str_fmt("reference", format_args!("{resource_type}/{id}"));
    }

    /// A UCUM Quantity.
    pub fn quantity(&mut self, k: &str, value: f64, places: usize, unit: &str, code: &str) {
        self.obj(k, |j| j.quantity_fields(value, places, unit, code));
    }

    /// The fields of a UCUM Quantity inside an already open object.
    pub fn quantity_fields(&mut self, value: f64, places: usize, unit: &str, code: &str) {
        self.dec("value", value, places);
        self.str("unit", unit);
        self.str("system", UCUM);
        self.str("code", code);
    }

    /// `"k":{"start":..,"end":..}`.
    pub fn period(&mut self, k: &str, start: Stamp, end: Option<Stamp>) {
        self.obj(k, |j| {
            j.datetime("start", start);
            if let Some(e) = end {
                j.datetime("end", e);
            }
        });
    }
}

/// Escapes `s` as the inside of a JSON string.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            b => out.push(b),
        }
    }
}

/// `fmt::Write` into a byte buffer, escaping as a JSON string body.
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_fhir::sonic_rs::{self, JsonValueTrait};

    #[test]
    fn writes_parseable_json_with_escapes() {
        let mut j = Json::with_buffer(Vec::new());
        j.open();
        j.str("a", "quote \" backslash \\ newline \n tab \t bell \u{7} é");
        j.int("n", -3);
        j.dec("d", 1.25, 1);
        j.bool("b", false);
        j.arr("xs", |j| {
            j.item_str("x");
            j.item(|j| j.str("k", "v"));
        });
        j.obj("o", |_| {});
        j.str_fmt("f", format_args!("{}/{}", "Patient", "a\"b"));
        j.close();
        let v: sonic_rs::Value = sonic_rs::from_slice(j.bytes()).unwrap();
        assert_eq!(
            v["a"].as_str(),
            Some("quote \" backslash \\ newline \n tab \t bell \u{7} é")
        );
        assert_eq!(v["n"].as_i64(), Some(-3));
        assert_eq!(v["xs"][1]["k"].as_str(), Some("v"));
        assert_eq!(v["f"].as_str(), Some("Patient/a\"b"));
        assert!(v["d"].as_f64().is_some());
    }
}
