//! Time as an input.
//!
//! The core never reads a clock. Drivers hand it two kinds of time:
//!
//! - [`Instant`]: a monotonic point in microseconds since an arbitrary, driver-chosen origin. It
//!   orders deadlines (ping, idle, rate-limit refill). In production it comes from
//!   `tokio::time::Instant`, in simulation from turmoil's virtual clock.
//! - [`WallClock`]: Unix time in microseconds. It only ever appears *inside* messages
//!   (`ts`, `server_time`, `PONG.server_timestamp`, UUIDv7 ids) and never decides a deadline.
//!
//! Both are plain integers: `Copy`, `Ord`, constructible from a number, so tests and the
//! simulator control them exactly.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A monotonic instant in microseconds since a driver-chosen origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin (zero microseconds).
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000))
    }

    /// An instant `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the far future instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_micros(d)))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Wall-clock time: microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallClock(u64);

impl WallClock {
    /// The Unix epoch.
    pub const UNIX_EPOCH: WallClock = WallClock(0);

    /// `micros` microseconds after the Unix epoch.
    pub const fn from_unix_micros(micros: u64) -> Self {
        WallClock(micros)
    }

    /// `millis` milliseconds after the Unix epoch (saturating).
    pub const fn from_unix_millis(millis: u64) -> Self {
        WallClock(millis.saturating_mul(1_000))
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// Whole seconds since the Unix epoch.
    pub const fn unix_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// RFC 3339 with millisecond precision and a `Z` suffix, e.g. `2026-11-27T05:31:54.123Z`:
    /// the exact form the original server puts in `ts`, `server_time` and error `timestamp`.
    pub fn rfc3339_millis(self) -> Rfc3339Millis {
        Rfc3339Millis(self)
    }
}

/// Display adapter returned by [`WallClock::rfc3339_millis`]; formats without allocating twice.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339Millis(WallClock);

impl fmt::Display for Rfc3339Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.unix_millis();
        let secs = i64::try_from(millis / 1_000).unwrap_or(i64::MAX);
        // Years past 9999 cannot be written in RFC 3339; clamp to its last representable second
        // rather than fail (a wall clock that far ahead is a driver bug, not peer input).
        const MAX_RFC3339_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let (secs, ms) = if secs > MAX_RFC3339_SECS {
            (MAX_RFC3339_SECS, 999)
        } else {
            (secs, millis % 1_000)
        };
        let dt = time::OffsetDateTime::from_unix_timestamp(secs)
            .expect("invariant: seconds clamped to the RFC 3339 range");
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            ms
        )
    }
}

/// Whole microseconds in `d`, saturating at `u64::MAX`.
pub fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_arithmetic_saturates_instead_of_overflowing() {
        let far = Instant::from_micros(u64::MAX - 1);
        assert_eq!(
            far + Duration::from_secs(10),
            Instant::from_micros(u64::MAX)
        );
        assert_eq!(Instant::ZERO - far, Duration::ZERO);
        assert_eq!(
            Instant::from_secs(3) - Instant::from_secs(1),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn rfc3339_millis_matches_the_original_servers_format() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_764_221_514_123_456, "2025-11-27T05:31:54.123Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000Z"),
            (u64::MAX, "9999-12-31T23:59:59.999Z"),
        ];
        for (micros, want) in cases {
            let got = WallClock::from_unix_micros(micros)
                .rfc3339_millis()
                .to_string();
            assert_eq!(got, want, "micros={micros}");
        }
    }
}
