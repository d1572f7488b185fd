//! One queue group: its members and its round-robin cursor.
//!
//! Members are kept sorted by [`ConnId`] so the rotation is deterministic. The cursor is never
//! reduced when members leave; it is taken modulo the member count at each pick, which keeps the
//! rotation fair without bookkeeping on leave.

use crate::ids::ConnId;

/// The members of one `(topic, group)` and where the next delivery starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct QueueGroup {
    /// Distinct, ascending.
    members: Vec<ConnId>,
    /// Index (modulo `members.len()`) where the next pick starts looking.
    next: usize,
}

impl QueueGroup {
    /// Adds `conn`; returns false if it was already a member.
    pub(super) fn join(&mut self, conn: ConnId) -> bool {
        match self.members.binary_search(&conn) {
            Ok(_) => false,
            Err(at) => {
                self.members.insert(at, conn);
                true
            }
        }
    }

    /// Removes `conn`; returns false if it was not a member.
    pub(super) fn leave(&mut self, conn: ConnId) -> bool {
        match self.members.binary_search(&conn) {
            Ok(at) => {
                self.members.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Number of members.
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// The members, ascending.
    #[cfg(test)]
    pub(super) fn members(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.members.iter().copied()
    }

    /// True if nobody is left (the registry then drops the group).
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The first eligible member starting at the cursor, moving the cursor just past it.
    /// `None` (cursor unchanged) if no member is eligible.
    pub(super) fn pick(&mut self, eligible: &mut impl FnMut(ConnId) -> bool) -> Option<ConnId> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next % n;
        for step in 0..n {
            let at = (start + step) % n;
            let member = self.members[at];
            if eligible(member) {
                self.next = at + 1;
                return Some(member);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u128) -> ConnId {
        ConnId::from_u128(n)
    }

    fn group_of(members: &[u128]) -> QueueGroup {
        let mut g = QueueGroup::default();
        for &m in members {
            assert!(g.join(c(m)));
        }
        g
    }

    #[test]
    fn picks_rotate_through_members_in_ascending_order() {
        let mut g = group_of(&[3, 1, 2]);
        let picks: Vec<_> = (0..7).map(|_| g.pick(&mut |_| true)).collect();
        let want: Vec<_> = [1, 2, 3, 1, 2, 3, 1].iter().map(|&n| Some(c(n))).collect();
        assert_eq!(picks, want);
    }

    #[test]
    fn ineligible_members_are_skipped_and_the_cursor_moves_past_the_pick() {
        let mut g = group_of(&[1, 2, 3]);
        // Start at 1, 1 ineligible -> 2; next start at 3.
        assert_eq!(g.pick(&mut |m| m != c(1)), Some(c(2)));
        assert_eq!(g.pick(&mut |_| true), Some(c(3)));
        // Start wraps to 1; only 3 eligible -> 3, and the cursor goes past it (to 1).
        assert_eq!(g.pick(&mut |m| m == c(3)), Some(c(3)));
        assert_eq!(g.pick(&mut |_| true), Some(c(1)));
    }

    #[test]
    fn no_eligible_member_gives_none_and_keeps_the_cursor() {
        let mut g = group_of(&[1, 2]);
        assert_eq!(g.pick(&mut |_| true), Some(c(1)));
        assert_eq!(g.pick(&mut |_| false), None);
        assert_eq!(g.pick(&mut |_| true), Some(c(2)));
        assert_eq!(QueueGroup::default().pick(&mut |_| true), None);
    }

    #[test]
    fn join_and_leave_report_membership_changes() {
        let mut g = group_of(&[1]);
        assert!(!g.join(c(1)));
        assert!(!g.leave(c(2)));
        assert!(g.leave(c(1)));
        assert!(g.is_empty());
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn a_leave_behind_the_cursor_keeps_rotation_within_bounds() {
        let mut g = group_of(&[1, 2, 3]);
        assert_eq!(g.pick(&mut |_| true), Some(c(1)));
        assert_eq!(g.pick(&mut |_| true), Some(c(2)));
        assert_eq!(g.pick(&mut |_| true), Some(c(3)));
        g.leave(c(3));
        // Cursor 3 modulo 2 members starts at index 1.
        assert_eq!(g.pick(&mut |_| true), Some(c(2)));
        assert_eq!(g.pick(&mut |_| true), Some(c(1)));
    }
}
