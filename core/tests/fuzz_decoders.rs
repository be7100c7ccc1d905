//! Fuzzing the decoders that take bytes from the network and from clients:
//! the frame decoder and the context decoder. Each case mutates a seed of
//! the committed corpus (`tests/corpus/`); a decoder must never panic, and
//! what it accepts must re-encode to something it decodes the same way.
//!
//! Short run: part of `cargo test`. Long run (one command):
//! `DYNAMO_FUZZ_CASES=2000000 cargo test --release -p dynamo-core --test fuzz_decoders`.
//! A failing case prints its input; add it to the corpus once fixed.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

#[path = "support/mutate.rs"]
mod mutate;

use std::path::Path;

use dynamo_core::version::{decode_context, encode_context};
use dynamo_core::wire::{decode_frame, encode_frame};
use proptest::prelude::*;

/// The seeds of `tests/corpus/<name>`, read once per run.
fn corpus(name: &'static str) -> &'static [Vec<u8>] {
    static FRAMES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    static CONTEXTS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let cell = if name == "frames" { &FRAMES } else { &CONTEXTS };
    cell.get_or_init(|| mutate::corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)))
}

#[test]
fn every_seed_frame_decodes_whole() {
    for seed in corpus("frames") {
        let (frame, used) = decode_frame(seed).unwrap().unwrap();
        assert_eq!(used, seed.len());
        let mut again = Vec::new();
        encode_frame(&frame, &mut again);
        assert_eq!(&again, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: mutate::cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_frame_decoder_never_panics_and_what_it_accepts_round_trips(
        seed in any::<proptest::sample::Index>(),
        mutations in mutate::mutations(),
    ) {
        let seeds = corpus("frames");
        let bytes = mutate::mutate(&seeds[seed.index(seeds.len())], &mutations);
        if let Ok(Some((frame, used))) = decode_frame(&bytes) {
            prop_assert!(used <= bytes.len());
            let mut again = Vec::new();
            encode_frame(&frame, &mut again);
            let (decoded, _) = decode_frame(&again).unwrap().unwrap();
            prop_assert_eq!(decoded, frame);
        }
    }

    #[test]
    fn the_context_decoder_never_panics_and_what_it_accepts_round_trips(
        seed in any::<proptest::sample::Index>(),
        mutations in mutate::mutations(),
    ) {
        let seeds = corpus("contexts");
        let bytes = mutate::mutate(&seeds[seed.index(seeds.len())], &mutations);
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(clock) = decode_context(&text) {
            prop_assert_eq!(decode_context(&encode_context(&clock)).unwrap(), clock);
        }
    }
}
