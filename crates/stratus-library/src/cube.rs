//! The distinct counts of a counts table's cube, computed here rather than in SQL. A cube
//! over k columns is 2^k GROUP BYs, each a distinct count of patients (and of a secondary
//! id); as SQL that is 2^k hash aggregates built from nothing, and it was half of the core
//! study's build time (0.8 s for the encounter cube of 1,000 patients, which has six
//! columns and a secondary id, so 128 aggregates). Here the input is read once, every
//! value is replaced by a small integer, and each subset of the columns is a sort of packed
//! integers, which is some ten times faster and holds a few dozen bytes per input row.
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
    let batch = tokio::task::spawn_blocking(move || {
        let cells = count_all(&coded, &layout);
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

/// Every cell of every subset of the columns, with both counts, as the SQL's inner join of
/// the primary and secondary counts gives them: a cell is there when it has at least one
/// of each id, except the all-values cell, which is always there.
fn count_all(coded: &Coded, layout: &Layout) -> Vec<Cell> {
    let k = coded.columns.len();
    let masks: Vec<u32> = (0..1u32 << k).collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(masks.len());
    let chunk = masks.len().div_ceil(threads.max(1));
    let mut cells = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = masks
            .chunks(chunk.max(1))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .flat_map(|m| cells_of(coded, layout, *m))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            if let Ok(part) = h.join() {
                cells.extend(part);
            }
        }
    });
    cells
}

/// The cells of one subset of the columns.
fn cells_of(coded: &Coded, layout: &Layout, mask: u32) -> Vec<Cell> {
    let cell_of = |row: usize| -> u128 {
        let mut key = 0u128;
        for (c, (numbers, _)) in coded.columns.iter().enumerate() {
            if mask & (1 << c) != 0 {
                key |= u128::from(numbers[row]) << layout.shifts[c];
            }
        }
        key
    };
    // The bits a key of this subset can use: its columns' and the id's.
    let bits = (0..coded.columns.len())
        .filter(|c| mask & (1 << c) != 0)
        .map(|c| layout.shifts[c] + layout.widths[c])
        .max()
        .unwrap_or(0)
        + layout.id_bits;
    let mut keys: Vec<u128> = Vec::with_capacity(coded.rows);
    let mut scratch: Vec<u128> = Vec::new();
    // Per id: (cell, distinct count), sorted by cell.
    let mut per_id: Vec<Vec<(u128, i64)>> = Vec::new();
    for (ids, unique) in coded.ids.iter().zip(&coded.unique) {
        if *unique {
            let mut cells: FxHashMap<u128, i64> = FxHashMap::default();
            for (row, id) in ids.iter().enumerate() {
                if *id != NULL_ID {
                    *cells.entry(cell_of(row)).or_insert(0) += 1;
                }
            }
            let mut counts: Vec<(u128, i64)> = cells.into_iter().collect();
            counts.sort_unstable();
            per_id.push(counts);
            continue;
        }
        keys.clear();
        for (row, id) in ids.iter().enumerate() {
            if *id != NULL_ID {
                keys.push((cell_of(row) << layout.id_bits) | u128::from(*id));
            }
        }
        sort_keys(&mut keys, bits, &mut scratch);
        keys.dedup();
        let mut counts: Vec<(u128, i64)> = Vec::new();
        for key in &keys {
            let cell = key >> layout.id_bits;
            match counts.last_mut() {
                Some((c, n)) if *c == cell => *n += 1,
                _ => counts.push((cell, 1)),
            }
        }
        per_id.push(counts);
    }
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
    // Inner join on the cell: every list is sorted by it.
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
