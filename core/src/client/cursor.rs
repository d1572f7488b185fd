//! Per-topic positions: the stamp check and the subscription ack's forward-only rule.
//!
//! Owns [`Position`] (a topic's last accepted `(epoch, offset)`), the verdict on a stamped
//! message ([`check`]), the parsing of one `subscription_update` `recovery` entry
//! ([`AckEntry::parse`]) and the cursor update on an unrecovered ack ([`forward_only`]). Pure
//! functions; the machine in `mod.rs` applies them.
//!
//! The rules are stricter than the Python client's (which records any in-order-or-new-epoch
//! message and resets its cursor to whatever an ack says): a client must never skip a message
//! silently, so every jump in a topic's sequence either is filled by a replay or is announced
//! (`Gap` then `Recovered`/`NotRecovered`), and an ack can never move a cursor backwards
//! (which would make already-delivered messages look new and deliver them twice).

use serde_json::Value;

use crate::protocol::envelope::parse_epoch;

/// A topic's last accepted message: its epoch and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The ring incarnation (`e`).
    pub epoch: u32,
    /// The offset within the epoch (`o`).
    pub offset: u64,
}

impl Position {
    /// The epoch in its wire form: 8 lowercase hex digits.
    pub fn epoch_hex(&self) -> String {
        format!("{:08x}", self.epoch)
    }
}

/// What to do with a stamped message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Deliver it and record its position.
    Accept,
    /// Already seen (same epoch, offset at or behind the cursor): drop.
    Duplicate,
    /// Something is missing before it: drop and ask for recovery. `expected` is the offset that
    /// should have come (0 after an epoch change: the first offset of a new incarnation).
    Gap {
        /// The offset that should have come next.
        expected: u64,
    },
}

/// The verdict on a message stamped `(epoch, offset)` given the topic's position.
///
/// No position → accept. Same epoch: `offset == pos + 1` → accept, `offset ≤ pos` → duplicate,
/// beyond → gap. Another epoch: offset 0 → accept (a new ring incarnation starts at 0), beyond
/// → gap (the messages before it in the new epoch are missing; the recovery request carries
/// the old position and the server answers `NotRecovered` with the new one).
pub(super) fn check(current: Option<Position>, epoch: u32, offset: u64) -> Verdict {
    let Some(pos) = current else {
        return Verdict::Accept;
    };
    if epoch != pos.epoch {
        return if offset == 0 {
            Verdict::Accept
        } else {
            Verdict::Gap { expected: 0 }
        };
    }
    match pos.offset.checked_add(1) {
        Some(next) if offset == next => Verdict::Accept,
        Some(next) if offset > next => Verdict::Gap { expected: next },
        // offset ≤ pos (or pos is u64::MAX and nothing can follow in this epoch).
        _ => Verdict::Duplicate,
    }
}

/// One entry of a `subscription_update` ack's `recovery` object (UPSTREAM §2.5.7, §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AckEntry {
    /// The server's epoch for the topic; `None` (`null`): the server has no history.
    pub(super) epoch: Option<u32>,
    /// The server's last offset in that epoch.
    pub(super) offset: u64,
    /// Whether the missed messages were replayed (absent means true, as both clients read it).
    pub(super) recovered: bool,
    /// How many messages the replay holds.
    pub(super) count: u64,
}

impl AckEntry {
    /// Parses one entry: an object with `epoch` (8 hex digits or `null`/absent), `offset`
    /// (unsigned; required with an epoch, else 0), optional `recovered` (bool) and `count`
    /// (unsigned). Anything else is an error naming the field.
    pub(super) fn parse(v: &Value) -> Result<AckEntry, &'static str> {
        let obj = v.as_object().ok_or("recovery entry is not an object")?;
        let epoch = match obj.get("epoch") {
            None | Some(Value::Null) => None,
            Some(e) => Some(
                e.as_str()
                    .and_then(parse_epoch)
                    .ok_or("recovery entry epoch is not 8 hex digits")?,
            ),
        };
        let offset = match (obj.get("offset"), epoch) {
            (Some(o), _) => o
                .as_u64()
                .ok_or("recovery entry offset is not an unsigned integer")?,
            (None, None) => 0,
            (None, Some(_)) => return Err("recovery entry has an epoch but no offset"),
        };
        let recovered = match obj.get("recovered") {
            None => true,
            Some(r) => r
                .as_bool()
                .ok_or("recovery entry recovered is not a boolean")?,
        };
        let count = match obj.get("count") {
            None => 0,
            Some(c) => c
                .as_u64()
                .ok_or("recovery entry count is not an unsigned integer")?,
        };
        Ok(AckEntry {
            epoch,
            offset,
            recovered,
            count,
        })
    }
}

/// The cursor after an unrecovered ack: only ever forward within an epoch.
///
/// Same epoch as the cursor → `max(cursor, ack)` (live messages published between the
/// server's subscribe and its ack may already have moved the cursor past the ack's offset);
/// another epoch, or no cursor → the ack's position; `epoch: null` → no position.
pub(super) fn forward_only(
    current: Option<Position>,
    ack_epoch: Option<u32>,
    ack_offset: u64,
) -> Option<Position> {
    let epoch = ack_epoch?;
    match current {
        Some(pos) if pos.epoch == epoch => Some(Position {
            epoch,
            offset: pos.offset.max(ack_offset),
        }),
        _ => Some(Position {
            epoch,
            offset: ack_offset,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const fn pos(epoch: u32, offset: u64) -> Option<Position> {
        Some(Position { epoch, offset })
    }

    #[test]
    fn stamp_check_table() {
        let cases = [
            ("first message of a topic", None, (7, 42), Verdict::Accept),
            ("next in order", pos(7, 4), (7, 5), Verdict::Accept),
            ("same offset again", pos(7, 4), (7, 4), Verdict::Duplicate),
            ("older offset", pos(7, 4), (7, 1), Verdict::Duplicate),
            (
                "one missing",
                pos(7, 4),
                (7, 6),
                Verdict::Gap { expected: 5 },
            ),
            ("new epoch from 0", pos(7, 4), (8, 0), Verdict::Accept),
            (
                "new epoch mid-way",
                pos(7, 4),
                (8, 3),
                Verdict::Gap { expected: 0 },
            ),
            (
                "nothing after u64::MAX",
                pos(7, u64::MAX),
                (7, 0),
                Verdict::Duplicate,
            ),
        ];
        for (name, current, (e, o), want) in cases {
            assert_eq!(check(current, e, o), want, "{name}");
        }
    }

    #[test]
    fn forward_only_never_moves_back_within_an_epoch() {
        let cases = [
            ("ack ahead", pos(1, 5), (Some(1), 9), pos(1, 9)),
            ("ack behind live", pos(1, 12), (Some(1), 9), pos(1, 12)),
            ("other epoch taken", pos(1, 12), (Some(2), 3), pos(2, 3)),
            ("no cursor", None, (Some(2), 3), pos(2, 3)),
            ("server has no history", pos(1, 12), (None, 0), None),
        ];
        for (name, current, (e, o), want) in cases {
            assert_eq!(forward_only(current, e, o), want, "{name}");
        }
    }

    #[test]
    fn ack_entries_parse_leniently_only_where_the_clients_do() {
        let ok = |epoch, offset, recovered, count| {
            Ok(AckEntry {
                epoch,
                offset,
                recovered,
                count,
            })
        };
        let cases = [
            (
                json!({"epoch": "0000abcd", "offset": 9, "recovered": false, "count": 0}),
                ok(Some(0xabcd), 9, false, 0),
            ),
            (
                json!({"epoch": "0000abcd", "offset": 9, "count": 3}),
                ok(Some(0xabcd), 9, true, 3),
            ),
            (
                json!({"epoch": null, "offset": 0, "recovered": false}),
                ok(None, 0, false, 0),
            ),
            (json!({"recovered": false}), ok(None, 0, false, 0)),
            (json!([1]), Err("recovery entry is not an object")),
            (
                json!({"epoch": 5, "offset": 1}),
                Err("recovery entry epoch is not 8 hex digits"),
            ),
            (
                json!({"epoch": "0000abcd"}),
                Err("recovery entry has an epoch but no offset"),
            ),
            (
                json!({"epoch": "0000abcd", "offset": -1}),
                Err("recovery entry offset is not an unsigned integer"),
            ),
            (
                json!({"epoch": "0000abcd", "offset": 1, "recovered": "no"}),
                Err("recovery entry recovered is not a boolean"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(AckEntry::parse(&input), want, "{input}");
        }
    }
}
