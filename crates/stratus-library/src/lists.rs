//! SQL functions on a row's own lists, so that a flat table is made in one pass over its
//! resource instead of joining the code tables back to it by id.
//!
//! cumulus-library writes `core__observation` as the resource LEFT JOINed to five code
//! tables on `id`, then `SELECT DISTINCT`. Every joined row comes from the same resource, so
//! the same rows come from that resource alone: its distinct codings per field, then every
//! combination of them, a field without codings counting once as NULLs (the LEFT JOIN's
//! row). At 100,000 patients the joins had to sort and merge 16 million rows five times,
//! spilling, and the DISTINCT hashed them all again; one pass has nothing to sort. The rows
//! are the same as long as a table holds one row per id, which the ETL's Delta tables always
//! do (it merges on id).
//!
//! - `codings(concept, 'code,system,display')`: the distinct codings of a CodeableConcept,
//!   or of a list of them, as a list of `{code, system, display}`, keeping only the fields
//!   named (the others NULL) so that codings differing elsewhere count once. A NULL coding
//!   counts as one of NULLs, as unnesting it does.
//! - `coding_rows(field [, 'a.b'])`: the rows of a code table (`_dn_`) for one field: each
//!   distinct coding of a CodeableConcept, or of a list of them with its 1-based position
//!   `row` (NULL for a single concept), as `{row, code, system, display, userSelected}`;
//!   with a path, of the concept (or concepts) at that path in each item.
//! - `pick_coding(concept, 'core__encounter_dn_type')`: the one coding that code table's
//!   `priority` keeps for the concept (or list of them), as `{code, system, display}`, or
//!   NULL; the study's code tables are registered with [`register_picks`].
//!   `pick_coding_row(field, 'a.b', 'table')` gives the table's whole row, as
//!   `coding_rows` does.
//! - `list_texts(list, 'a.b')`: the distinct text values at a path in each item of a list
//!   (`list_texts(performer, 'reference')`); a NULL item or value counts as one NULL.
//!   `all_texts` keeps repeats, one value per item.
//! - `has_text(list, 'a.b')`: whether any attachment (at a path in each item; `''` for the
//!   item itself) is text (plain, HTML, XHTML) with its data inline or the ETL's `masked`
//!   data-absent-reason in its place.
//! - `combinations(l1, …, ln)`: every combination of one item from each list, as a list of
//!   `{c1, …, cn}`; a NULL or empty list gives NULL in every combination.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use stratus_lake::deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericListArray, Int64Array, ListArray,
    OffsetSizeTrait, StringArray, StringBuilder, StructArray, UInt32Array, new_null_array,
};
use stratus_lake::deltalake::arrow::buffer::OffsetBuffer;
use stratus_lake::deltalake::arrow::compute::{cast, take};
use stratus_lake::deltalake::arrow::datatypes::{DataType, Field, Fields};
use stratus_lake::deltalake::datafusion::common::{
    DataFusionError, Result as DfResult, ScalarValue,
};
use stratus_lake::deltalake::datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use stratus_lake::deltalake::datafusion::prelude::SessionContext;

/// Registers every function of this module.
pub fn register(ctx: &SessionContext) {
    for f in [
        Kind::Codings,
        Kind::CodingRows,
        Kind::ListTexts,
        Kind::AllTexts,
        Kind::HasText,
        Kind::Combinations,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(ListFn::new(f)));
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Codings,
    CodingRows,
    ListTexts,
    AllTexts,
    HasText,
    Combinations,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ListFn {
    kind: Kind,
    signature: Signature,
}

impl ListFn {
    fn new(kind: Kind) -> ListFn {
        let signature = match kind {
            Kind::Codings | Kind::ListTexts | Kind::AllTexts | Kind::HasText => {
                Signature::any(2, Volatility::Immutable)
            }
            Kind::CodingRows => Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Immutable,
            ),
            Kind::Combinations => Signature::variadic_any(Volatility::Immutable),
        };
        ListFn { kind, signature }
    }
}

fn error(message: String) -> DataFusionError {
    DataFusionError::Execution(message)
}

/// `List<item>`, its items nullable.
fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

const CODING_FIELDS: [&str; 3] = ["code", "system", "display"];

fn coding_row_fields() -> Fields {
    vec![
        Field::new("row", DataType::Int64, true),
        Field::new("code", DataType::Utf8, true),
        Field::new("system", DataType::Utf8, true),
        Field::new("display", DataType::Utf8, true),
        Field::new("userSelected", DataType::Boolean, true),
    ]
    .into()
}

fn coding_fields() -> Fields {
    CODING_FIELDS
        .into_iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect()
}

/// The item type of a list argument (`Null` for an untyped NULL: a field the data lacks).
fn item_type(t: &DataType, name: &str) -> DfResult<DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) => Ok(f.data_type().clone()),
        DataType::Null => Ok(DataType::Null),
        other => Err(error(format!("{name}: a list was expected, not {other}"))),
    }
}

/// The constant text argument `i` of `name`.
fn constant<'a>(args: &'a ScalarFunctionArgs, i: usize, name: &str) -> DfResult<&'a str> {
    match args.args.get(i) {
        Some(ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        )) => Ok(s),
        _ => Err(error(format!(
            "{name}: argument {} is a constant text",
            i + 1
        ))),
    }
}

impl ScalarUDFImpl for ListFn {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Codings => "codings",
            Kind::CodingRows => "coding_rows",
            Kind::ListTexts => "list_texts",
            Kind::AllTexts => "all_texts",
            Kind::HasText => "has_text",
            Kind::Combinations => "combinations",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::Codings => list_of(DataType::Struct(coding_fields())),
            Kind::CodingRows => list_of(DataType::Struct(coding_row_fields())),
            Kind::ListTexts | Kind::AllTexts => list_of(DataType::Utf8),
            Kind::HasText => DataType::Boolean,
            Kind::Combinations => {
                if args.is_empty() {
                    return Err(error("combinations: at least one list".into()));
                }
                let fields: Fields = args
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        Ok(Field::new(
                            format!("c{}", i + 1),
                            item_type(t, "combinations")?,
                            true,
                        ))
                    })
                    .collect::<DfResult<Vec<_>>>()?
                    .into();
                list_of(DataType::Struct(fields))
            }
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let first = || args.args[0].to_array(args.number_rows);
        let out = match self.kind {
            Kind::Codings => {
                let keep = constant(&args, 1, "codings")?;
                let keep: Vec<bool> = CODING_FIELDS
                    .iter()
                    .map(|f| keep.split(',').any(|k| k.trim() == *f))
                    .collect();
                codings(&first()?, [keep[0], keep[1], keep[2]])?
            }
            Kind::CodingRows => {
                let path = match args.args.len() {
                    1 => "",
                    _ => constant(&args, 1, "coding_rows")?,
                };
                coding_rows(&first()?, path)?
            }
            Kind::ListTexts => list_texts(&first()?, constant(&args, 1, "list_texts")?, true)?,
            Kind::AllTexts => list_texts(&first()?, constant(&args, 1, "all_texts")?, false)?,
            Kind::HasText => has_text(&first()?, constant(&args, 1, "has_text")?)?,
            Kind::Combinations => {
                let lists = args
                    .args
                    .iter()
                    .map(|a| a.to_array(args.number_rows))
                    .collect::<DfResult<Vec<_>>>()?;
                combinations(&lists)?
            }
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// A text column as `Utf8`, whichever string type the reader gave (or all NULL when absent).
fn text(column: Option<&ArrayRef>, len: usize) -> DfResult<StringArray> {
    let a = match column {
        Some(c) => cast(c, &DataType::Utf8)?,
        None => new_null_array(&DataType::Utf8, len),
    };
    Ok(a.as_string::<i32>().clone())
}

/// Each row's item positions (`start..end`) in a list's values, and those values.
type Items = (Vec<(usize, usize)>, ArrayRef);

/// The item positions of each row of a list (or, for a plain struct column, the row
/// itself), empty for NULL rows. `None` for an untyped NULL column.
fn items(x: &ArrayRef, name: &str) -> DfResult<Option<Items>> {
    let n = x.len();
    Ok(match x.data_type() {
        DataType::Null => None,
        DataType::List(_) => Some(list_items(x.as_list::<i32>())),
        DataType::LargeList(_) => Some(list_items(x.as_list::<i64>())),
        DataType::Struct(_) => {
            let ranges = (0..n)
                .map(|i| if x.is_valid(i) { (i, i + 1) } else { (0, 0) })
                .collect();
            Some((ranges, Arc::clone(x)))
        }
        other => {
            return Err(error(format!(
                "{name}: a struct or a list of structs was expected, not {other}"
            )));
        }
    })
}

/// A list's item positions per row, empty for NULL rows, and its values.
fn list_items<O: OffsetSizeTrait>(l: &GenericListArray<O>) -> Items {
    let o = l.value_offsets();
    let ranges = (0..l.len())
        .map(|i| {
            if l.is_valid(i) {
                (o[i].as_usize(), o[i + 1].as_usize())
            } else {
                (0, 0)
            }
        })
        .collect();
    (ranges, Arc::clone(l.values()))
}

/// The value at a dotted path of struct fields in each item, with whether every step there
/// was present (a NULL struct's fields are not read). `None` when the data lacks the path.
fn at_path(items: &ArrayRef, path: &str) -> Option<(ArrayRef, Vec<bool>)> {
    let mut valid: Vec<bool> = (0..items.len()).map(|k| items.is_valid(k)).collect();
    let mut here = Arc::clone(items);
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let next = Arc::clone(here.as_struct_opt()?.column_by_name(step)?);
        for (k, v) in valid.iter_mut().enumerate() {
            *v = *v && next.is_valid(k);
        }
        here = next;
    }
    Some((here, valid))
}

/// Offsets of a list array from its rows' lengths.
fn offsets(lengths: impl IntoIterator<Item = usize>) -> DfResult<OffsetBuffer<i32>> {
    let mut out = Vec::new();
    let mut at = 0i32;
    out.push(at);
    for len in lengths {
        let len = i32::try_from(len).map_err(|_| error("a list too long".into()))?;
        at = at
            .checked_add(len)
            .ok_or_else(|| error("lists too long for one batch".into()))?;
        out.push(at);
    }
    Ok(OffsetBuffer::new(out.into()))
}

fn list_array(values: ArrayRef, lengths: Vec<usize>) -> DfResult<ArrayRef> {
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(
        field,
        offsets(lengths)?,
        values,
        None,
    )?))
}

/// Codings' columns as they are built: position, code, system, display, userSelected.
#[derive(Default)]
struct CodingColumns {
    rows: Vec<Option<i64>>,
    texts: [StringBuilder; 3],
    selected: Vec<Option<bool>>,
}

impl CodingColumns {
    fn push(&mut self, row: Option<i64>, texts: [Option<&str>; 3], selected: Option<bool>) {
        self.rows.push(row);
        for (b, v) in self.texts.iter_mut().zip(texts) {
            b.append_option(v);
        }
        self.selected.push(selected);
    }

    /// `{code, system, display}`, or with `row` first and `userSelected` last.
    fn finish(self, with_row: bool) -> (Fields, Vec<ArrayRef>) {
        let [mut code, mut system, mut display] = self.texts;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(code.finish()),
            Arc::new(system.finish()),
            Arc::new(display.finish()),
        ];
        if !with_row {
            return (coding_fields(), columns);
        }
        columns.insert(0, Arc::new(Int64Array::from(self.rows)));
        columns.push(Arc::new(BooleanArray::from(self.selected)));
        (coding_row_fields(), columns)
    }
}

fn codings(x: &ArrayRef, keep: [bool; 3]) -> DfResult<ArrayRef> {
    let n = x.len();
    let field = Coded::new(x, "", "codings")?;
    let mut out = CodingColumns::default();
    let mut lengths = Vec::with_capacity(n);
    let mut seen: Vec<[Option<&str>; 3]> = Vec::new();
    for row in 0..n {
        seen.clear();
        if let Some(p) = &field.codings {
            field.each(row, |_, k| {
                let get = |i: usize| if keep[i] { p.field(i, k) } else { None };
                let tuple = [get(0), get(1), get(2)];
                if !seen.contains(&tuple) {
                    seen.push(tuple);
                }
            });
        }
        for tuple in &seen {
            out.push(None, *tuple, None);
        }
        lengths.push(seen.len());
    }
    let (fields, columns) = out.finish(false);
    let values = StructArray::try_new(fields, columns, None)?;
    list_array(Arc::new(values), lengths)
}

/// The codings' fields, read once per batch.
struct Codings {
    codings: StructArray,
    texts: [StringArray; 3],
    selected: BooleanArray,
}

impl Codings {
    /// Field `i` (code, system, display) of coding `k`: NULL in a NULL coding.
    fn field(&self, i: usize, k: usize) -> Option<&str> {
        let t = &self.texts[i];
        (self.codings.is_valid(k) && t.is_valid(k)).then(|| t.value(k))
    }

    fn user_selected(&self, k: usize) -> Option<bool> {
        (self.codings.is_valid(k) && self.selected.is_valid(k)).then(|| self.selected.value(k))
    }
}

/// A coded field, row by row: its items (a list, or the row's own value), the concept or
/// concepts at a path in each item, and their codings.
struct Coded {
    /// Whether the items are a list (and so have positions).
    list: bool,
    items: Option<Items>,
    /// Each item's concepts.
    concepts: Option<Items>,
    /// Each concept's codings.
    coding_lists: Option<Items>,
    codings: Option<Codings>,
}

impl Coded {
    fn new(x: &ArrayRef, path: &str, name: &str) -> DfResult<Coded> {
        let list = !matches!(x.data_type(), DataType::Struct(_));
        let items = items(x, name)?;
        let concepts: Option<Items> = match &items {
            Some((_, values)) if path.is_empty() => Some((
                (0..values.len()).map(|k| (k, k + 1)).collect(),
                Arc::clone(values),
            )),
            Some((_, values)) => match at_path(values, path) {
                Some((at, valid)) => items_where(&at, &valid, name)?,
                None => None,
            },
            None => None,
        };
        let coding_lists = match &concepts {
            Some((_, values)) => match at_path(values, "coding") {
                Some((at, valid)) => items_where(&at, &valid, name)?,
                None => None,
            },
            None => None,
        };
        let codings = match &coding_lists {
            Some((_, list)) => {
                let cs = list
                    .as_struct_opt()
                    .ok_or_else(|| error(format!("{name}: a coding is a struct")))?;
                let m = cs.len();
                let selected = match cs.column_by_name("userSelected") {
                    Some(c) => cast(c, &DataType::Boolean)?,
                    None => new_null_array(&DataType::Boolean, m),
                };
                Some(Codings {
                    codings: cs.clone(),
                    texts: [
                        text(cs.column_by_name("code"), m)?,
                        text(cs.column_by_name("system"), m)?,
                        text(cs.column_by_name("display"), m)?,
                    ],
                    selected: selected.as_boolean().clone(),
                })
            }
            None => None,
        };
        Ok(Coded {
            list,
            items,
            concepts,
            coding_lists,
            codings,
        })
    }

    /// Calls `f(position, coding)` for each coding of `row`, in order; the position is the
    /// item's, 1-based, when the items are a list.
    fn each(&self, row: usize, mut f: impl FnMut(Option<i64>, usize)) {
        let (Some((items, _)), Some((concepts, _)), Some((codings, _))) =
            (&self.items, &self.concepts, &self.coding_lists)
        else {
            return;
        };
        let (a, b) = items[row];
        for (i, (ca, cb)) in concepts[a..b].iter().enumerate() {
            let position = self.list.then_some(i as i64 + 1);
            for (ka, kb) in &codings[*ca..*cb] {
                for k in *ka..*kb {
                    f(position, k);
                }
            }
        }
    }
}

/// [`items`] of `x`, none for the entries that `valid` marks absent (a NULL parent).
fn items_where(x: &ArrayRef, valid: &[bool], name: &str) -> DfResult<Option<Items>> {
    Ok(items(x, name)?.map(|(mut ranges, values)| {
        for (r, live) in ranges.iter_mut().zip(valid) {
            if !live {
                *r = (0, 0);
            }
        }
        (ranges, values)
    }))
}

/// `path` leads from each item of `x` (a list, or one struct per row) to a concept or a
/// list of them; `row` is the item's position in `x` when `x` is a list.
fn coding_rows(x: &ArrayRef, path: &str) -> DfResult<ArrayRef> {
    let n = x.len();
    let field = Coded::new(x, path, "coding_rows")?;
    let mut out = CodingColumns::default();
    let mut lengths = Vec::with_capacity(n);
    type Row<'a> = (Option<i64>, [Option<&'a str>; 3], Option<bool>);
    let mut seen: Vec<Row> = Vec::new();
    for row in 0..n {
        seen.clear();
        if let Some(p) = &field.codings {
            field.each(row, |position, k| {
                let tuple = (
                    position,
                    [p.field(0, k), p.field(1, k), p.field(2, k)],
                    p.user_selected(k),
                );
                if !seen.contains(&tuple) {
                    seen.push(tuple);
                }
            });
        }
        for (position, fields, selected) in &seen {
            out.push(*position, *fields, *selected);
        }
        lengths.push(seen.len());
    }
    let (fields, columns) = out.finish(true);
    let values = StructArray::try_new(fields, columns, None)?;
    list_array(Arc::new(values), lengths)
}

fn list_texts(x: &ArrayRef, path: &str, distinct: bool) -> DfResult<ArrayRef> {
    let n = x.len();
    let mut b = StringBuilder::new();
    let mut lengths = Vec::with_capacity(n);
    let parts = match items(x, "list_texts")? {
        Some((ranges, values)) => {
            let (column, valid) = match at_path(&values, path) {
                Some(found) => found,
                None => (
                    new_null_array(&DataType::Utf8, values.len()),
                    vec![false; values.len()],
                ),
            };
            Some((ranges, valid, text(Some(&column), values.len())?))
        }
        None => None,
    };
    let mut seen: Vec<Option<&str>> = Vec::new();
    for row in 0..n {
        seen.clear();
        if let Some((ranges, valid, t)) = &parts {
            let (a, e) = ranges[row];
            for (k, live) in valid.iter().enumerate().take(e).skip(a) {
                let v = live.then(|| t.value(k));
                if !distinct || !seen.contains(&v) {
                    seen.push(v);
                }
            }
        }
        for v in &seen {
            b.append_option(*v);
        }
        lengths.push(seen.len());
    }
    list_array(Arc::new(b.finish()), lengths)
}

/// The content types whose data is a note's text.
const TEXT_TYPES: [&str; 3] = ["text/plain", "text/html", "application/xhtml+xml"];
const ABSENT: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

fn has_text(x: &ArrayRef, path: &str) -> DfResult<ArrayRef> {
    let n = x.len();
    let Some((ranges, values)) = items(x, "has_text")? else {
        return Ok(Arc::new(BooleanArray::from(vec![false; n])));
    };
    let Some((att, valid)) = at_path(&values, path) else {
        return Ok(Arc::new(BooleanArray::from(vec![false; n])));
    };
    let m = att.len();
    let kind = text(at_path(&att, "contentType").map(|(c, _)| c).as_ref(), m)?;
    let data = at_path(&att, "data").map(|(_, v)| v);
    // Each attachment's `_data.extension` list, and their url and valueCode.
    let marks = match at_path(&att, "_data.extension") {
        Some((list, v)) if !matches!(list.data_type(), DataType::Null) => {
            let (ranges, ext) = items(&list, "has_text: _data.extension")?
                .ok_or_else(|| error("has_text: _data.extension is a list".into()))?;
            let e = ext.len();
            let url = text(at_path(&ext, "url").map(|(c, _)| c).as_ref(), e)?;
            let code = text(at_path(&ext, "valueCode").map(|(c, _)| c).as_ref(), e)?;
            let ok: Vec<bool> = (0..e).map(|k| ext.is_valid(k)).collect();
            Some((ranges, v, url, code, ok))
        }
        _ => None,
    };
    let is_text = |k: usize| -> bool {
        if !valid[k] || !kind.is_valid(k) || !TEXT_TYPES.contains(&kind.value(k)) {
            return false;
        }
        if data.as_ref().is_some_and(|d| d[k]) {
            return true;
        }
        let Some((ranges, v, url, code, ok)) = &marks else {
            return false;
        };
        if !v[k] {
            return false;
        }
        let (a, b) = ranges[k];
        (a..b).any(|j| {
            ok[j]
                && code.is_valid(j)
                && url.is_valid(j)
                && code.value(j) == "masked"
                && url.value(j) == ABSENT
        })
    };
    let out: BooleanArray = (0..n)
        .map(|row| {
            let (a, b) = ranges[row];
            Some((a..b).any(is_text))
        })
        .collect();
    Ok(Arc::new(out))
}

/// Registers `pick_coding` and `pick_coding_row` for a study: the `priority` lists of its
/// code tables, by the tables' full names.
pub fn register_picks(ctx: &SessionContext, priorities: BTreeMap<String, Vec<String>>) {
    for row in [false, true] {
        let arity = if row { 3 } else { 2 };
        ctx.register_udf(ScalarUDF::new_from_impl(Pick {
            row,
            signature: Signature::any(arity, Volatility::Immutable),
            priorities: priorities.clone(),
        }));
    }
}

/// `pick_coding(concept, 'table')` gives `{code, system, display}`;
/// `pick_coding_row(field, 'path', 'table')` the whole code-table row, as `coding_rows`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Pick {
    row: bool,
    signature: Signature,
    priorities: BTreeMap<String, Vec<String>>,
}

impl ScalarUDFImpl for Pick {
    fn name(&self) -> &str {
        if self.row {
            "pick_coding_row"
        } else {
            "pick_coding"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Struct(if self.row {
            coding_row_fields()
        } else {
            coding_fields()
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (path, table) = if self.row {
            (
                constant(&args, 1, self.name())?,
                constant(&args, 2, self.name())?,
            )
        } else {
            ("", constant(&args, 1, self.name())?)
        };
        let patterns = self.priorities.get(table).ok_or_else(|| {
            error(format!(
                "{}: {table} is not a code table of this study with a priority",
                self.name()
            ))
        })?;
        let x = args.args[0].to_array(args.number_rows)?;
        let out = pick(&x, path, patterns, self.row)?;
        if matches!(args.args[0], ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` any one.
fn like(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    // The last `%` seen and where in the text it was matched to, to widen on a mismatch.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '_' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '%' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '%')
}

/// The coding a priority list keeps: the system that matches the earliest pattern, then the
/// lowest code (NULL codes last), the first seen among equals; none when no system matches.
fn pick(x: &ArrayRef, path: &str, patterns: &[String], with_row: bool) -> DfResult<ArrayRef> {
    let n = x.len();
    let field = Coded::new(x, path, "pick_coding")?;
    let mut out = CodingColumns::default();
    let mut valid = Vec::with_capacity(n);
    // Systems repeat across rows: each is matched against the patterns once.
    let mut ranks: HashMap<String, Option<usize>> = HashMap::new();
    for row in 0..n {
        // (rank, then a NULL code last, then the code), the position, the coding.
        type Best<'a> = ((usize, bool, Option<&'a str>), Option<i64>, usize);
        let mut best: Option<Best> = None;
        if let Some(p) = &field.codings {
            field.each(row, |position, k| {
                let Some(system) = p.field(1, k) else {
                    return;
                };
                let rank = match ranks.get(system) {
                    Some(r) => *r,
                    None => {
                        let r = patterns.iter().position(|pat| like(pat, system));
                        ranks.insert(system.to_owned(), r);
                        r
                    }
                };
                let Some(rank) = rank else {
                    return;
                };
                let code = p.field(0, k);
                let key = (rank, code.is_none(), code);
                if best.as_ref().is_none_or(|(b, _, _)| key < *b) {
                    best = Some((key, position, k));
                }
            });
        }
        match (best, &field.codings) {
            (Some((_, position, k)), Some(p)) => {
                let texts = [p.field(0, k), p.field(1, k), p.field(2, k)];
                out.push(position, texts, p.user_selected(k));
                valid.push(true);
            }
            _ => {
                out.push(None, [None; 3], None);
                valid.push(false);
            }
        }
    }
    let (fields, columns) = out.finish(with_row);
    Ok(Arc::new(StructArray::try_new(
        fields,
        columns,
        Some(valid.into()),
    )?))
}

fn combinations(lists: &[ArrayRef]) -> DfResult<ArrayRef> {
    let n = lists.first().map_or(0, |l| l.len());
    // Each list's item range per row (an empty range stands for the one NULL item).
    let parts: Vec<Option<Items>> = lists
        .iter()
        .map(|l| match l.data_type() {
            DataType::Struct(_) => Err(error("combinations: lists were expected".into())),
            _ => items(l, "combinations"),
        })
        .collect::<DfResult<_>>()?;
    let mut picks: Vec<Vec<Option<u32>>> = vec![Vec::new(); lists.len()];
    let mut lengths = Vec::with_capacity(n);
    let mut counter = vec![0usize; lists.len()];
    for row in 0..n {
        let range = |p: &Option<Items>| match p {
            Some((r, _)) => r[row],
            None => (0, 0),
        };
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| {
                let (a, b) = range(p);
                (b - a).max(1)
            })
            .collect();
        let total: usize = sizes.iter().product();
        counter.iter_mut().for_each(|c| *c = 0);
        for _ in 0..total {
            for (i, p) in parts.iter().enumerate() {
                let (a, b) = range(p);
                let pick = if b > a {
                    Some(
                        u32::try_from(a + counter[i])
                            .map_err(|_| error("combinations: a list too long".into()))?,
                    )
                } else {
                    None
                };
                picks[i].push(pick);
            }
            // The last list turns fastest.
            for i in (0..counter.len()).rev() {
                counter[i] += 1;
                if counter[i] < sizes[i] {
                    break;
                }
                counter[i] = 0;
            }
        }
        lengths.push(total);
    }
    let mut fields = Vec::with_capacity(lists.len());
    let mut columns = Vec::with_capacity(lists.len());
    for (i, (p, pick)) in parts.iter().zip(picks).enumerate() {
        let column = match p {
            Some((_, values)) => take(values.as_ref(), &UInt32Array::from(pick), None)?,
            None => new_null_array(&DataType::Null, pick.len()),
        };
        fields.push(Field::new(
            format!("c{}", i + 1),
            column.data_type().clone(),
            true,
        ));
        columns.push(column);
    }
    let values = StructArray::try_new(fields.into(), columns, None)?;
    list_array(Arc::new(values), lengths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_lake::deltalake::arrow::util::pretty::pretty_format_batches;

    /// The rows `sql` gives, as the lines of a printed table (header included).
    async fn rows(sql: &str) -> Vec<String> {
        rows_in(&picking(&[]), sql).await
    }

    async fn rows_in(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let out = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let text = pretty_format_batches(&out).expect("format").to_string();
        text.lines()
            .filter(|l| !l.starts_with('+'))
            .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join("|"))
            .collect()
    }

    /// A session with this module's functions, and a code table `t` with these priorities.
    fn picking(patterns: &[&str]) -> SessionContext {
        let ctx = SessionContext::new();
        register(&ctx);
        let patterns = patterns.iter().map(|p| p.to_string()).collect();
        register_picks(&ctx, BTreeMap::from([("t".to_owned(), patterns)]));
        ctx
    }

    const CONCEPTS: &str = "make_array(\
        named_struct('coding', make_array(\
            named_struct('code', 'a', 'system', 's', 'display', 'A'),\
            named_struct('code', 'a', 'system', 's', 'display', 'other A'))),\
        named_struct('coding', make_array(\
            named_struct('code', 'b', 'system', 's', 'display', 'B'),\
            named_struct('code', 'a', 'system', 's', 'display', 'A'))))";

    #[tokio::test]
    async fn codings_are_distinct_over_the_fields_asked_for() {
        let sql = |keep: &str| {
            format!(
                "SELECT c['code'] AS code, c['display'] AS display \
                 FROM (SELECT unnest(codings({CONCEPTS}, '{keep}')) AS c)"
            )
        };
        assert_eq!(
            rows(&sql("code,system")).await,
            ["|code|display|", "|a||", "|b||"]
        );
        assert_eq!(
            rows(&sql("code,system,display")).await,
            ["|code|display|", "|a|A|", "|a|other A|", "|b|B|"]
        );
        // One concept, not a list; a coding without a code is still a coding.
        let one = "SELECT c['code'] AS code, c['system'] AS system FROM (SELECT unnest(\
            codings(named_struct('coding', make_array(named_struct('system', 's'))), 'code,system')) AS c)";
        assert_eq!(rows(one).await, ["|code|system|", "||s|"]);
    }

    #[tokio::test]
    async fn combinations_give_every_pick_and_one_null_for_an_empty_list() {
        let sql = format!(
            "SELECT x['c1']['code'] AS one, x['c2'] AS two, x['c3'] AS three FROM (\
             SELECT unnest(combinations(codings({CONCEPTS}, 'code'), \
                list_texts(make_array(named_struct('reference', 'P/1'), \
                    named_struct('reference', 'P/2'), named_struct('reference', 'P/1')), 'reference'), \
                list_texts(NULL, 'reference'))) AS x)"
        );
        assert_eq!(
            rows(&sql).await,
            [
                "|one|two|three|",
                "|a|P/1||",
                "|a|P/2||",
                "|b|P/1||",
                "|b|P/2||"
            ]
        );
        // No codings at all: still one row, of NULLs, as a LEFT JOIN gives.
        let none = "SELECT x['c1']['code'] AS code FROM (SELECT unnest(combinations(\
            codings(NULL, 'code'), list_texts(make_array(named_struct('reference', 'P/1'))[2:1], 'reference'))) AS x)";
        assert_eq!(rows(none).await, ["|code|", "||"]);
    }

    #[tokio::test]
    async fn text_is_inline_data_of_a_text_type_or_the_masked_marker() {
        let sql = "SELECT has_text(make_array(\
                named_struct('contentType', 'application/pdf', 'data', 'JVBER')), '') AS pdf, \
            has_text(make_array(named_struct('attachment', \
                named_struct('contentType', 'text/html', 'data', 'PGh0bWw+')))\
                , 'attachment') AS html, \
            has_text(make_array(named_struct('contentType', 'text/plain', '_data', \
                named_struct('extension', make_array(named_struct('url', \
                'http://hl7.org/fhir/StructureDefinition/data-absent-reason', \
                'valueCode', 'masked'))))), '') AS masked, \
            has_text(NULL, '') AS none";
        assert_eq!(
            rows(sql).await,
            ["|pdf|html|masked|none|", "|false|true|true|false|"]
        );
    }

    #[test]
    fn like_matches_as_sql_does() {
        assert!(like("urn:oid:1.2.%.7.10", "urn:oid:1.2.840.114350.7.10"));
        assert!(like("http://snomed.info/sct", "http://snomed.info/sct"));
        assert!(!like("http://snomed.info/sct", "http://snomed.info/sct2"));
        assert!(like(
            "https://fhir.cerner.com/%/codeSet/3",
            "https://fhir.cerner.com/x/codeSet/3"
        ));
        assert!(!like(
            "https://fhir.cerner.com/%/codeSet/3",
            "https://fhir.cerner.com/x/codeSet/34"
        ));
        assert!(like("a_c%", "abcdef"));
        assert!(like("%%", ""));
    }

    #[tokio::test]
    async fn a_pick_is_the_earliest_pattern_then_the_lowest_code() {
        let ctx = picking(&["s:%:b", "s:a"]);
        let sql = "SELECT pick_coding(make_array(\
            named_struct('coding', make_array(named_struct('code', '2', 'system', 's:a'),\
                named_struct('code', '9', 'system', 's:x:b'),\
                named_struct('code', '3', 'system', 's:y:b'))),\
            named_struct('coding', make_array(named_struct('code', '1', 'system', 'other')))), 't')['code'] AS code";
        assert_eq!(rows_in(&ctx, sql).await, ["|code|", "|3|"]);
        let none = "SELECT pick_coding(named_struct('coding', make_array(\
            named_struct('code', '1', 'system', 'other'))), 't') IS NULL AS none";
        assert_eq!(rows_in(&ctx, none).await, ["|none|", "|true|"]);
        // A table with no priority is an error (at planning or at run time).
        let unknown = match ctx.sql("SELECT pick_coding(NULL, 'nope')").await {
            Ok(df) => df.collect().await.is_err(),
            Err(_) => true,
        };
        assert!(unknown);
    }

    #[tokio::test]
    async fn code_table_rows_carry_the_position_of_their_item() {
        // Two components, the second with a code given twice and one more.
        let components = "make_array(\
            named_struct('code', named_struct('coding', make_array(\
                named_struct('code', 'a', 'system', 's', 'userSelected', true)))),\
            named_struct('code', named_struct('coding', make_array(\
                named_struct('code', 'b', 'system', 's', 'userSelected', false),\
                named_struct('code', 'b', 'system', 's', 'userSelected', false),\
                named_struct('code', 'c', 'system', 't', 'userSelected', false)))))";
        let sql = format!(
            "SELECT x['row'] AS row, x['code'] AS code, x['userSelected'] AS sel \
             FROM (SELECT unnest(coding_rows({components}, 'code')) AS x)"
        );
        assert_eq!(
            rows(&sql).await,
            ["|row|code|sel|", "|1|a|true|", "|2|b|false|", "|2|c|false|"]
        );
        let pick = format!(
            "SELECT x['row'] AS row, x['code'] AS code FROM (\
             SELECT pick_coding_row({components}, 'code', 't') AS x)"
        );
        assert_eq!(
            rows_in(&picking(&["t", "s"]), &pick).await,
            ["|row|code|", "|2|c|"]
        );
    }
}
