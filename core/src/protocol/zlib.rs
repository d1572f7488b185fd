//! zlib (RFC 1950) for `C:` frames.
//!
//! Owns compression of outbound `send_event` payloads (UPSTREAM §3.1: level 1, header `78 01`)
//! and capped decompression of inbound `C:` frames (CONTRACT D12).
//!
//! Invariant of [`zlib_decompress_capped`]: it streams through a fixed 16 KiB scratch buffer and
//! checks the running total before keeping any output, so a decompression bomb never makes it hold
//! more than `cap` bytes of output plus one scratch buffer, whatever the claimed expansion.

use std::io::Write;

use flate2::{Compression, Decompress, FlushDecompress, Status};

/// Scratch buffer size for streaming decompression: the "small" overshoot bound above the cap.
const SCRATCH_BYTES: usize = 16 * 1024;

/// Why capped decompression failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The decompressed data would exceed the cap.
    #[error("decompressed data exceeds {limit} bytes")]
    TooLarge {
        /// The cap that was exceeded, in bytes.
        limit: usize,
    },
    /// Not exactly one complete, valid zlib stream (bad header or checksum, corrupt deflate
    /// data, truncated input, or bytes after the end of the stream).
    #[error("corrupt or truncated zlib stream")]
    Corrupt,
}

/// Compresses `data` as one zlib stream at `level` (0 = store, 1 = fastest ... 9 = best; higher
/// values are treated as 9). Level 1 gives the `78 01` header the original emits.
pub fn zlib_compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        Compression::new(level.min(9)),
    );
    enc.write_all(data)
        .expect("invariant: writing into a Vec<u8> cannot fail");
    enc.finish()
        .expect("invariant: finishing into a Vec<u8> cannot fail")
}

/// Decompresses exactly one zlib stream, refusing output larger than `cap` bytes.
///
/// Exactly `cap` bytes is accepted. Trailing bytes after the stream end are [`DecompressError::Corrupt`].
pub fn zlib_decompress_capped(data: &[u8], cap: usize) -> Result<Vec<u8>, DecompressError> {
    let (result, out) = inflate_capped(data, cap);
    result.map(|()| out)
}

/// The decompression loop. Also returns the output buffer (partial on error) so tests can check
/// its capacity, which is the peak the function ever held: it only grows, and never past `cap`.
fn inflate_capped(data: &[u8], cap: usize) -> (Result<(), DecompressError>, Vec<u8>) {
    let mut inflater = Decompress::new(true);
    let mut out = Vec::new();
    let mut scratch = [0u8; SCRATCH_BYTES];
    let mut consumed = 0usize;
    loop {
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let Ok(status) =
            inflater.decompress(&data[consumed..], &mut scratch, FlushDecompress::None)
        else {
            return (Err(DecompressError::Corrupt), out);
        };
        // Both deltas are bounded by the slice lengths just passed in, so they fit in usize.
        let read = usize::try_from(inflater.total_in() - in_before).unwrap_or(usize::MAX);
        let produced = usize::try_from(inflater.total_out() - out_before).unwrap_or(usize::MAX);
        consumed = consumed.saturating_add(read).min(data.len());
        let needed = out.len().saturating_add(produced);
        if needed > cap {
            return (Err(DecompressError::TooLarge { limit: cap }), out);
        }
        if needed > out.capacity() {
            // Grow geometrically but never past the cap (plain `extend` could double past it).
            let target = needed.max(out.len().saturating_mul(2)).min(cap);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&scratch[..produced]);
        let result = match status {
            Status::StreamEnd if consumed == data.len() => Ok(()),
            Status::StreamEnd => Err(DecompressError::Corrupt),
            // No progress with all input offered: the stream is truncated.
            Status::Ok | Status::BufError if read == 0 && produced == 0 => {
                Err(DecompressError::Corrupt)
            }
            Status::Ok | Status::BufError => continue,
        };
        return (result, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn level_one_stream_has_the_fast_header() {
        let z = zlib_compress(b"{\"t\":\"x\"}", 1);
        assert_eq!(&z[..2], &[0x78, 0x01]);
        assert_eq!(zlib_decompress_capped(&z, 1024).unwrap(), b"{\"t\":\"x\"}");
    }

    #[test]
    fn output_of_exactly_the_cap_is_accepted_and_one_more_byte_is_refused() {
        let data = vec![b'a'; 4096];
        let z = zlib_compress(&data, 1);
        assert_eq!(zlib_decompress_capped(&z, 4096).unwrap(), data);
        assert_eq!(
            zlib_decompress_capped(&z, 4095),
            Err(DecompressError::TooLarge { limit: 4095 })
        );
    }

    #[test]
    fn zlib_bomb_is_refused_without_allocating_it() {
        // 50 MB of zeros compresses to about 50 KB; a 1 MiB cap must stop it early.
        let bomb = zlib_compress(&vec![0u8; 50 * 1024 * 1024], 9);
        assert!(bomb.len() < 100 * 1024);
        let (result, held) = inflate_capped(&bomb, 1 << 20);
        assert_eq!(result, Err(DecompressError::TooLarge { limit: 1 << 20 }));
        assert!(held.len() <= 1 << 20);
        assert!(
            held.capacity() <= 1 << 20,
            "peak buffer {} bytes",
            held.capacity()
        );
    }

    #[test]
    fn successful_output_buffer_never_exceeds_the_cap() {
        for (len, cap) in [(100_000, 100_000), (100_000, 150_000), (70_000, 1 << 20)] {
            let z = zlib_compress(&vec![7u8; len], 1);
            let out = zlib_decompress_capped(&z, cap).unwrap();
            assert_eq!(out.len(), len);
            assert!(
                out.capacity() <= cap,
                "capacity {} cap {cap}",
                out.capacity()
            );
        }
    }

    #[test]
    fn malformed_streams_are_corrupt() {
        let good = zlib_compress(b"hello world, hello world", 1);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_checksum = good.clone();
        let last = bad_checksum.len() - 1;
        bad_checksum[last] ^= 0xff;
        let cases: [(&str, &[u8]); 6] = [
            ("empty", b""),
            ("not zlib", b"hello"),
            ("header only", &[0x78, 0x01]),
            ("truncated", &good[..good.len() - 3]),
            ("trailing byte", &trailing),
            ("bad checksum", &bad_checksum),
        ];
        for (name, input) in cases {
            assert_eq!(
                zlib_decompress_capped(input, 1 << 20),
                Err(DecompressError::Corrupt),
                "{name}"
            );
        }
    }

    proptest! {
        #[test]
        fn compress_then_decompress_round_trips(
            data in prop::collection::vec(any::<u8>(), 0..40_000),
            level in 0u32..=10,
        ) {
            let z = zlib_compress(&data, level);
            prop_assert_eq!(zlib_decompress_capped(&z, data.len()).unwrap(), data);
        }

        #[test]
        fn decompressing_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(out) = zlib_decompress_capped(&data, 4096) {
                prop_assert!(out.len() <= 4096);
            }
        }
    }
}
