//! UTC calendar arithmetic for event timestamps, without a date library.
//!
//! `rust_transform_event` writes "now" as `YYYY-MM-DDTHH:MM:SS.ffffffZ` and, when an event
//! carries its own timestamp, reports how old it is (`latency_ms`). The original accepts two
//! textual forms for that: RFC 3339 (date, `T`/`t`/space, time, optional fraction, `Z`/`z` or
//! `±HH:MM`) and, for plain strings only, a zone-less `YYYY-MM-DDTHH:MM:SS[.f…]` read as UTC.
//! Everything here is integer arithmetic on nanoseconds since the Unix epoch (`i128`, so every
//! year 0000–9999 fits with room to subtract).

/// Nanoseconds in one second.
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Nanoseconds since the Unix epoch, read from the system clock (0 if the clock is before 1970).
pub fn now_unix_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// `unix_nanos` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microsecond precision, truncated), the form
/// the original server stamps on transformed events that carry no timestamp.
pub fn format_utc_micros_z(unix_nanos: i128) -> String {
    let micros = unix_nanos.div_euclid(1_000);
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3_600,
        sod % 3_600 / 60,
        sod % 60
    )
}

/// Parses an RFC 3339 timestamp into nanoseconds since the Unix epoch; `None` if malformed.
///
/// Accepted as the original accepts it: `T`, `t` or a space between date and time; a fraction
/// of one or more digits (digits past the ninth are ignored); `Z`, `z` or `±HH:MM` with
/// `HH < 24`; a leap second `:60` counts as `:59`.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let mut c = Cursor::new(s);
    let base = date_time(&mut c, b"Tt ")?;
    let offset_secs: i128 = match c.next()? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let h = c.digits(2)?;
            c.expect(b':')?;
            let m = c.digits(2)?;
            if h >= 24 || m >= 60 {
                return None;
            }
            let off = i128::from(h * 3_600 + m * 60);
            if sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    c.end()?;
    Some(base - offset_secs * NANOS_PER_SEC)
}

/// Parses a zone-less `YYYY-MM-DDTHH:MM:SS[.f…]` as UTC nanoseconds since the Unix epoch.
pub fn parse_naive_utc(s: &str) -> Option<i128> {
    let mut c = Cursor::new(s);
    let t = date_time(&mut c, b"T")?;
    c.end()?;
    Some(t)
}

/// `date sep time [fraction]`, as nanoseconds since the epoch in UTC (no offset applied).
fn date_time(c: &mut Cursor<'_>, separators: &[u8]) -> Option<i128> {
    let year = c.digits(4)?;
    c.expect(b'-')?;
    let month = c.digits(2)?;
    c.expect(b'-')?;
    let day = c.digits(2)?;
    if !separators.contains(&c.next()?) {
        return None;
    }
    let hour = c.digits(2)?;
    c.expect(b':')?;
    let minute = c.digits(2)?;
    c.expect(b':')?;
    let second = c.digits(2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut nanos: i128 = 0;
    if c.peek() == Some(b'.') {
        c.next();
        let mut n_digits = 0;
        while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
            c.next();
            if n_digits < 9 {
                nanos = nanos * 10 + i128::from(d - b'0');
            }
            n_digits += 1;
        }
        if n_digits == 0 {
            return None;
        }
        for _ in n_digits..9 {
            nanos *= 10;
        }
    }
    let days = days_from_civil(i128::from(year), i128::from(month), i128::from(day));
    let secs = days * 86_400
        + i128::from(hour) * 3_600
        + i128::from(minute) * 60
        + i128::from(second.min(59));
    Some(secs * NANOS_PER_SEC + nanos)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i128, m: i128, d: i128) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

/// A byte cursor over ASCII timestamp text.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let b = self.next().filter(u8::is_ascii_digit)?;
            v = v * 10 + u32::from(b - b'0');
        }
        Some(v)
    }

    fn end(&self) -> Option<()> {
        (self.pos == self.bytes.len()).then_some(())
    }
}
