//! Frames leaving the server.
//!
//! Owns [`Frame`], the one value the connection machine hands its driver for each WebSocket data
//! frame. A frame is already fully encoded (system message text, `C:`/`M:`/`E:` binary, ...);
//! the driver only chooses the WebSocket opcode from the variant.
//!
//! Invariant: a [`Frame::Text`] payload is valid UTF-8. Every constructor in this crate keeps it;
//! code building the variant by hand must too (a WebSocket text frame with invalid UTF-8 makes
//! the client close with 1007).

use bytes::Bytes;

/// One outbound WebSocket data frame, payload already encoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A text frame (opcode 1). The payload is valid UTF-8.
    Text(Bytes),
    /// A binary frame (opcode 2).
    Binary(Bytes),
}

impl Frame {
    /// A text frame from a string: the UTF-8 invariant holds by construction.
    pub fn text(s: impl Into<String>) -> Frame {
        Frame::Text(Bytes::from(s.into()))
    }

    /// A binary frame from any byte buffer.
    pub fn binary(b: impl Into<Bytes>) -> Frame {
        Frame::Binary(b.into())
    }

    /// The payload bytes, whatever the opcode.
    pub fn payload(&self) -> &[u8] {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b,
        }
    }

    /// The payload as shared bytes (cheap clone, for fan-out to many connections).
    pub fn bytes(&self) -> &Bytes {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }

    /// Whether this is a text frame.
    pub fn is_text(&self) -> bool {
        matches!(self, Frame::Text(_))
    }

    /// The payload as text, when this is a text frame holding valid UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Frame::Text(b) => std::str::from_utf8(b).ok(),
            Frame::Binary(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_frames_expose_payload_and_kind() {
        let t = Frame::text("héllo");
        assert_eq!(t.payload(), "héllo".as_bytes());
        assert_eq!(t.len(), 6);
        assert!(t.is_text() && !t.is_empty());
        assert_eq!(t.as_text(), Some("héllo"));

        let b = Frame::binary(vec![0xff, 0x00]);
        assert_eq!(b.payload(), &[0xff, 0x00]);
        assert!(!b.is_text());
        assert_eq!(b.as_text(), None);
        assert!(Frame::binary(Vec::new()).is_empty());
    }
}
