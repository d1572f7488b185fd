//! Limits of the local presence API and the errors it returns.

use crate::ids::ConnId;

/// Limits applied when this node's own connections track presence (UPSTREAM §9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceLimits {
    /// Largest presence data accepted, in bytes of serialized JSON. The original's default is
    /// 4096. Also applied to remote entries, which are dropped when larger.
    pub max_data_size: usize,
    /// Most visible users per topic; 0 means unlimited. Checked only when a local connection
    /// tracks a user who is not yet visible: remote entries are never refused for it, because
    /// refusing them would make the replicated state depend on delivery order.
    pub max_members: usize,
}

impl Default for PresenceLimits {
    /// The original server's defaults: 4096 bytes, unlimited members.
    fn default() -> Self {
        PresenceLimits {
            max_data_size: 4096,
            max_members: 0,
        }
    }
}

/// Why a local presence command was refused. Nothing changed when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// The serialized data exceeds [`PresenceLimits::max_data_size`].
    #[error("presence data is {size} bytes, more than the limit of {max}")]
    DataTooLarge {
        /// Serialized size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The topic already has [`PresenceLimits::max_members`] visible users and this one is new.
    #[error("topic {topic:?} already has {max_members} present users")]
    TopicFull {
        /// The topic.
        topic: String,
        /// The limit.
        max_members: usize,
    },
    /// The connection has presence in no topic.
    #[error("unknown connection {0}: it has no presence")]
    UnknownConnection(ConnId),
    /// The connection already tracks a different user in this topic.
    #[error("connection {conn} already tracks user {tracked:?} in topic {topic:?}")]
    UserMismatch {
        /// The connection.
        conn: ConnId,
        /// The topic.
        topic: String,
        /// The user it already tracks there.
        tracked: String,
    },
}
