//! Payloads that are small on the wire and enormous (or endlessly deep) once decoded.
//!
//! - [`zlib_bomb`]: a valid zlib stream of zeros written by hand with DEFLATE's fixed Huffman
//!   codes (RFC 1951 §3.2.6): one literal `0`, then `repeats` copies of "length 258,
//!   distance 1" at 13 bits each — about 158 output bytes per input byte, built in
//!   microseconds without ever holding the inflated data.
//! - [`msgpack_nest`]: `depth` nested one-element arrays around `nil`.

/// Packs bits LSB-first, as DEFLATE does.
#[derive(Debug, Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter {
    /// Appends the low `n` bits of `value`, least significant first (header fields).
    fn bits(&mut self, value: u32, n: u32) {
        self.acc |= u64::from(value) << self.bits;
        self.bits += n;
        while self.bits >= 8 {
            self.out.push((self.acc & 0xff) as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// Appends an `n`-bit Huffman code, most significant bit first (RFC 1951 §3.1.1).
    fn code(&mut self, code: u32, n: u32) {
        let reversed = code.reverse_bits() >> (32 - n);
        self.bits(reversed, n);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.bits > 0 {
            self.out.push((self.acc & 0xff) as u8);
        }
        self.out
    }
}

/// Bytes one repeat of [`zlib_bomb`] inflates to.
pub(crate) const BOMB_REPEAT_BYTES: usize = 258;

/// A zlib stream inflating to `1 + 258 * repeats` zero bytes, `13 * repeats / 8 + 8` bytes
/// long.
pub(crate) fn zlib_bomb(repeats: usize) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(1, 1); // BFINAL
    w.bits(1, 2); // BTYPE = 01, fixed Huffman codes
    w.code(0x30, 8); // literal 0 (literals 0..=143 are 0x30 + value, 8 bits)
    for _ in 0..repeats {
        w.code(0xc0 + (285 - 280), 8); // length symbol 285 = 258 bytes, no extra bits
        w.code(0, 5); // distance code 0 = distance 1, no extra bits
    }
    w.code(0, 7); // end of block (symbol 256: 7 bits, 0000000)
    let deflate = w.finish();
    let inflated = 1 + BOMB_REPEAT_BYTES as u64 * repeats as u64;
    // Adler-32 of zeros: a stays 1, b adds 1 per byte.
    let adler = (((inflated % 65_521) as u32) << 16) | 1;
    let mut out = vec![0x78, 0x01]; // deflate, 32 KiB window, no dictionary, FCHECK valid
    out.extend_from_slice(&deflate);
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

/// msgpack: `depth` nested `fixarray(1)` headers around `nil`.
pub(crate) fn msgpack_nest(depth: usize) -> Vec<u8> {
    let mut out = vec![0x91; depth];
    out.push(0xc0);
    out
}
