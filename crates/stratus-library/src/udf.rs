//! SQL functions for FHIR dates, with the answers Athena (the production engine) gives.
//!
//! cumulus-library's SQL reads FHIR date strings with `from_iso8601_timestamp` and then
//! casts to a date or a bare timestamp; on Athena that keeps the written local date and time
//! (`2023-03-05T23:30:00-05:00` is the 5th), where its DuckDB shim converts to UTC first (the
//! 6th). Ages are Athena's `date_diff('year', …)`: whole years, where DuckDB counts year
//! boundaries. A partial date (`2023`, `2023-04`) reads as its first day.

use std::sync::Arc;

use stratus_fhir::date::{civil_from_days, days_from_civil, days_in_month};
use stratus_lake::deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, TimestampMicrosecondArray,
};
use stratus_lake::deltalake::arrow::compute::cast;
use stratus_lake::deltalake::arrow::datatypes::{DataType, TimeUnit};
use stratus_lake::deltalake::datafusion::common::{DataFusionError, Result as DfResult};
use stratus_lake::deltalake::datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use stratus_lake::deltalake::datafusion::prelude::SessionContext;

/// Registers every function of this module.
pub fn register(ctx: &SessionContext) {
    for f in [Kind::Date, Kind::Timestamp, Kind::Instant, Kind::Age] {
        ctx.register_udf(ScalarUDF::new_from_impl(Fhir::new(f)));
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    /// `fhir_date(text) → DATE`
    Date,
    /// `fhir_timestamp(text) → TIMESTAMP` (the local time written)
    Timestamp,
    /// `fhir_instant(text) → TIMESTAMP WITH TIME ZONE` (UTC; a time with no offset, or a
    /// date, is taken as UTC): for comparing times written in different zones.
    Instant,
    /// `fhir_age(birth DATE, on DATE) → BIGINT`
    Age,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Fhir {
    kind: Kind,
    signature: Signature,
}

impl Fhir {
    fn new(kind: Kind) -> Fhir {
        let signature = match kind {
            Kind::Date | Kind::Timestamp | Kind::Instant => {
                Signature::string(1, Volatility::Immutable)
            }
            Kind::Age => Signature::exact(
                vec![DataType::Date32, DataType::Date32],
                Volatility::Immutable,
            ),
        };
        Fhir { kind, signature }
    }
}

impl ScalarUDFImpl for Fhir {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Date => "fhir_date",
            Kind::Timestamp => "fhir_timestamp",
            Kind::Instant => "fhir_instant",
            Kind::Age => "fhir_age",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Instant => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Age => DataType::Int64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out: ArrayRef = match self.kind {
            Kind::Instant => {
                let text = cast(&arrays[0], &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                Arc::new(
                    text.iter()
                        .map(|s| {
                            let (d, us) = s.and_then(parse)?;
                            let offset = s.and_then(offset_minutes).unwrap_or(0);
                            Some(i64::from(d) * 86_400_000_000 + us - offset * 60_000_000)
                        })
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone("UTC"),
                )
            }
            Kind::Date | Kind::Timestamp => {
                let text = cast(&arrays[0], &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                if self.kind == Kind::Date {
                    Arc::new(
                        text.iter()
                            .map(|s| s.and_then(parse).map(|(d, _)| d))
                            .collect::<Date32Array>(),
                    )
                } else {
                    Arc::new(
                        text.iter()
                            .map(|s| {
                                s.and_then(parse)
                                    .map(|(d, us)| i64::from(d) * 86_400_000_000 + us)
                            })
                            .collect::<TimestampMicrosecondArray>(),
                    )
                }
            }
            Kind::Age => {
                let (birth, on) = (arrays[0].as_primitive(), arrays[1].as_primitive());
                let birth: &Date32Array = birth;
                let on: &Date32Array = on;
                Arc::new(
                    (0..birth.len())
                        .map(|i| {
                            (birth.is_valid(i) && on.is_valid(i))
                                .then(|| whole_years(birth.value(i), on.value(i)))
                        })
                        .collect::<Int64Array>(),
                )
            }
        };
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                stratus_lake::deltalake::datafusion::common::ScalarValue::try_from_array(&out, 0)
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// A FHIR date, dateTime or instant as (days since 1970-01-01, microseconds into that day),
/// local to the offset written. `None` for anything else.
pub fn parse(s: &str) -> Option<(i32, i64)> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0..4)?;
    let (month, day) = match b.len() {
        4 => (1, 1),
        7 if b[4] == b'-' => (num(5..7)?, 1),
        n if n >= 10 && b[4] == b'-' && b[7] == b'-' => (num(5..7)?, num(8..10)?),
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = 0;
    if b.len() > 10 {
        if b[10] != b'T' || b.len() < 16 {
            return None;
        }
        let (h, m) = (num(11..13)?, num(14..16)?);
        let sec = if b.len() >= 19 && b[16] == b':' {
            num(17..19)?
        } else {
            0
        };
        let mut frac = 0;
        if b.get(19) == Some(&b'.') {
            let digits: Vec<u8> = b[20..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .copied()
                .collect();
            let mut us = String::from_utf8(digits).ok()?;
            us.truncate(6);
            while us.len() < 6 {
                us.push('0');
            }
            frac = us.parse().ok()?;
        }
        if h > 23 || m > 59 || sec > 60 {
            return None;
        }
        micros = ((h * 60 + m) * 60 + sec.min(59)) * 1_000_000 + frac;
    }
    Some((
        i32::try_from(days_from_civil(year, month, day)).ok()?,
        micros,
    ))
}

/// The UTC offset a dateTime is written with, in minutes (`Z` is 0); `None` without one.
fn offset_minutes(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() <= 10 {
        return None;
    }
    if s.ends_with('Z') {
        return Some(0);
    }
    let tail = s.get(s.len().checked_sub(6)?..)?;
    let sign = match tail.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i64 = tail.get(1..3)?.parse().ok()?;
    let m: i64 = tail.get(4..6)?.parse().ok()?;
    Some(sign * (h * 60 + m))
}

/// Whole years from `birth` to `on` (negative if `on` is earlier), as Athena's
/// `date_diff('year', …)` counts them.
fn whole_years(birth: i32, on: i32) -> i64 {
    let (by, bm, bd) = civil_from_days(i64::from(birth));
    let (oy, om, od) = civil_from_days(i64::from(on));
    let mut years = oy - by;
    if years > 0 && (om, od) < (bm, bd) {
        years -= 1;
    } else if years < 0 && (om, od) > (bm, bd) {
        years += 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_keep_the_local_day_and_partial_dates_read_as_their_first_day() {
        let day = |s| parse(s).map(|(d, _)| civil_from_days(i64::from(d)));
        assert_eq!(day("2023-03-05T23:30:00-05:00"), Some((2023, 3, 5)));
        assert_eq!(day("2023"), Some((2023, 1, 1)));
        assert_eq!(day("2023-04"), Some((2023, 4, 1)));
        assert_eq!(day("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(day("2023-02-29"), None);
        assert_eq!(day("not a date"), None);
        assert_eq!(day("1969-12-31"), Some((1969, 12, 31)));
        assert_eq!(offset_minutes("2023-03-05T23:30:00-05:00"), Some(-300));
        assert_eq!(offset_minutes("2023-03-05T23:30:00Z"), Some(0));
        assert_eq!(offset_minutes("2023-03-05"), None);
        assert_eq!(
            parse("2023-03-05T23:30:15.25+01:00").map(|(_, us)| us),
            Some((23 * 3600 + 30 * 60 + 15) * 1_000_000 + 250_000)
        );
    }

    #[test]
    fn ages_are_whole_years_as_athena_counts_them() {
        let d = |s| parse(s).map(|(d, _)| d).unwrap_or_default();
        // The reference's example: DuckDB says 73, Athena 72.
        assert_eq!(whole_years(d("1950-01-15"), d("2023-01-10")), 72);
        assert_eq!(whole_years(d("1950-01-15"), d("2023-01-15")), 73);
        assert_eq!(whole_years(d("2000-02-29"), d("2001-02-28")), 0);
        assert_eq!(whole_years(d("2000-02-29"), d("2001-03-01")), 1);
    }
}
