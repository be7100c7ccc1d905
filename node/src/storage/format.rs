//! The segment file format, byte by byte.
//!
//! A data directory holds one directory per partition, `p<id:05>`, and a
//! `LOCK` file: the pid of the engine that has the directory open, which
//! holds an exclusive `flock` on it (a second engine is refused).
//!
//! A partition directory holds segment files named `<id:010>.seg`, append
//! only. Each starts with a 32-byte header:
//!
//! ```text
//! offset  size  field
//!  0       8    magic          b"DYNSEG\r\n"  (the \r\n catches text-mode mangling)
//!  8       2    format version u16 LE = 1
//! 10       2    flags          u16 LE; bit 0: written by compaction
//! 12       4    partition      u32 LE
//! 16       8    segment id     u64 LE (equals the file name)
//! 24       4    reserved       zero
//! 28       4    CRC32C         of bytes 0..28, u32 LE
//! ```
//!
//! then records, back to back:
//!
//! ```text
//! offset  size  field
//!  0       4    body length    u32 LE, in 10 ..= RECORD_BODY_BYTES_MAX
//!  4       4    CRC32C         u32 LE, of bytes 0..4 followed by the body
//!  8       1    kind           1 = put (payload is the key's state), 2 = remove
//!  9       8    sequence       u64 LE, per partition, strictly increasing in write order
//! 17       ..   key length     varint, at most KEY_BYTES_MAX
//!  ..      ..   key
//!  ..      ..   payload        the rest of the body (empty for remove)
//! ```
//!
//! The sequence number makes recovery independent of file order: the record
//! with the highest sequence for a key wins, so compaction may copy records
//! into a segment numbered after the active one.

use dynamo_core::codec::{put_varint, Reader};
use dynamo_core::ids::PartitionId;
use dynamo_core::limits::{KEY_BYTES_MAX, RECORD_BODY_BYTES_MAX};

/// A segment file of one partition; ids only grow. Its file is named by
/// the id, zero-padded to ten digits (`0000000007.seg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl std::fmt::Display for SegmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// The segment magic.
pub const MAGIC: [u8; 8] = *b"DYNSEG\r\n";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the segment header.
pub const HEADER_BYTES: usize = 32;
/// Bytes of a record's length and checksum.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Smallest body: kind, sequence, a one-byte varint key length.
pub const RECORD_BODY_BYTES_MIN: usize = 10;
/// Header flag: the segment was written by compaction.
pub const FLAG_COMPACTED: u16 = 1;

/// What a record does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// The payload is the key's new state.
    Put,
    /// The key is gone.
    Remove,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Put => 1,
            RecordKind::Remove => 2,
        }
    }
}

/// A segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Flags (see [`FLAG_COMPACTED`]).
    pub flags: u16,
    /// The partition the segment belongs to.
    pub partition: PartitionId,
    /// The segment's id.
    pub segment: SegmentId,
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer than [`HEADER_BYTES`] bytes.
    Short,
    /// Not our magic.
    Magic,
    /// A format version this build does not read.
    Version(u16),
    /// The checksum does not match.
    Checksum,
}

impl SegmentHeader {
    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[10..12].copy_from_slice(&self.flags.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.partition.0.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.segment.0.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Reads a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderProblem> {
        if bytes.len() < HEADER_BYTES {
            return Err(HeaderProblem::Short);
        }
        if bytes[0..8] != MAGIC {
            return Err(HeaderProblem::Magic);
        }
        let stored = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
        if crc32c::crc32c(&bytes[0..28]) != stored {
            return Err(HeaderProblem::Checksum);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(HeaderProblem::Version(version));
        }
        let mut segment = [0u8; 8];
        segment.copy_from_slice(&bytes[16..24]);
        Ok(SegmentHeader {
            flags: u16::from_le_bytes([bytes[10], bytes[11]]),
            partition: PartitionId(u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]])),
            segment: SegmentId(u64::from_le_bytes(segment)),
        })
    }
}

/// Appends one record to `out`; returns its total length in bytes.
pub fn encode_record(out: &mut Vec<u8>, kind: RecordKind, sequence: u64, key: &[u8], payload: &[u8]) -> usize {
    debug_assert!(key.len() <= KEY_BYTES_MAX);
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    out.push(kind.code());
    out.extend_from_slice(&sequence.to_le_bytes());
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    let body_len = out.len() - start - RECORD_HEADER_BYTES;
    assert!(body_len <= RECORD_BODY_BYTES_MAX, "callers check sizes before encoding");
    let len_bytes = (body_len as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &out[start + RECORD_HEADER_BYTES..]);
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// The exact size [`encode_record`] will produce.
pub fn record_len(key: &[u8], payload: &[u8]) -> usize {
    let mut varint = Vec::with_capacity(10);
    put_varint(&mut varint, key.len() as u64);
    RECORD_HEADER_BYTES + 1 + 8 + varint.len() + key.len() + payload.len()
}

/// One decoded record, borrowing from the buffer it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Put or remove.
    pub kind: RecordKind,
    /// Per-partition sequence number.
    pub sequence: u64,
    /// The key.
    pub key: &'a [u8],
    /// The payload (empty for remove).
    pub payload: &'a [u8],
    /// Total bytes of the record, headers included.
    pub len: usize,
}

/// What is at an offset of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan<'a> {
    /// A whole, valid record.
    Record(Record<'a>),
    /// Nothing: the offset is the end of the data.
    End,
    /// The bytes stop inside a record: fewer than a header, or a body that
    /// runs past the end.
    Truncated,
    /// The length field is out of range.
    BadLength(u32),
    /// The checksum does not match.
    Checksum {
        /// The checksum computed over the bytes.
        got: u32,
        /// The checksum stored in the record.
        expected: u32,
    },
    /// The checksum matches but the body is malformed (a bug, not a torn
    /// write).
    Malformed(&'static str),
}

/// Reads the record at the start of `bytes` (the rest of a segment).
pub fn scan_record(bytes: &[u8]) -> Scan<'_> {
    scan(bytes, true)
}

/// [`scan_record`] for bytes a checksum over many records has verified
/// already (a commit log batch): the record's own checksum is not computed
/// again. Lengths and the body's shape are still checked.
pub fn scan_verified_record(bytes: &[u8]) -> Scan<'_> {
    scan(bytes, false)
}

fn scan(bytes: &[u8], check_crc: bool) -> Scan<'_> {
    if bytes.is_empty() {
        return Scan::End;
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Scan::Truncated;
    }
    let body_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if (body_len as usize) < RECORD_BODY_BYTES_MIN || body_len as usize > RECORD_BODY_BYTES_MAX {
        return Scan::BadLength(body_len);
    }
    let total = RECORD_HEADER_BYTES + body_len as usize;
    if bytes.len() < total {
        return Scan::Truncated;
    }
    let expected = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = &bytes[RECORD_HEADER_BYTES..total];
    if check_crc {
        let got = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..4]), body);
        if got != expected {
            return Scan::Checksum { got, expected };
        }
    }
    let mut reader = Reader::new(body);
    let kind = match reader.u8("kind") {
        Ok(1) => RecordKind::Put,
        Ok(2) => RecordKind::Remove,
        _ => return Scan::Malformed("unknown record kind"),
    };
    let Ok(sequence) = reader.u64_le("sequence") else {
        return Scan::Malformed("body too short for a sequence");
    };
    let Ok(key) = reader.bytes(KEY_BYTES_MAX, "key") else {
        return Scan::Malformed("bad key length");
    };
    let payload = &body[reader.offset()..];
    if kind == RecordKind::Remove && !payload.is_empty() {
        return Scan::Malformed("remove record with a payload");
    }
    Scan::Record(Record {
        kind,
        sequence,
        key,
        payload,
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let header = SegmentHeader {
            flags: FLAG_COMPACTED,
            partition: PartitionId(7),
            segment: SegmentId(42),
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for index in 0..HEADER_BYTES {
            let mut damaged = bytes;
            damaged[index] ^= 0x40;
            assert!(SegmentHeader::decode(&damaged).is_err(), "byte {index}");
        }
        assert_eq!(SegmentHeader::decode(&bytes[..31]), Err(HeaderProblem::Short));
    }

    proptest! {
        #[test]
        fn records_round_trip(sequence: u64, key in proptest::collection::vec(any::<u8>(), 0..300), payload in proptest::collection::vec(any::<u8>(), 0..3000), remove: bool) {
            let kind = if remove { RecordKind::Remove } else { RecordKind::Put };
            let payload = if remove { Vec::new() } else { payload };
            let mut out = vec![0xAA];
            let len = encode_record(&mut out, kind, sequence, &key, &payload);
            prop_assert_eq!(len, record_len(&key, &payload));
            match scan_record(&out[1..]) {
                Scan::Record(record) => {
                    prop_assert_eq!(record.kind, kind);
                    prop_assert_eq!(record.sequence, sequence);
                    prop_assert_eq!(record.key, &key[..]);
                    prop_assert_eq!(record.payload, &payload[..]);
                    prop_assert_eq!(record.len, len);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn a_flipped_byte_is_never_served(key in proptest::collection::vec(any::<u8>(), 0..64), payload in proptest::collection::vec(any::<u8>(), 0..256), index: usize, flip in 1u8..=255) {
            let mut out = Vec::new();
            encode_record(&mut out, RecordKind::Put, 9, &key, &payload);
            let index = index % out.len();
            out[index] ^= flip;
            prop_assert!(!matches!(scan_record(&out), Scan::Record(_)));
        }

        #[test]
        fn every_cut_is_truncated(key in proptest::collection::vec(any::<u8>(), 0..64), payload in proptest::collection::vec(any::<u8>(), 0..256), cut: usize) {
            let mut out = Vec::new();
            encode_record(&mut out, RecordKind::Put, 9, &key, &payload);
            let cut = 1 + cut % (out.len() - 1);
            prop_assert_eq!(scan_record(&out[..cut]), Scan::Truncated);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = scan_record(&bytes);
            let _ = SegmentHeader::decode(&bytes);
        }
    }
}
