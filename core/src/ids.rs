//! Identifiers that cross module boundaries.

use std::fmt;
use std::str::FromStr;

/// A connection id: a UUIDv7, rendered as the 36-character hyphenated string the clients see
/// (`server_ready.p.details.connection_id`, drain events, the Python API).
///
/// Ordered by value, and since v7 ids start with a millisecond timestamp, by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(uuid::Uuid);

impl ConnId {
    /// Wraps a UUID.
    pub const fn from_uuid(id: uuid::Uuid) -> Self {
        ConnId(id)
    }

    /// The UUID inside.
    pub const fn as_uuid(self) -> uuid::Uuid {
        self.0
    }

    /// A connection id for tests and tables: the UUID whose 128-bit value is `n`.
    pub const fn from_u128(n: u128) -> Self {
        ConnId(uuid::Uuid::from_u128(n))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({})", self.0.hyphenated())
    }
}

/// A string that is not a connection id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a connection id: {0:?}")]
pub struct BadConnId(pub String);

impl FromStr for ConnId {
    type Err = BadConnId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::try_parse(s)
            .map(ConnId)
            .map_err(|_| BadConnId(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips_through_its_hyphenated_string() {
        let id = ConnId::from_u128(0x0190_1234_5678_7abc_8def_0123_4567_89ab);
        let s = id.to_string();
        assert_eq!(s, "01901234-5678-7abc-8def-0123456789ab");
        assert_eq!(s.parse::<ConnId>(), Ok(id));
        assert!("not-a-uuid".parse::<ConnId>().is_err());
    }
}
