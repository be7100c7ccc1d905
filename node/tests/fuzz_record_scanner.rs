//! Fuzzing what recovery reads from disk: the record scanner and the
//! sibling-set decoder behind it. Each case mutates a committed seed
//! (`tests/corpus/records/`: records as `encode_record` writes them, a put
//! of a real sibling set, a remove, two records back to back); the scanner
//! must never panic, never claim more bytes than it was given, and hand
//! out only records that re-encode to the same bytes.
//!
//! Short run: part of `cargo test`. Long run (one command):
//! `DYNAMO_FUZZ_CASES=2000000 cargo test --release -p dynamo-node --test fuzz_record_scanner`.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

#[path = "../../core/tests/support/mutate.rs"]
mod mutate;

use std::path::{Path, PathBuf};

use dynamo_core::version::{decode_sibling_set, encode_sibling_set, Actor, SiblingSet, VectorClock, Versioning};
use dynamo_core::NodeId;
use dynamo_node::storage::format::{encode_record, scan_record, RecordKind, Scan};
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/records")
}

fn corpus() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| mutate::corpus(&corpus_dir()))
}

fn seeds() -> Vec<Vec<u8>> {
    let actor = Actor {
        node: NodeId(1),
        incarnation: 0xfeed,
    };
    let mut set = SiblingSet::new();
    set.put(
        actor,
        &VectorClock::new(),
        Some(b"apple".to_vec()),
        1,
        Versioning::Dvv,
        10,
    )
    .unwrap();
    set.put(
        actor,
        &VectorClock::new(),
        Some(vec![0, 255, 7]),
        2,
        Versioning::Dvv,
        10,
    )
    .unwrap();
    let payload = encode_sibling_set(&set);
    let mut put = Vec::new();
    encode_record(&mut put, RecordKind::Put, 7, b"cart:1", &payload);
    let mut remove = Vec::new();
    encode_record(&mut remove, RecordKind::Remove, 8, b"cart:1", &[]);
    let mut both = put.clone();
    both.extend_from_slice(&remove);
    let mut empty_key = Vec::new();
    encode_record(
        &mut empty_key,
        RecordKind::Put,
        1,
        b"",
        &encode_sibling_set(&SiblingSet::new()),
    );
    vec![put, remove, both, empty_key]
}

/// Writes the seed corpus. After a format change:
/// `cargo test -p dynamo-node --test fuzz_record_scanner -- --ignored`.
#[test]
#[ignore = "writes the committed seed corpus"]
fn write_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (index, seed) in seeds().iter().enumerate() {
        std::fs::write(corpus_dir().join(format!("seed-{index:02}.bin")), seed).unwrap();
    }
}

#[test]
fn the_committed_seeds_are_what_the_encoder_writes_today() {
    assert_eq!(corpus(), seeds().as_slice(), "regenerate the corpus (see write_corpus)");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: mutate::cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_scanner_never_panics_and_hands_out_only_whole_records(
        seed in any::<proptest::sample::Index>(),
        mutations in mutate::mutations(),
    ) {
        let seeds = corpus();
        let bytes = mutate::mutate(&seeds[seed.index(seeds.len())], &mutations);
        let mut offset = 0;
        while offset < bytes.len() {
            match scan_record(&bytes[offset..]) {
                Scan::Record(record) => {
                    prop_assert!(record.len > 0 && record.len <= bytes.len() - offset);
                    let mut again = Vec::new();
                    encode_record(&mut again, record.kind, record.sequence, record.key, record.payload);
                    prop_assert_eq!(&again[..], &bytes[offset..offset + record.len]);
                    if record.kind == RecordKind::Put {
                        if let Ok(set) = decode_sibling_set(record.payload) {
                            prop_assert_eq!(decode_sibling_set(&encode_sibling_set(&set)).unwrap(), set);
                        }
                    }
                    offset += record.len;
                }
                _ => break,
            }
        }
    }
}
