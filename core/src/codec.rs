//! LEB128 varints and a bounds-checked reader: the building blocks of every
//! binary format in the node (contexts, sibling sets, storage records).
//! Decoding never panics and never allocates more than the input justifies.

use thiserror::Error;

/// Why bytes could not be decoded, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} at byte {offset}")]
pub struct DecodeError {
    /// Offset into the decoded buffer where the problem was found.
    pub offset: usize,
    /// What was expected or what was wrong.
    pub what: &'static str,
}

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint length followed by the bytes.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// An error at the current offset.
    pub fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            offset: self.offset,
            what,
        }
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.offset).ok_or_else(|| self.error(what))?;
        self.offset += 1;
        Ok(byte)
    }

    /// Reads exactly `len` bytes.
    pub fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < len {
            return Err(self.error(what));
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let bytes = self.take(8, what)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    /// Reads an unsigned LEB128 varint; rejects encodings longer than 10
    /// bytes and ones that overflow 64 bits.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            let low = u64::from(byte & 0x7f);
            if shift == 63 && low > 1 {
                self.offset = start;
                return Err(self.error("varint overflows 64 bits"));
            }
            value |= low << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.offset = start;
        Err(self.error("varint longer than 10 bytes"))
    }

    /// Reads a varint that must fit `max`, as a usize.
    pub fn varint_at_most(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let start = self.offset;
        let value = self.varint(what)?;
        if value > max as u64 {
            self.offset = start;
            return Err(self.error(what));
        }
        Ok(value as usize)
    }

    /// Reads a varint length (at most `max`) and that many bytes.
    pub fn bytes(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.varint_at_most(max, what)?;
        self.take(len, what)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(value: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.varint("v").unwrap(), value);
            prop_assert!(reader.finish().is_ok());
        }

        #[test]
        fn reader_never_panics(bytes: Vec<u8>) {
            let mut reader = Reader::new(&bytes);
            let _ = reader.varint("v");
            let _ = reader.bytes(1000, "b");
            let _ = reader.u64_le("u");
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0xffu8; 11];
        assert!(Reader::new(&bytes).varint("v").is_err());
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&overflow).varint("v").is_err());
    }
}

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes bytes as unpadded base64url (RFC 4648 §5): safe in URLs, shells
/// and JSON without quoting.
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for index in 0..=chunk.len() {
            out.push(char::from(BASE64_URL[(word >> (18 - 6 * index)) as usize & 63]));
        }
    }
    out
}

/// The one way bytes from storage or the network are shown to people (the
/// CLI, `dump`, counterexamples, findings): as text when they are valid
/// UTF-8 of at most `limit` bytes with no control characters (so no escape
/// sequence ever reaches a terminal), quoted when `quoted`; otherwise as
/// `base64:` and base64url of at most `limit` bytes, prefixed by the whole
/// length when cut (`(1000 bytes) base64:…`).
pub fn printable(bytes: &[u8], quoted: bool, limit: usize) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if bytes.len() <= limit && !text.chars().any(char::is_control) => {
            if quoted {
                format!("{text:?}")
            } else {
                text.to_string()
            }
        }
        _ if bytes.len() > limit => format!("({} bytes) base64:{}…", bytes.len(), base64url_encode(&bytes[..limit])),
        _ => format!("base64:{}", base64url_encode(bytes)),
    }
}

/// Decodes unpadded base64url; `=` padding at the end is tolerated.
pub fn base64url_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut word: u32 = 0;
    let mut bits = 0;
    for (offset, byte) in trimmed.bytes().enumerate() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => {
                return Err(DecodeError {
                    offset,
                    what: "not a base64url character",
                })
            }
        };
        word = (word << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((word >> bits) as u8);
            word &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err(DecodeError {
            offset: trimmed.len(),
            what: "base64url text has a dangling character",
        });
    }
    Ok(out)
}

#[cfg(test)]
mod base64_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn printable_shows_text_as_text_and_anything_else_as_base64() {
        assert_eq!(printable(b"apple", false, 80), "apple");
        assert_eq!(printable(b"apple", true, 80), "\"apple\"");
        assert_eq!(printable(b"\x1b[2Jgone", false, 80), "base64:G1sySmdvbmU");
        assert_eq!(printable(&[0xff, 0], true, 80), "base64:_wA");
        assert_eq!(printable(b"abcdef", false, 3), "(6 bytes) base64:YWJj…");
    }

    #[test]
    fn known_vectors() {
        assert_eq!(base64url_encode(b""), "");
        assert_eq!(base64url_encode(b"f"), "Zg");
        assert_eq!(base64url_encode(b"fo"), "Zm8");
        assert_eq!(base64url_encode(b"foo"), "Zm9v");
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        assert!(base64url_decode("a").is_err());
        assert!(base64url_decode("a b").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(bytes: Vec<u8>) {
            prop_assert_eq!(base64url_decode(&base64url_encode(&bytes)).unwrap(), bytes);
        }
    }
}
