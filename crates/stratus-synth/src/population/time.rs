//! Calendar arithmetic and US time zones, without a date library.
//!
//! Every clinical time is local wall-clock time in the patient's state, written with that
//! state's UTC offset on that day (daylight saving included), because real EHR exports mix
//! offsets and downstream tools must cope with `-05:00` next to `-04:00` and `-10:00`.
//! The population's clock stops at [`END`], a fixed day rather than "now", so that a seed
//! gives the same files whenever it is run.

/// A US time zone: standard offset and whether it observes daylight saving time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tz {
    pub std_minutes: i16,
    pub dst: bool,
}

impl Tz {
    pub const EASTERN: Tz = Tz {
        std_minutes: -300,
        dst: true,
    };
    pub const CENTRAL: Tz = Tz {
        std_minutes: -360,
        dst: true,
    };
    pub const MOUNTAIN: Tz = Tz {
        std_minutes: -420,
        dst: true,
    };
    /// Arizona: mountain time without daylight saving.
    pub const ARIZONA: Tz = Tz {
        std_minutes: -420,
        dst: false,
    };
    pub const PACIFIC: Tz = Tz {
        std_minutes: -480,
        dst: true,
    };
    pub const ALASKA: Tz = Tz {
        std_minutes: -540,
        dst: true,
    };
    pub const HAWAII: Tz = Tz {
        std_minutes: -600,
        dst: false,
    };
}

pub(super) const DAY: i64 = 86_400;
pub(super) const HOUR: i64 = 3_600;
pub(super) const MINUTE: i64 = 60;

/// The last day of the population's history: 2025-06-30.
pub(super) const END: i64 = days_from_civil(2025, 6, 30);
/// The earliest day any record is kept: EHR data before the late 1990s is rare.
pub(super) const RECORDS_START: i64 = days_from_civil(1995, 1, 1);

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(super) const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: `(year, month, day)`.
pub(super) const fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// 0 = Sunday.
const fn weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7)
}

/// The `n`-th (1-based) Sunday of a month.
fn nth_sunday(y: i64, m: u32, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    first + (7 - weekday(first)) % 7 + 7 * (n - 1)
}

/// Whether US daylight saving time is in force at a local time (2007 rules from 2007 on,
/// the 1987 rules before).
fn in_dst(local: i64) -> bool {
    let day = local.div_euclid(DAY);
    let (y, _, _) = civil_from_days(day);
    let (start, end) = if y >= 2007 {
        (nth_sunday(y, 3, 2), nth_sunday(y, 11, 1))
    } else {
        let last_oct = days_from_civil(y, 10, 31);
        (nth_sunday(y, 4, 1), last_oct - weekday(last_oct))
    };
    let t = local - 2 * HOUR;
    t >= start * DAY && t < end * DAY
}

/// A local wall-clock time in a zone, to the second.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    /// Seconds since 1970-01-01T00:00:00 local time.
    pub local: i64,
    pub tz: Tz,
}

impl Stamp {
    /// Midnight at the start of `day`.
    pub fn at_day(day: i64, tz: Tz) -> Stamp {
        Stamp {
            local: day * DAY,
            tz,
        }
    }

    /// `day` at `hour:minute`.
    pub fn at(day: i64, hour: i64, minute: i64, tz: Tz) -> Stamp {
        Stamp {
            local: day * DAY + hour * HOUR + minute * MINUTE,
            tz,
        }
    }

    /// This time plus `seconds`.
    pub fn plus(self, seconds: i64) -> Stamp {
        Stamp {
            local: self.local + seconds,
            tz: self.tz,
        }
    }

    /// The day number.
    pub fn day(self) -> i64 {
        self.local.div_euclid(DAY)
    }

    /// The calendar year.
    pub fn year(self) -> i64 {
        civil_from_days(self.day()).0
    }

    /// The calendar month, 1 to 12.
    pub fn month(self) -> u32 {
        civil_from_days(self.day()).1
    }

    /// UTC offset in minutes at this local time.
    pub fn offset_minutes(self) -> i64 {
        let dst = self.tz.dst && in_dst(self.local);
        self.tz.std_minutes as i64 + if dst { 60 } else { 0 }
    }

    /// `YYYY-MM-DD`.
    pub fn write_date(self, out: &mut Vec<u8>) {
        let (y, m, d) = civil_from_days(self.day());
        push_digits(out, y.clamp(0, 9999) as u32, 4);
        out.push(b'-');
        push_digits(out, m, 2);
        out.push(b'-');
        push_digits(out, d, 2);
    }

    fn write_time(self, out: &mut Vec<u8>) {
        let secs = self.local.rem_euclid(DAY);
        out.push(b'T');
        push_digits(out, (secs / HOUR) as u32, 2);
        out.push(b':');
        push_digits(out, (secs % HOUR / MINUTE) as u32, 2);
        out.push(b':');
        push_digits(out, (secs % MINUTE) as u32, 2);
    }

    fn write_offset(self, out: &mut Vec<u8>) {
        let off = self.offset_minutes();
        out.push(if off < 0 { b'-' } else { b'+' });
        let off = off.unsigned_abs() as u32;
        push_digits(out, off / 60, 2);
        out.push(b':');
        push_digits(out, off % 60, 2);
    }

    /// `YYYY-MM-DDThh:mm:ss±hh:mm`.
    pub fn write_datetime(self, out: &mut Vec<u8>) {
        self.write_date(out);
        self.write_time(out);
        self.write_offset(out);
    }

    /// `YYYY-MM-DDThh:mm:ss.mmm±hh:mm`.
    pub fn write_instant(self, out: &mut Vec<u8>, millis: u32) {
        self.write_date(out);
        self.write_time(out);
        out.push(b'.');
        push_digits(out, millis % 1000, 3);
        self.write_offset(out);
    }

    /// The date as a `String`, for note text.
    pub fn date_string(self) -> String {
        let mut v = Vec::with_capacity(10);
        self.write_date(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// The date and time as a `String`, for note text.
    pub fn datetime_string(self) -> String {
        let mut v = Vec::with_capacity(25);
        self.write_datetime(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }
}

impl PartialEq for Stamp {
    fn eq(&self, other: &Self) -> bool {
        self.local == other.local
    }
}

impl Eq for Stamp {}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.local.cmp(&other.local)
    }
}

fn push_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let mut tmp = [b'0'; 10];
    for i in (0..width).rev() {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&tmp[..width]);
}

/// Whole years between two days (an age).
pub(super) fn years_between(from: i64, to: i64) -> i64 {
    let (y1, m1, d1) = civil_from_days(from);
    let (y2, m2, d2) = civil_from_days(to);
    let mut years = y2 - y1;
    if (m2, d2) < (m1, d1) {
        years -= 1;
    }
    years.max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(t: Stamp) -> String {
        t.datetime_string()
    }

    #[test]
    fn civil_round_trips() {
        for day in (-30_000..30_000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(END), (2025, 6, 30));
        assert_eq!(years_between(days_from_civil(2000, 7, 1), END), 24);
        assert_eq!(years_between(days_from_civil(2000, 6, 30), END), 25);
    }

    #[test]
    fn offsets_follow_daylight_saving() {
        let winter = Stamp::at(days_from_civil(2011, 3, 4), 9, 15, Tz::EASTERN);
        assert_eq!(dt(winter), "2011-03-04T09:15:00-05:00");
        let summer = Stamp::at(days_from_civil(2011, 7, 4), 9, 15, Tz::EASTERN);
        assert_eq!(dt(summer), "2011-07-04T09:15:00-04:00");
        // 2011: DST from March 13 to November 6.
        let before = Stamp::at(days_from_civil(2011, 3, 13), 1, 0, Tz::CENTRAL);
        let after = Stamp::at(days_from_civil(2011, 3, 13), 3, 0, Tz::CENTRAL);
        assert_eq!(
            (before.offset_minutes(), after.offset_minutes()),
            (-360, -300)
        );
        // 2001: first Sunday in April (April 1).
        let old = Stamp::at(days_from_civil(2001, 3, 20), 12, 0, Tz::PACIFIC);
        assert_eq!(old.offset_minutes(), -480);
        let az = Stamp::at(days_from_civil(2020, 7, 1), 12, 0, Tz::ARIZONA);
        assert_eq!(dt(az), "2020-07-01T12:00:00-07:00");
        let hi = Stamp::at(days_from_civil(2020, 7, 1), 0, 0, Tz::HAWAII);
        let mut v = Vec::new();
        hi.write_instant(&mut v, 7);
        assert_eq!(v, b"2020-07-01T00:00:00.007-10:00");
    }
}
