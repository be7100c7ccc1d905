//! A small structure-aware mutation fuzzer on stable Rust (cargo fuzz needs
//! nightly): seeds are valid encodings (the committed corpus), and each case
//! applies a few mutations that target what decoders trip on — bit flips,
//! byte overwrites, truncation, insertion, duplicated spans, and length
//! fields set to boundary values. Cases and seeds come from proptest, so a
//! failure shrinks and prints the input that broke.
//!
//! Shared by `core/tests/fuzz_decoders.rs` and
//! `node/tests/fuzz_record_scanner.rs` (included with `#[path]`).

use proptest::prelude::*;

/// One mutation: (kind, position, byte).
pub type Mutation = (u8, u32, u8);

/// Proptest cases per fuzz target: `DYNAMO_FUZZ_CASES` (the long run), or
/// a short default for the test suite.
pub fn cases() -> u32 {
    std::env::var("DYNAMO_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3_000)
}

/// A few mutations at a time.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec((0u8..7, any::<u32>(), any::<u8>()), 1..6)
}

/// Applies `mutations` to a copy of `seed`.
pub fn mutate(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for &(kind, position, byte) in mutations {
        let at = |len: usize| if len == 0 { 0 } else { position as usize % len };
        match kind {
            0 => {
                let index = at(bytes.len());
                if let Some(target) = bytes.get_mut(index) {
                    *target ^= 1 << (byte % 8);
                }
            }
            1 => {
                let index = at(bytes.len());
                if let Some(target) = bytes.get_mut(index) {
                    *target = byte;
                }
            }
            2 => bytes.truncate(at(bytes.len() + 1)),
            3 => {
                let index = at(bytes.len() + 1);
                bytes.insert(index, byte);
            }
            4 => {
                // Duplicate a span (repeated fields, doubled records).
                let start = at(bytes.len());
                let end = (start + 1 + byte as usize).min(bytes.len());
                let span = bytes[start..end].to_vec();
                bytes.splice(start..start, span);
            }
            5 => {
                // A little-endian u32 length field at a boundary value.
                let index = at(bytes.len().saturating_sub(3));
                let value: u32 = [0, 1, u32::MAX, u32::MAX / 2, 0x8000_0000, 0x7f][byte as usize % 6];
                if index + 4 <= bytes.len() {
                    bytes[index..index + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            _ => {
                // A varint's continuation bit run (overlong varints).
                let index = at(bytes.len());
                for target in bytes.iter_mut().skip(index).take(1 + byte as usize % 12) {
                    *target |= 0x80;
                }
            }
        }
    }
    bytes
}

/// The seed files of a corpus directory (it must not be empty).
pub fn corpus(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|path| std::fs::read(path).unwrap()).collect();
    assert!(!seeds.is_empty(), "{} holds no seeds", dir.display());
    seeds
}
