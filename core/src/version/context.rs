//! The context a get returns and a put carries back: opaque to clients,
//! compact, versioned and checksummed, so a mangled context is refused
//! instead of silently writing with the wrong causal past.
//!
//! Binary form (format 0xC1):
//!
//! ```text
//! u8       0xC1                format tag and version
//! clock    varint count, then per entry varint node, incarnation, counter, timestamp_ms
//! u32 LE   CRC32C of every preceding byte
//! ```
//!
//! Its text form (what the CLI prints and takes) is unpadded base64url of
//! the binary form. The empty context encodes as 6 bytes, 8 characters.

use thiserror::Error;

use super::clock::{put_clock, read_clock, VectorClock};
use crate::codec::{base64url_decode, base64url_encode, DecodeError, Reader};

const CONTEXT_FORMAT_V1: u8 = 0xC1;

/// Why a context could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    /// The text is not base64url.
    #[error("context is not base64url text: {0}")]
    NotBase64(DecodeError),
    /// Too short to be a context at all.
    #[error("context is {len} bytes, shorter than any context (6)")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// The first byte names a format this build does not know.
    #[error("context format {found:#04x} is unknown (this build reads {CONTEXT_FORMAT_V1:#04x})")]
    UnknownFormat {
        /// The byte found.
        found: u8,
    },
    /// The checksum does not match: the context was altered or cut.
    #[error("context checksum mismatch (got {got:#010x}, expected {expected:#010x}): it was altered or cut")]
    Checksum {
        /// The checksum computed over the bytes.
        got: u32,
        /// The checksum stored in the context.
        expected: u32,
    },
    /// The checksum matched but the clock inside is malformed.
    #[error("context clock is malformed: {0}")]
    Malformed(DecodeError),
}

/// Encodes a context as base64url text.
pub fn encode_context(clock: &VectorClock) -> String {
    let mut bytes = vec![CONTEXT_FORMAT_V1];
    put_clock(&mut bytes, clock);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    base64url_encode(&bytes)
}

/// Decodes a context from its text form.
///
/// # Errors
/// Anything that is not exactly a context this build wrote: bad text, an
/// unknown format, a checksum mismatch, a malformed clock.
pub fn decode_context(text: &str) -> Result<VectorClock, ContextError> {
    let bytes = base64url_decode(text.trim()).map_err(ContextError::NotBase64)?;
    if bytes.len() < 6 {
        return Err(ContextError::TooShort { len: bytes.len() });
    }
    if bytes[0] != CONTEXT_FORMAT_V1 {
        return Err(ContextError::UnknownFormat { found: bytes[0] });
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let expected = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let got = crc32c::crc32c(body);
    if got != expected {
        return Err(ContextError::Checksum { got, expected });
    }
    let mut reader = Reader::new(&body[1..]);
    let clock = read_clock(&mut reader).map_err(ContextError::Malformed)?;
    reader.finish().map_err(ContextError::Malformed)?;
    Ok(clock)
}

#[cfg(test)]
mod tests {
    use super::super::clock::tests::arb_clock;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn contexts_round_trip(clock in arb_clock()) {
            prop_assert_eq!(decode_context(&encode_context(&clock)).unwrap(), clock);
        }

        #[test]
        fn garbage_is_rejected_not_panicked_on(text in ".{0,64}") {
            let _ = decode_context(&text);
        }

        #[test]
        fn a_flipped_byte_is_rejected(clock in arb_clock(), index: usize, flip in 1u8..=255) {
            let text = encode_context(&clock);
            let mut bytes = base64url_decode(&text).unwrap();
            let index = index % bytes.len();
            bytes[index] ^= flip;
            prop_assert!(decode_context(&base64url_encode(&bytes)).is_err());
        }
    }

    #[test]
    fn the_empty_context_is_short() {
        assert_eq!(encode_context(&VectorClock::new()).len(), 8);
        assert_eq!(decode_context("bm9wZQ"), Err(ContextError::TooShort { len: 4 }));
    }
}
