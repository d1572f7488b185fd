//! The application event queue, bounded in events **and in bytes**.
//!
//! The count bound (`max_inbound_queue_size`, default 131 072) alone let one client that sends
//! large messages faster than the application consumes them park up to 131 072 × 1 MiB in
//! memory. So every queued event is also charged its approximate size ([`event_bytes`]: the
//! payload, each decoded JSON node and string), and a data event (`Msg`, `Raw`, `Bin`) that
//! would take the queue past [`inbound_queue_budget`] is dropped and counted exactly like one
//! that finds the queue full. Lifecycle events (connect, disconnect, presence) are charged but
//! never refused for bytes: the application must not miss a `Disconnect` because of someone
//! else's payloads. An event is uncharged when the application takes it.
//!
//! **Back-pressure first.** Dropping is the last resort: a connection reads its socket only
//! while the queue has room ([`EventSender::has_room`]: more than [`reserve`] free slots and
//! the byte budget less than 15/16 used), and otherwise waits for the application to take
//! events ([`EventSender::room_freed`]), so a client sending faster than the application
//! consumes is slowed by TCP instead of losing messages. Only what is already read when the
//! queue fills (at most one read buffer per connection, against the reserve) can still be
//! refused, and is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::sync::{Notify, futures::Notified, mpsc};

use super::ServerEvent;

/// The byte budget holds at least this many messages of `max_message_size`.
pub const INBOUND_QUEUE_MAX_SIZE_MESSAGES: usize = 64;
/// The byte budget is never below this (64 MiB), whatever `max_message_size` is.
pub const INBOUND_QUEUE_MIN_BYTES: usize = 64 << 20;

/// Bytes the event queue may hold: room for [`INBOUND_QUEUE_MAX_SIZE_MESSAGES`] maximal
/// messages, at least [`INBOUND_QUEUE_MIN_BYTES`].
pub fn inbound_queue_budget(max_message_size: usize) -> usize {
    INBOUND_QUEUE_MAX_SIZE_MESSAGES
        .saturating_mul(max_message_size)
        .max(INBOUND_QUEUE_MIN_BYTES)
}

/// An event with the bytes it was charged.
#[derive(Debug)]
pub(super) struct Queued {
    event: ServerEvent,
    bytes: usize,
}

/// The server's side of the queue.
#[derive(Debug)]
pub(super) struct EventSender {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<AtomicUsize>,
    budget: usize,
    reserve: usize,
    room: Arc<Notify>,
}

/// The application's side of the queue.
#[derive(Debug)]
pub(super) struct EventReceiver {
    rx: mpsc::Receiver<Queued>,
    bytes: Arc<AtomicUsize>,
    reserve: usize,
    room: Arc<Notify>,
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        // Nobody will take events any more: no reader may keep waiting for room.
        self.room.notify_waiters();
    }
}

/// Free slots kept for what connections have already read when the queue fills, and for
/// lifecycle events: a sixteenth of the queue.
fn reserve(max_events: usize) -> usize {
    max_events / 16
}

/// A queue of at most `max_events` events and [`inbound_queue_budget`] bytes of data events.
pub(super) fn channel(max_events: usize, max_message_size: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(max_events);
    let bytes = Arc::new(AtomicUsize::new(0));
    let room = Arc::new(Notify::new());
    let sender = EventSender {
        tx,
        bytes: Arc::clone(&bytes),
        budget: inbound_queue_budget(max_message_size),
        reserve: reserve(max_events),
        room: Arc::clone(&room),
    };
    let receiver = EventReceiver {
        rx,
        bytes,
        reserve: reserve(max_events),
        room,
    };
    (sender, receiver)
}

impl EventSender {
    /// Queues `event`; `false` when it was refused (queue full, or a data event over the byte
    /// budget) and must be counted as dropped.
    pub(super) fn try_send(&self, event: ServerEvent) -> bool {
        let bytes = event_bytes(&event);
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        let is_data = matches!(
            event,
            ServerEvent::Msg(..) | ServerEvent::Raw(..) | ServerEvent::Bin(..)
        );
        // An empty queue always takes one event, so no single message is refused for its size.
        let over = is_data && before > 0 && before.saturating_add(bytes) > self.budget;
        if !over && self.tx.try_send(Queued { event, bytes }).is_ok() {
            return true;
        }
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        false
    }

    /// Whether connections may read more input: more than the reserve free, the byte budget
    /// under 15/16 used, or nobody left to consume (then reading on lets connections end).
    pub(super) fn has_room(&self) -> bool {
        self.tx.is_closed()
            || (self.tx.capacity() > self.reserve
                && self.bytes.load(Ordering::Acquire) <= self.budget - self.budget / 16)
    }

    /// Completes after the application next takes events. Create it **before** checking
    /// [`EventSender::has_room`]: a wake-up between the check and the wait is then not lost.
    pub(super) fn room_freed(&self) -> Notified<'_> {
        self.room.notified()
    }

    /// The most events the queue holds.
    pub(super) fn max_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Free event slots.
    pub(super) fn capacity(&self) -> usize {
        self.tx.capacity()
    }
}

impl EventReceiver {
    fn take(&self, queued: Queued) -> ServerEvent {
        self.bytes.fetch_sub(queued.bytes, Ordering::AcqRel);
        queued.event
    }

    /// Wakes connections waiting for room, once there is room again (not on every event
    /// while the queue stays full: the waiters would wake only to wait again).
    fn freed(&self) {
        if self.rx.capacity() > self.reserve {
            self.room.notify_waiters();
        }
    }

    /// The next event; `None` once the server is gone and the queue is empty.
    pub(super) async fn recv(&mut self) -> Option<ServerEvent> {
        let queued = self.rx.recv().await?;
        let event = self.take(queued);
        self.freed();
        Some(event)
    }

    /// Waits for the first event, then appends up to `max` that are queued to `out`.
    pub(super) async fn recv_many(&mut self, out: &mut Vec<ServerEvent>, max: usize) -> usize {
        let mut batch = Vec::new();
        let n = self.rx.recv_many(&mut batch, max).await;
        out.extend(batch.into_iter().map(|q| self.take(q)));
        self.freed();
        n
    }

    /// [`EventReceiver::recv`] for a thread outside the runtime.
    pub(super) fn blocking_recv(&mut self) -> Option<ServerEvent> {
        let queued = self.rx.blocking_recv()?;
        let event = self.take(queued);
        self.freed();
        Some(event)
    }
}

/// Approximate memory of an event: its own size, strings, payload and every JSON node.
fn event_bytes(event: &ServerEvent) -> usize {
    std::mem::size_of::<ServerEvent>()
        + match event {
            ServerEvent::Msg(_, v) => json_bytes(v),
            ServerEvent::Raw(_, s) | ServerEvent::Connect(_, s) => s.len(),
            ServerEvent::Bin(_, b) => b.len(),
            ServerEvent::AuthConnect(_, user, cookies) => user.len() + cookies.len(),
            ServerEvent::PresenceJoin {
                topic,
                user_id,
                data,
            }
            | ServerEvent::PresenceLeave {
                topic,
                user_id,
                data,
            } => topic.len() + user_id.len() + json_bytes(data),
            ServerEvent::Disconnect(_) => 0,
        }
}

/// Approximate heap bytes of a JSON value (each node, string and key), without recursion.
fn json_bytes(value: &Value) -> usize {
    let mut total = 0usize;
    let mut pending = vec![value];
    while let Some(v) = pending.pop() {
        total = total.saturating_add(std::mem::size_of::<Value>());
        match v {
            Value::String(s) => total = total.saturating_add(s.len()),
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    total = total.saturating_add(std::mem::size_of::<String>() + key.len());
                    pending.push(item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;
    use wse_core::ConnId;

    fn bin(id: ConnId, n: usize) -> ServerEvent {
        ServerEvent::Bin(id, Bytes::from(vec![0; n]))
    }

    #[test]
    fn the_budget_holds_64_maximal_messages_and_never_less_than_64_mib() {
        assert_eq!(inbound_queue_budget(1 << 20), 64 << 20);
        assert_eq!(inbound_queue_budget(1024), 64 << 20);
        assert_eq!(inbound_queue_budget(16 << 20), 1 << 30);
        assert_eq!(inbound_queue_budget(usize::MAX), usize::MAX);
    }

    #[test]
    fn data_past_the_byte_budget_is_refused_lifecycle_events_are_not_and_taking_frees_it() {
        let id = ConnId::from_u128(1);
        let (tx, mut rx) = channel(1000, 1024); // 64 MiB budget
        let big = 40 << 20;
        assert!(
            tx.try_send(bin(id, big)),
            "an empty queue takes any one event"
        );
        assert!(
            !tx.try_send(bin(id, big)),
            "a second one would pass the budget"
        );
        assert!(!tx.try_send(ServerEvent::Raw(id, "x".repeat(big))));
        assert!(
            tx.try_send(ServerEvent::Disconnect(id)),
            "lifecycle is never refused"
        );
        assert!(tx.try_send(bin(id, 1024)), "small data still fits");
        assert_eq!(rx.blocking_recv(), Some(bin(id, big)));
        assert!(tx.try_send(bin(id, big)), "taken events free their bytes");
        let mut out = Vec::new();
        assert_eq!(
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
                .block_on(rx.recv_many(&mut out, 10)),
            3
        );
        assert_eq!(rx.bytes.load(Ordering::Acquire), 0, "every charge returned");
    }

    #[test]
    fn a_full_queue_refuses_without_keeping_the_charge() {
        let id = ConnId::from_u128(2);
        let (tx, rx) = channel(1, 1 << 20);
        assert!(tx.try_send(ServerEvent::Disconnect(id)));
        assert!(!tx.try_send(ServerEvent::Disconnect(id)));
        assert_eq!(
            rx.bytes.load(Ordering::Acquire),
            event_bytes(&ServerEvent::Disconnect(id))
        );
    }

    #[test]
    fn decoded_json_is_charged_per_node_string_and_key() {
        let flat = json_bytes(&json!([null, null, null]));
        assert_eq!(flat, 4 * std::mem::size_of::<Value>());
        let object = json_bytes(&json!({"ab": "xyz"}));
        let node = std::mem::size_of::<Value>();
        assert_eq!(object, 2 * node + std::mem::size_of::<String>() + 2 + 3);
    }
}
