//! zstd for MSG payloads: level-1 compression and capped decompression.
//!
//! Decompression is one-shot into a buffer allocated once: of exactly the size the zstd frame
//! headers record when every frame records it (refused before any allocation when that is over
//! the cap), else of the cap itself. One-shot decoding keeps no window buffer of its own, so a
//! bomb — whatever its declared window or content size — costs at most the cap plus the reused
//! decompression context, and ends in [`FrameError::DecompressedTooLarge`].

use std::fmt;

use super::FrameError;

/// libzstd's name for `ZSTD_error_dstSize_tooSmall` (what a bomb without a recorded content size
/// runs into). The zstd crate reports errors by name only; a test pins this string.
const DST_TOO_SMALL: &str = "Destination buffer is too small";

/// A reusable zstd compression context, created on first use.
#[derive(Default)]
pub(super) struct Compressor(Option<zstd::bulk::Compressor<'static>>);

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("ready", &self.0.is_some())
            .finish()
    }
}

impl Compressor {
    /// `data` compressed at [`super::ZSTD_LEVEL`], `None` if zstd failed (the caller then sends
    /// the payload uncompressed).
    pub(super) fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if self.0.is_none() {
            self.0 = zstd::bulk::Compressor::new(super::ZSTD_LEVEL).ok();
        }
        self.0.as_mut()?.compress(data).ok()
    }
}

/// A reusable zstd decompression context, created on first use.
#[derive(Default)]
pub(super) struct Decompressor(Option<zstd::bulk::Decompressor<'static>>);

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("ready", &self.0.is_some())
            .finish()
    }
}

impl Decompressor {
    /// Decompresses `data`, refusing more than `cap` bytes of output. Empty input is refused
    /// too: a compressed payload is at least one zstd frame (libzstd would call it "nothing").
    pub(super) fn decompress(&mut self, data: &[u8], cap: usize) -> Result<Vec<u8>, FrameError> {
        if data.is_empty() {
            return Err(FrameError::BadCompression);
        }
        let capacity = planned_capacity(data, cap)?;
        if self.0.is_none() {
            self.0 = Some(zstd::bulk::Decompressor::new().map_err(|_| FrameError::BadCompression)?);
        }
        let dctx = self.0.as_mut().ok_or(FrameError::BadCompression)?;
        let mut out = Vec::with_capacity(capacity);
        match dctx.decompress_to_buffer(data, &mut out) {
            Ok(_) => Ok(out),
            Err(e) if capacity == cap && e.to_string() == DST_TOO_SMALL => {
                Err(FrameError::DecompressedTooLarge { limit: cap })
            }
            Err(_) => Err(FrameError::BadCompression),
        }
    }
}

/// The output buffer [`Decompressor::decompress`] allocates for `data`: the recorded total size
/// if every zstd frame in it records one (an error if it is over `cap`), else `cap`. Never above
/// `cap`.
pub(super) fn planned_capacity(data: &[u8], cap: usize) -> Result<usize, FrameError> {
    match recorded_size(data) {
        Some(n) if n > cap as u64 => Err(FrameError::DecompressedTooLarge { limit: cap }),
        Some(n) => Ok(usize::try_from(n).unwrap_or(cap)),
        None => Ok(cap),
    }
}

/// The sum of the content sizes recorded in the headers of the zstd frames making up `data`;
/// `None` if any frame records none, `data` is not a sequence of whole frames, or the sum
/// overflows.
fn recorded_size(mut data: &[u8]) -> Option<u64> {
    let mut total = 0u64;
    while !data.is_empty() {
        let frame_len = zstd::zstd_safe::find_frame_compressed_size(data)
            .ok()
            .filter(|&n| n > 0)?;
        let content = zstd::zstd_safe::get_frame_content_size(data).ok()??;
        total = total.checked_add(content)?;
        data = data.get(frame_len..)?;
    }
    Some(total)
}
