//! Shared by the checker's tests: the incremental checker held to the
//! batch checker's answer.
#![allow(dead_code, clippy::unwrap_used)]

use dynamo_checker::{check, read, Incremental, Options, Verdict};

/// Checks `text` whole and line by line (asking for the verdict so far
/// now and then, as a soak's progress line does), compacting often and
/// with the default; asserts all give the same verdict and returns it.
pub fn both(text: &str, options: &Options) -> Verdict {
    let history = read("fixture.jsonl", text.as_bytes()).unwrap();
    let batch = check(&history, options);
    assert_same(&batch, &incrementally(text, options));
    let mut checker = Incremental::new("fixture.jsonl", options);
    for line in text.lines() {
        checker.line(line).unwrap();
    }
    assert_same(&batch, &checker.finish());
    batch
}

/// The incremental checker's verdict of `text`, fed line by line, with
/// its store compacted after every few operations.
pub fn incrementally(text: &str, options: &Options) -> Verdict {
    let mut checker = Incremental::new("fixture.jsonl", options).compacting_at(3);
    for (index, line) in text.lines().enumerate() {
        checker.line(line).unwrap();
        if index % 97 == 0 {
            let so_far = checker.verdict();
            assert!(so_far.ops <= text.lines().count() as u64);
        }
    }
    checker.finish()
}

/// Same verdict, findings compared as sets (the batch checker reports key
/// by key, the incremental one in time).
pub fn assert_same(batch: &Verdict, incremental: &Verdict) {
    let sorted = |verdict: &Verdict| {
        let mut verdict = verdict.clone();
        verdict
            .findings
            .sort_by(|a, b| (a.invariant, &a.key, &a.ops, &a.message).cmp(&(b.invariant, &b.key, &b.ops, &b.message)));
        verdict
    };
    let (batch, incremental) = (sorted(batch), sorted(incremental));
    assert_eq!(batch.findings, incremental.findings, "findings differ");
    assert_eq!(batch, incremental);
}
