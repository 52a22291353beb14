//! The distinct counts of a counts table's cube, computed here rather than in SQL. A cube
//! over k columns is 2^k GROUP BYs, each a distinct count of patients (and of a secondary
//! id); as SQL that is 2^k hash aggregates built from nothing, and it was half of the core
//! study's build time (0.8 s for the encounter cube of 1,000 patients, which has six
//! columns and a secondary id, so 128 aggregates). Here the input is read once, every
//! value is replaced by a small integer, and the subset of all columns is a sort of packed
//! integers, which is some ten times faster and holds a few dozen bytes per input row.
//! Each smaller subset is counted from the distinct pairs of a larger one (see
//! [`count_all`]), not from the rows again.
//!
//! Only the counting is here: which cells are kept (`--min-count`, `where_clauses`) is
//! still the workflow's SQL, run over the table this makes.

use std::sync::Arc;

use futures_util::StreamExt;
use rustc_hash::FxHashMap;
use stratus_lake::deltalake::arrow::array::{
    ArrayRef, AsArray, Int64Array, RecordBatch, StringBuilder,
};
use stratus_lake::deltalake::arrow::compute::cast;
use stratus_lake::deltalake::arrow::datatypes::{DataType, Field, Schema};
use stratus_lake::deltalake::datafusion::datasource::MemTable;
use stratus_lake::deltalake::datafusion::prelude::SessionContext;

/// Past this many columns (2^10 subsets) the cube is left to SQL.
const MAX_COLUMNS: usize = 10;
/// Past this many input rows the cube is left to SQL, which spills to disk: the rows are
/// held here as integers, 4 bytes per column and id.
const MAX_ROWS: usize = 100_000_000;
/// The id that marks NULL.
const NULL_ID: u32 = u32::MAX;

/// The input rows, each value replaced by its number among its column's distinct values.
struct Coded {
    /// Per dimension column, each row's value number; and the values, by number.
    columns: Vec<(Vec<u32>, Vec<String>)>,
    /// Per id column (the primary, then the secondary), each row's id number or
    /// [`NULL_ID`].
    ids: Vec<Vec<u32>>,
    /// The most distinct ids of any id column: ids are numbered from 0 up to it.
    most_ids: usize,
    /// Per id column, whether no id is on two rows (an observation's own reference, say):
    /// then a cell's distinct count is its count of rows with an id, and needs no sort.
    unique: Vec<bool>,
    rows: usize,
}

/// Runs `input` (the id columns, `id_count` of them, then the dimension columns, as text)
/// and returns the cube's cells with their distinct counts as a table with the columns
/// `cnt_primary`, `cnt_secondary` (when there are two ids) and the dimension columns
/// (NULL meaning "all values"): the `powerset` of [`crate::counts::CountQuery`]. `None` when
/// the cube is too wide or the input too long to do here.
pub async fn powerset(
    ctx: &SessionContext,
    input: &str,
    id_count: usize,
) -> Result<Option<MemTable>, String> {
    let started = std::time::Instant::now();
    let df = ctx.sql(input).await.map_err(|e| e.to_string())?;
    let in_schema = df.schema().as_arrow().clone();
    let names: Vec<String> = in_schema.fields()[id_count..]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if names.len() > MAX_COLUMNS {
        return Ok(None);
    }
    let mut stream = df.execute_stream().await.map_err(|e| e.to_string())?;
    let mut coder = Coder::new(names.len(), id_count);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| e.to_string())?;
        coder.add(&batch).map_err(|e| e.to_string())?;
        if coder.coded.rows > MAX_ROWS {
            return Ok(None);
        }
    }
    let coded = coder.finish();
    let Some(layout) = Layout::new(&coded) else {
        return Ok(None);
    };
    let read = started.elapsed();
    let batch = tokio::task::spawn_blocking(move || {
        let counting = std::time::Instant::now();
        let cells = count_all(&coded, &layout);
        tracing::debug!(
            rows = coded.rows,
            read_ms = read.as_millis() as u64,
            count_ms = counting.elapsed().as_millis() as u64,
            "cube input read and counted"
        );
        to_batch(&cells, &coded, &layout, &names)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| e.to_string())?;
    Ok(Some(table))
}

/// Numbers values as they arrive.
struct Coder {
    coded: Coded,
    values: Vec<FxHashMap<String, u32>>,
    /// Ids by a 128-bit hash of their text: an id table of strings would be most of the
    /// memory for a table of observations, and two ids sharing a 128-bit hash is a chance
    /// of about 10^-23 at a hundred million ids.
    id_numbers: Vec<FxHashMap<u128, u32>>,
}

impl Coder {
    fn new(columns: usize, ids: usize) -> Coder {
        Coder {
            coded: Coded {
                columns: (0..columns).map(|_| (Vec::new(), Vec::new())).collect(),
                ids: (0..ids).map(|_| Vec::new()).collect(),
                most_ids: 0,
                unique: Vec::new(),
                rows: 0,
            },
            values: (0..columns).map(|_| FxHashMap::default()).collect(),
            id_numbers: (0..ids).map(|_| FxHashMap::default()).collect(),
        }
    }

    fn add(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<(), stratus_lake::deltalake::arrow::error::ArrowError> {
        let id_count = self.coded.ids.len();
        for (i, col) in batch.columns().iter().enumerate() {
            let text = cast(col, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            if i < id_count {
                let numbers = &mut self.id_numbers[i];
                let out = &mut self.coded.ids[i];
                for v in text.iter() {
                    out.push(match v {
                        None => NULL_ID,
                        Some(v) => {
                            let h = twox_hash::XxHash3_128::oneshot(v.as_bytes());
                            let next = numbers.len() as u32;
                            *numbers.entry(h).or_insert(next)
                        }
                    });
                }
            } else {
                let c = i - id_count;
                let values = &mut self.values[c];
                let (out, names) = &mut self.coded.columns[c];
                for v in text.iter() {
                    // The input has no NULLs (they are `cumulus__none`); one would count as
                    // the empty string.
                    let v = v.unwrap_or("");
                    let n = match values.get(v) {
                        Some(n) => *n,
                        None => {
                            let n = names.len() as u32;
                            values.insert(v.to_owned(), n);
                            names.push(v.to_owned());
                            n
                        }
                    };
                    out.push(n);
                }
            }
        }
        self.coded.rows += batch.num_rows();
        Ok(())
    }

    /// The coded rows, once every batch is in.
    fn finish(self) -> Coded {
        let mut coded = self.coded;
        coded.most_ids = self.id_numbers.iter().map(|n| n.len()).max().unwrap_or(0);
        coded.unique = self
            .id_numbers
            .iter()
            .zip(&coded.ids)
            .map(|(numbers, ids)| numbers.len() == ids.iter().filter(|i| **i != NULL_ID).count())
            .collect();
        coded
    }
}

/// Where each column's number sits in a packed cell key (its shift and width in bits), and
/// how many bits an id takes.
struct Layout {
    shifts: Vec<u32>,
    widths: Vec<u32>,
    id_bits: u32,
}

fn bits_for(n: usize) -> u32 {
    (usize::BITS - n.leading_zeros()).max(1)
}

impl Layout {
    /// `None` when a cell and an id do not fit in 128 bits together.
    fn new(coded: &Coded) -> Option<Layout> {
        let widths: Vec<u32> = coded
            .columns
            .iter()
            .map(|(_, names)| bits_for(names.len()))
            .collect();
        let shifts: Vec<u32> = widths
            .iter()
            .scan(0, |at, w| {
                let shift = *at;
                *at += w;
                Some(shift)
            })
            .collect();
        let id_bits = bits_for(coded.most_ids);
        (widths.iter().sum::<u32>() + id_bits <= 128).then_some(Layout {
            shifts,
            widths,
            id_bits,
        })
    }
}

/// One cell of the cube: the subset of columns (a bit mask), the packed values, and the
/// distinct count of each id.
struct Cell {
    mask: u32,
    key: u128,
    counts: Vec<i64>,
}

/// One subset's distinct ids, per id column, from which every smaller subset's follow.
enum Ids {
    /// The distinct (cell, id) pairs packed as `cell << id_bits | id`, sorted.
    Pairs(Vec<u128>),
    /// For an id column with no id on two rows: each cell's count of rows with an id,
    /// sorted by cell. A smaller subset's counts are sums of these.
    Rows(Vec<(u128, i64)>),
}

impl Ids {
    /// Each cell with its distinct count, sorted by cell.
    fn counts(&self, id_bits: u32) -> Vec<(u128, i64)> {
        match self {
            Ids::Rows(r) => r.clone(),
            Ids::Pairs(pairs) => {
                let mut counts: Vec<(u128, i64)> = Vec::new();
                for key in pairs {
                    let cell = key >> id_bits;
                    match counts.last_mut() {
                        Some((c, n)) if *c == cell => *n += 1,
                        _ => counts.push((cell, 1)),
                    }
                }
                counts
            }
        }
    }
}

/// The subset of the columns in `mask` and its distinct ids.
struct Node {
    mask: u32,
    ids: Vec<Ids>,
}

/// The key bits of the columns in `mask`.
fn cell_bits(layout: &Layout, mask: u32) -> u128 {
    (0..layout.widths.len())
        .filter(|c| mask & (1 << c) != 0)
        .fold(0, |bits, c| {
            bits | (((1u128 << layout.widths[c]) - 1) << layout.shifts[c])
        })
}

/// How many bits a pair key of the subset `mask` can use: its columns' and the id's.
fn pair_bits(layout: &Layout, mask: u32) -> u32 {
    (0..layout.widths.len())
        .filter(|c| mask & (1 << c) != 0)
        .map(|c| layout.shifts[c] + layout.widths[c])
        .max()
        .unwrap_or(0)
        + layout.id_bits
}

/// Every cell of every subset of the columns, with both counts, as the SQL's inner join of
/// the primary and secondary counts gives them: a cell is there when it has at least one
/// of each id, except the all-values cell, which is always there. Sorted by subset, then
/// cell.
///
/// The input rows are read once, for the subset of all columns; every other subset's
/// distinct ids are derived from those of a subset with one column more (a spanning tree
/// of the subsets, walked depth first), which holds far fewer entries than there are rows
/// once a column of many values is gone. The columns of most values are dropped first, so
/// the half of the subsets under the first drop derive from the shortest lists.
fn count_all(coded: &Coded, layout: &Layout) -> Vec<Cell> {
    let k = coded.columns.len();
    // Tree position p is column order[p]; the last positions are dropped first.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by_key(|c| coded.columns[*c].1.len());
    let full = (1u32 << k) - 1;
    let root = root_node(coded, layout, full);
    let mut cells = cells_of(&root, layout);
    // The root's subtrees, the one with the most subsets first: dropping position b leaves
    // a subtree of 2^b subsets.
    let queue: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new((0..k).collect());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, k.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (root, queue, order) = (&root, &queue, &order);
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(b) = next else { break };
                        let child = derive(root, order[b], layout);
                        visit(child, b, order, layout, &mut out);
                    }
                    out
                })
            })
            .collect();
        for h in handles {
            if let Ok(part) = h.join() {
                cells.extend(part);
            }
        }
    });
    cells.sort_unstable_by_key(|c| (c.mask, c.key));
    cells
}

/// The cells of `node`, then of its subtree: the subsets without one of the positions below
/// `lowest` as well. The node's own lists go before its last (largest) subtree is walked.
fn visit(node: Node, lowest: usize, order: &[usize], layout: &Layout, out: &mut Vec<Cell>) {
    out.extend(cells_of(&node, layout));
    let present: Vec<usize> = (0..lowest)
        .filter(|p| node.mask & (1 << order[*p]) != 0)
        .collect();
    let Some((&last, rest)) = present.split_last() else {
        return;
    };
    for &b in rest {
        let child = derive(&node, order[b], layout);
        visit(child, b, order, layout, out);
    }
    let child = derive(&node, order[last], layout);
    drop(node);
    visit(child, last, order, layout, out);
}

/// The subset of all columns, counted from the rows.
fn root_node(coded: &Coded, layout: &Layout, mask: u32) -> Node {
    let cell_of = |row: usize| -> u128 {
        let mut key = 0u128;
        for (c, (numbers, _)) in coded.columns.iter().enumerate() {
            key |= u128::from(numbers[row]) << layout.shifts[c];
        }
        key
    };
    let mut scratch: Vec<u128> = Vec::new();
    let ids = coded
        .ids
        .iter()
        .zip(&coded.unique)
        .map(|(ids, unique)| {
            if *unique {
                let mut cells: FxHashMap<u128, i64> = FxHashMap::default();
                for (row, id) in ids.iter().enumerate() {
                    if *id != NULL_ID {
                        *cells.entry(cell_of(row)).or_insert(0) += 1;
                    }
                }
                let mut counts: Vec<(u128, i64)> = cells.into_iter().collect();
                counts.sort_unstable();
                return Ids::Rows(counts);
            }
            let keys: Vec<u128> = ids
                .iter()
                .enumerate()
                .filter(|(_, id)| **id != NULL_ID)
                .map(|(row, id)| (cell_of(row) << layout.id_bits) | u128::from(*id))
                .collect();
            distinct_pairs(keys, pair_bits(layout, mask), &mut scratch)
        })
        .collect();
    Node { mask, ids }
}

/// `keys` (pair keys below 2^`bits`) sorted, without repeats, holding no spare room: a
/// node's lists stay alive while its subtree is walked.
fn distinct_pairs(mut keys: Vec<u128>, bits: u32, scratch: &mut Vec<u128>) -> Ids {
    sort_keys(&mut keys, bits, scratch);
    keys.dedup();
    keys.shrink_to_fit();
    Ids::Pairs(keys)
}

/// `parent`'s subset without `column`.
fn derive(parent: &Node, column: usize, layout: &Layout) -> Node {
    let mask = parent.mask & !(1 << column);
    let keep = cell_bits(layout, mask);
    let mut scratch: Vec<u128> = Vec::new();
    let ids = parent
        .ids
        .iter()
        .map(|ids| match ids {
            Ids::Pairs(pairs) => {
                let keep = (keep << layout.id_bits) | ((1u128 << layout.id_bits) - 1);
                let keys: Vec<u128> = pairs.iter().map(|k| k & keep).collect();
                distinct_pairs(keys, pair_bits(layout, mask), &mut scratch)
            }
            Ids::Rows(rows) => {
                let mut counts: Vec<(u128, i64)> =
                    rows.iter().map(|(cell, n)| (cell & keep, *n)).collect();
                counts.sort_unstable_by_key(|(cell, _)| *cell);
                let mut summed: Vec<(u128, i64)> = Vec::with_capacity(counts.len());
                for (cell, n) in counts {
                    match summed.last_mut() {
                        Some((c, m)) if *c == cell => *m += n,
                        _ => summed.push((cell, n)),
                    }
                }
                summed.shrink_to_fit();
                Ids::Rows(summed)
            }
        })
        .collect();
    Node { mask, ids }
}

/// The cells of one subset: those with every id, as an inner join on the cell.
fn cells_of(node: &Node, layout: &Layout) -> Vec<Cell> {
    let per_id: Vec<Vec<(u128, i64)>> = node
        .ids
        .iter()
        .map(|ids| ids.counts(layout.id_bits))
        .collect();
    let mask = node.mask;
    if mask == 0 {
        let counts = per_id
            .iter()
            .map(|c| c.first().map_or(0, |(_, n)| *n))
            .collect();
        return vec![Cell {
            mask,
            key: 0,
            counts,
        }];
    }
    let Some((first, rest)) = per_id.split_first() else {
        return Vec::new();
    };
    let mut at = vec![0usize; rest.len()];
    let mut out = Vec::new();
    'cells: for (cell, n) in first {
        let mut counts = vec![*n];
        for (list, i) in rest.iter().zip(at.iter_mut()) {
            while *i < list.len() && list[*i].0 < *cell {
                *i += 1;
            }
            match list.get(*i) {
                Some((c, m)) if c == cell => counts.push(*m),
                _ => continue 'cells,
            }
        }
        out.push(Cell {
            mask,
            key: *cell,
            counts,
        });
    }
    out
}

/// Sorts `keys`, each below 2^`bits`: by bytes, least significant first (a radix sort), when
/// they fit in 64 bits, which for the millions of keys of a large cube is several times
/// faster than comparing; a byte that is the same in every key is skipped.
fn sort_keys(keys: &mut Vec<u128>, bits: u32, scratch: &mut Vec<u128>) {
    let passes = bits.div_ceil(8);
    if passes > 8 || keys.len() < 1 << 12 {
        keys.sort_unstable();
        return;
    }
    scratch.clear();
    scratch.resize(keys.len(), 0);
    for pass in 0..passes {
        let shift = pass * 8;
        let digit = |k: u128| ((k >> shift) & 0xff) as usize;
        let mut counts = [0usize; 256];
        for k in keys.iter() {
            counts[digit(*k)] += 1;
        }
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut starts = [0usize; 256];
        let mut at = 0;
        for (start, count) in starts.iter_mut().zip(counts) {
            *start = at;
            at += count;
        }
        for k in keys.iter() {
            let d = digit(*k);
            scratch[starts[d]] = *k;
            starts[d] += 1;
        }
        std::mem::swap(keys, scratch);
    }
}

/// The cells as one batch: the counts, then each column's value or NULL for "all".
fn to_batch(
    cells: &[Cell],
    coded: &Coded,
    layout: &Layout,
    names: &[String],
) -> Result<RecordBatch, stratus_lake::deltalake::arrow::error::ArrowError> {
    let id_count = coded.ids.len();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, name) in ["cnt_primary", "cnt_secondary"]
        .iter()
        .take(id_count)
        .enumerate()
    {
        fields.push(Field::new(*name, DataType::Int64, false));
        arrays.push(Arc::new(Int64Array::from_iter_values(
            cells.iter().map(|c| c.counts[i]),
        )));
    }
    for (c, name) in names.iter().enumerate() {
        let (_, values) = &coded.columns[c];
        let mask = (1u128 << layout.widths[c]) - 1;
        let mut b = StringBuilder::new();
        for cell in cells {
            if cell.mask & (1 << c) == 0 {
                b.append_null();
            } else {
                let n = ((cell.key >> layout.shifts[c]) & mask) as usize;
                b.append_option(values.get(n));
            }
        }
        fields.push(Field::new(name, DataType::Utf8, true));
        arrays.push(Arc::new(b.finish()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_lake::deltalake::arrow::array::Array;

    fn coded(columns: &[&[&str]], ids: &[&[Option<&str>]]) -> Coded {
        let mut coder = Coder::new(columns.len(), ids.len());
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut fields = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            arrays.push(Arc::new(
                stratus_lake::deltalake::arrow::array::StringArray::from(id.to_vec()),
            ));
            fields.push(Field::new(format!("id{i}"), DataType::Utf8, true));
        }
        for (i, col) in columns.iter().enumerate() {
            arrays.push(Arc::new(
                stratus_lake::deltalake::arrow::array::StringArray::from(col.to_vec()),
            ));
            fields.push(Field::new(format!("c{i}"), DataType::Utf8, true));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        coder.add(&batch).unwrap();
        coder.finish()
    }

    #[test]
    fn each_subset_counts_distinct_ids_and_needs_both_ids() {
        // Two patients; p1 has two encounters in January, p2 one in February whose
        // encounter id is NULL.
        let c = coded(
            &[&["jan", "jan", "feb"]],
            &[
                &[Some("p1"), Some("p1"), Some("p2")],
                &[Some("e1"), Some("e2"), None],
            ],
        );
        // Encounters are one per row: counted without a sort.
        assert_eq!(c.unique, [false, true]);
        let layout = Layout::new(&c).unwrap();
        let cells = count_all(&c, &layout);
        let batch = to_batch(&cells, &c, &layout, &["month".into()]).unwrap();
        let got: Vec<String> = (0..batch.num_rows())
            .map(|r| {
                let p = batch
                    .column(0)
                    .as_primitive::<stratus_lake::deltalake::arrow::datatypes::Int64Type>();
                let s = batch
                    .column(1)
                    .as_primitive::<stratus_lake::deltalake::arrow::datatypes::Int64Type>();
                let m = batch.column(2).as_string::<i32>();
                let month = if m.is_null(r) { "*" } else { m.value(r) };
                format!("{month} {} {}", p.value(r), s.value(r))
            })
            .collect();
        // All months: 2 patients, 2 encounters; January: 1 patient, 2 encounters;
        // February has no encounter id, so no cell (as the SQL's inner join).
        assert_eq!(got, ["* 2 2", "jan 1 2"]);
    }

    #[test]
    fn derived_subsets_count_as_each_subset_counted_from_the_rows() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let rows = 3_000;
        // Columns of 2, 40, 7 and 300 values; a patient id on many rows (some NULL), an
        // encounter id on one row each (some NULL), or on two rows each.
        let cards = [2u64, 40, 7, 300];
        let values: Vec<Vec<String>> = cards
            .iter()
            .map(|n| (0..rows).map(|_| format!("v{}", next(*n))).collect())
            .collect();
        let patients: Vec<Option<String>> = (0..rows)
            .map(|_| (next(10) > 0).then(|| format!("p{}", next(200))))
            .collect();
        let unique: Vec<Option<String>> = (0..rows)
            .map(|r| (next(10) > 0).then(|| format!("e{r}")))
            .collect();
        let paired: Vec<Option<String>> = (0..rows).map(|r| Some(format!("e{}", r / 2))).collect();
        for second in [&unique, &paired] {
            let cols: Vec<Vec<&str>> = values
                .iter()
                .map(|v| v.iter().map(String::as_str).collect())
                .collect();
            let col_refs: Vec<&[&str]> = cols.iter().map(Vec::as_slice).collect();
            let ids: Vec<Vec<Option<&str>>> = [&patients, second]
                .iter()
                .map(|i| i.iter().map(Option::as_deref).collect())
                .collect();
            let id_refs: Vec<&[Option<&str>]> = ids.iter().map(Vec::as_slice).collect();
            let c = coded(&col_refs, &id_refs);
            assert_eq!(c.unique, [false, std::ptr::eq(second, &unique)]);
            let layout = Layout::new(&c).unwrap();
            let got: Vec<(u32, u128, Vec<i64>)> = count_all(&c, &layout)
                .into_iter()
                .map(|cell| (cell.mask, cell.key, cell.counts))
                .collect();
            // Each subset counted from the rows with sets.
            let mut want = Vec::new();
            for mask in 0..1u32 << cards.len() {
                let mut cells: std::collections::BTreeMap<
                    u128,
                    Vec<std::collections::HashSet<u32>>,
                > = Default::default();
                for row in 0..rows {
                    let mut key = 0u128;
                    for (col, (numbers, _)) in c.columns.iter().enumerate() {
                        if mask & (1 << col) != 0 {
                            key |= u128::from(numbers[row]) << layout.shifts[col];
                        }
                    }
                    let sets = cells
                        .entry(key)
                        .or_insert_with(|| vec![Default::default(); 2]);
                    for (set, ids) in sets.iter_mut().zip(&c.ids) {
                        if ids[row] != NULL_ID {
                            set.insert(ids[row]);
                        }
                    }
                }
                for (key, sets) in cells {
                    if mask == 0 || sets.iter().all(|s| !s.is_empty()) {
                        want.push((mask, key, sets.iter().map(|s| s.len() as i64).collect()));
                    }
                }
            }
            assert_eq!(got.len(), want.len());
            assert_eq!(got, want);
        }
    }

    #[test]
    fn keys_sort_by_bytes_as_by_comparison() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for bits in [1u32, 12, 40, 64, 90] {
            let mask = if bits >= 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            let mut keys: Vec<u128> = (0..10_000)
                .map(|_| ((u128::from(next()) << 64) | u128::from(next())) & mask)
                .collect();
            let mut want = keys.clone();
            want.sort_unstable();
            sort_keys(&mut keys, bits, &mut Vec::new());
            assert_eq!(keys, want, "{bits} bits");
        }
    }
}
