//! cumulus-etl stores times as Python's `datetime.fromisoformat(x).isoformat()` prints
//! them; the completion tables must match byte for byte, since the Library joins on them.

/// `2024-01-01T00:00:00Z` → `2024-01-01T00:00:00+00:00`; `.123Z` → `.123000+00:00`;
/// `.000Z` → no fraction; a date alone → `T00:00:00`. `None` if it is not a date-time.
pub fn python_isoformat(s: &str) -> Option<String> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return None;
    }
    if !date.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    if rest.is_empty() {
        return Some(format!("{date}T00:00:00"));
    }
    let (clock, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, b)) => (a, b),
        None => (clock, ""),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, "00"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    for p in [h, m, sec] {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros: String = frac.chars().take(6).collect();
    while micros.len() < 6 {
        micros.push('0');
    }
    let frac = if micros.bytes().all(|b| b == b'0') {
        String::new()
    } else {
        format!(".{micros}")
    };
    let zone = match zone {
        "" => String::new(),
        "Z" | "z" => "+00:00".into(),
        z if z.len() == 5 && !z.contains(':') => format!("{}:{}", &z[..3], &z[3..]),
        z => z.to_owned(),
    };
    Some(format!("{date}T{h}:{m}:{sec}{frac}{zone}"))
}

/// Now in UTC as Python prints `datetime.now(timezone.utc).isoformat()`.
pub fn now_isoformat() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as i64;
    let base = stratus_fhir::date::format_instant(ms); // ...T10:11:27.069Z
    let micros = now.subsec_micros();
    let head = &base[..19];
    if micros == 0 {
        format!("{head}+00:00")
    } else {
        format!("{head}.{micros:06}+00:00")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python() {
        for (i, o) in [
            ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00"),
            (
                "2024-01-01T00:00:00.123Z",
                "2024-01-01T00:00:00.123000+00:00",
            ),
            ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00+00:00"),
            ("2024-01-01", "2024-01-01T00:00:00"),
            (
                "2025-06-24T09:27:51.986-05:00",
                "2025-06-24T09:27:51.986000-05:00",
            ),
        ] {
            assert_eq!(python_isoformat(i).as_deref(), Some(o), "{i}");
        }
        assert_eq!(python_isoformat("yesterday"), None);
        assert!(now_isoformat().ends_with("+00:00"));
    }
}
