//! FHIR `date`, `dateTime` and `instant` values as time ranges, for search and `_since`.
//!
//! A FHIR date is as precise as it is written: `2020` means the whole year, `2020-03-04T10:00Z`
//! the whole minute. Search compares ranges, not points (FHIR R4 §3.1.1.4.2), so a value
//! parses to the half-open range of milliseconds it covers. A value without a time zone is
//! taken as UTC, which is what the spec leaves to the server.

/// A half-open range `[start, end)` in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: i64,
    pub end: i64,
}

const MS_PER_DAY: i64 = 86_400_000;

impl DateRange {
    /// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and `YYYY-MM-DDThh:mm[:ss[.fff…]][Z|±hh:mm]`.
    /// Returns `None` for anything else, including impossible dates such as `2021-02-30`.
    pub fn parse(s: &str) -> Option<DateRange> {
        let s = s.trim();
        let b = s.as_bytes();
        let year = digits(b, 0, 4)?;
        if b.len() == 4 {
            let start = days_from_civil(year, 1, 1) * MS_PER_DAY;
            let end = days_from_civil(year + 1, 1, 1) * MS_PER_DAY;
            return Some(DateRange { start, end });
        }
        expect(b, 4, b'-')?;
        let month = digits(b, 5, 2)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        if b.len() == 7 {
            let (ny, nm) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            let start = days_from_civil(year, month, 1) * MS_PER_DAY;
            let end = days_from_civil(ny, nm, 1) * MS_PER_DAY;
            return Some(DateRange { start, end });
        }
        expect(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        if day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let day_start = days_from_civil(year, month, day) * MS_PER_DAY;
        if b.len() == 10 {
            return Some(DateRange {
                start: day_start,
                end: day_start + MS_PER_DAY,
            });
        }
        expect(b, 10, b'T')?;
        let hour = digits(b, 11, 2)?;
        expect(b, 13, b':')?;
        let minute = digits(b, 14, 2)?;
        if hour > 23 || minute > 59 {
            return None;
        }
        let mut pos = 16;
        let mut ms = (hour * 3600 + minute * 60) * 1000;
        let mut width = 60_000;
        if b.get(pos) == Some(&b':') {
            let sec = digits(b, pos + 1, 2)?;
            if sec > 60 {
                return None;
            }
            ms += sec * 1000;
            width = 1000;
            pos += 3;
            if b.get(pos) == Some(&b'.') {
                pos += 1;
                let frac_start = pos;
                while b.get(pos).is_some_and(u8::is_ascii_digit) {
                    pos += 1;
                }
                let frac = &s[frac_start..pos];
                if frac.is_empty() {
                    return None;
                }
                // Milliseconds are the finest unit kept; finer digits narrow nothing useful.
                let mut millis = 0;
                for (i, c) in frac.bytes().take(3).enumerate() {
                    millis += i64::from(c - b'0') * 10_i64.pow(2 - i as u32);
                }
                ms += millis;
                width = 1;
            }
        }
        let offset_ms = match b.get(pos) {
            None => 0,
            Some(b'Z') if pos + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) => {
                let oh = digits(b, pos + 1, 2)?;
                expect(b, pos + 3, b':')?;
                let om = digits(b, pos + 4, 2)?;
                if pos + 6 != b.len() || oh > 14 || om > 59 {
                    return None;
                }
                let off = (oh * 60 + om) * 60_000;
                if sign == b'+' { off } else { -off }
            }
            _ => return None,
        };
        let start = day_start + ms - offset_ms;
        Some(DateRange {
            start,
            end: start + width,
        })
    }

    /// True if the two ranges share at least one millisecond.
    pub fn overlaps(&self, other: &DateRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Formats milliseconds since the epoch as a FHIR instant in UTC with milliseconds, e.g.
/// `2026-11-23T06:52:34.120Z`.
pub fn format_instant(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1000
    )
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    let mut v = 0i64;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn expect(b: &[u8], at: usize, c: u8) -> Option<()> {
    (b.get(at) == Some(&c)).then_some(())
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` (1-12) of year `y`.
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01, the inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_sets_the_width() {
        let y = DateRange::parse("2020").unwrap();
        assert_eq!(y.end - y.start, 366 * MS_PER_DAY);
        let m = DateRange::parse("2021-02").unwrap();
        assert_eq!(m.end - m.start, 28 * MS_PER_DAY);
        let d = DateRange::parse("2021-02-03").unwrap();
        assert_eq!(d.end - d.start, MS_PER_DAY);
        let s = DateRange::parse("2021-02-03T04:05:06Z").unwrap();
        assert_eq!(s.end - s.start, 1000);
        let ms = DateRange::parse("2021-02-03T04:05:06.7-05:00").unwrap();
        assert_eq!(ms.end - ms.start, 1);
        assert_eq!(format_instant(ms.start), "2021-02-03T09:05:06.700Z");
    }

    #[test]
    fn offsets_move_the_instant() {
        let a = DateRange::parse("2011-02-02T16:30:49-05:00").unwrap();
        let b = DateRange::parse("2011-02-02T21:30:49Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_instant(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "20",
            "2021-13",
            "2021-02-30",
            "2021-02-03T25:00Z",
            "2021-02-03T04:05:06+0500",
            "2021-02-03 04:05",
            "2021-02-03T04:05:06.Z",
            "yesterday",
        ] {
            assert_eq!(DateRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        for day in (-150_000..150_000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
