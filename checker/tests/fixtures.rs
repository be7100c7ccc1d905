//! Fixture histories: for each invariant of shared/HISTORY.md, one that
//! holds and at least one that breaks it, including transitive causality,
//! deletes, indeterminate (`info`) writes and malformed lines.
#![allow(clippy::unwrap_used)]

mod common;

use dynamo_checker::{check, read, Invariant, Mode, Options, Verdict};

/// Events as `(type, process, op, f, rest-of-json)`; time advances 1 µs per line.
fn history(lines: &[&str]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let line = line.trim();
            let body = line.strip_suffix('}').unwrap();
            format!("{body},\"time_ns\":{}}}\n", (index as u64 + 1) * 1000)
        })
        .collect()
}

/// Checked whole and incrementally, which must agree.
fn verdict(mode: Mode, lines: &[&str]) -> Verdict {
    common::both(
        &history(lines),
        &Options {
            mode,
            ..Options::default()
        },
    )
}

fn violations(verdict: &Verdict, invariant: &str) -> u64 {
    verdict.violations[&invariant.parse::<Invariant>().unwrap()]
}

fn only(verdict: &Verdict, invariant: &str, count: u64) {
    for (name, &found) in &verdict.violations {
        let expected = if name.name() == invariant { count } else { 0 };
        assert_eq!(found, expected, "{name}: {:#?}", verdict.findings);
    }
    assert_eq!(verdict.valid, count == 0);
}

// A put of `value` with `context` by process `p` as op `op`, acknowledged.
const W_A: [&str; 2] = [
    r#"{"type":"invoke","process":0,"op":0,"f":"put","key":"k","value":"a","context":[]}"#,
    r#"{"type":"ok","process":0,"op":0,"f":"put"}"#,
];

#[test]
fn a_clean_read_modify_write_history_is_valid_in_strict_mode() {
    let verdict = verdict(
        Mode::Strict,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":1,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":1,"op":2,"f":"put","key":"k","value":"b","context":["a"]}"#,
            r#"{"type":"ok","process":1,"op":2,"f":"put"}"#,
            r#"{"type":"invoke","process":0,"op":3,"f":"get","key":"k","final":true}"#,
            r#"{"type":"ok","process":0,"op":3,"f":"get","values":["b"]}"#,
        ],
    );
    only(&verdict, "", 0);
    assert_eq!(verdict.staleness.stale_gets, 0);
    assert_eq!(verdict.counts.final_reads, 1);
}

#[test]
fn phantom_values_are_found() {
    // Never written.
    let never = verdict(
        Mode::Eventual,
        &[
            r#"{"type":"invoke","process":0,"op":0,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":0,"f":"get","values":["ghost"]}"#,
        ],
    );
    only(&never, "phantom", 1);
    assert_eq!(never.findings[0].ops, vec![0]);
    // Written by a put that failed.
    let failed = verdict(
        Mode::Eventual,
        &[
            r#"{"type":"invoke","process":0,"op":0,"f":"put","key":"k","value":"a","context":[]}"#,
            r#"{"type":"invoke","process":1,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"fail","process":0,"op":0,"f":"put"}"#,
        ],
    );
    only(&failed, "phantom", 1);
    assert_eq!(failed.findings[0].ops, vec![1, 0]);
    // A tombstone returned.
    let tombstone = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":0,"op":2,"f":"delete","key":"k","value":"t","context":["a"]}"#,
            r#"{"type":"ok","process":0,"op":2,"f":"delete"}"#,
            r#"{"type":"invoke","process":0,"op":3,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":3,"f":"get","values":["t"]}"#,
        ],
    );
    only(&tombstone, "phantom", 1);
    // A value from an `info` put may be read: not a phantom.
    let info = verdict(
        Mode::Eventual,
        &[
            r#"{"type":"invoke","process":0,"op":0,"f":"put","key":"k","value":"a","context":[]}"#,
            r#"{"type":"info","process":0,"op":0,"f":"put","error":"timeout"}"#,
            r#"{"type":"invoke","process":1,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":1,"f":"get","values":["a"]}"#,
        ],
    );
    only(&info, "", 0);
}

#[test]
fn concurrent_siblings_are_fine_but_an_ancestor_beside_its_descendant_is_not() {
    let concurrent = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"k","value":"b","context":[]}"#,
            r#"{"type":"ok","process":1,"op":1,"f":"put"}"#,
            r#"{"type":"invoke","process":2,"op":2,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":2,"op":2,"f":"get","values":["a","b"]}"#,
        ],
    );
    only(&concurrent, "", 0);
    // a ← b ← c: a get returning a and c breaks the antichain through b.
    let transitive = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":0,"op":2,"f":"put","key":"k","value":"b","context":["a"]}"#,
            r#"{"type":"ok","process":0,"op":2,"f":"put"}"#,
            r#"{"type":"invoke","process":0,"op":3,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":3,"f":"get","values":["b"]}"#,
            r#"{"type":"invoke","process":0,"op":4,"f":"put","key":"k","value":"c","context":["b"]}"#,
            r#"{"type":"ok","process":0,"op":4,"f":"put"}"#,
            r#"{"type":"invoke","process":1,"op":5,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":5,"f":"get","values":["c","a"]}"#,
        ],
    );
    only(&transitive, "sibling-antichain", 1);
    assert_eq!(transitive.findings[0].ops, vec![5, 0, 4]);
}

#[test]
fn stale_reads_are_violations_only_in_strict_mode_and_are_measured_in_both() {
    let lines = [
        W_A[0],
        W_A[1],
        r#"{"type":"invoke","process":1,"op":1,"f":"get","key":"k"}"#,
        r#"{"type":"ok","process":1,"op":1,"f":"get","values":[]}"#,
    ];
    let strict = verdict(Mode::Strict, &lines);
    only(&strict, "stale-read", 1);
    assert_eq!(strict.findings[0].ops, vec![1, 0]);
    let eventual = verdict(Mode::Eventual, &lines);
    only(&eventual, "", 0);
    assert_eq!(eventual.stale_reads_measured, 1);
    assert_eq!(eventual.staleness.stale_gets, 1);
    assert_eq!(eventual.staleness.k.max, 1.0);
    // The get began 1 µs after the put completed.
    assert!((eventual.staleness.t_visibility_ms.max - 0.001).abs() < 1e-9);
    // The distributions the report draws: one get at k = 1, in the first
    // t-visibility bucket (up to 0.01 ms).
    assert_eq!(eventual.staleness.k_histogram, vec![(1, 1)]);
    assert_eq!(eventual.staleness.t_visibility_histogram_ms, vec![(0.01, 1)]);
}

#[test]
fn k_staleness_counts_every_missed_acknowledged_put() {
    // a ← b ← c, all acknowledged; a get returns a: it misses b and c.
    let verdict = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":0,"op":2,"f":"put","key":"k","value":"b","context":["a"]}"#,
            r#"{"type":"ok","process":0,"op":2,"f":"put"}"#,
            r#"{"type":"invoke","process":0,"op":3,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":3,"f":"get","values":["b"]}"#,
            r#"{"type":"invoke","process":0,"op":4,"f":"put","key":"k","value":"c","context":["b"]}"#,
            r#"{"type":"ok","process":0,"op":4,"f":"put"}"#,
            r#"{"type":"invoke","process":1,"op":5,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":5,"f":"get","values":["a"]}"#,
        ],
    );
    assert_eq!(verdict.staleness.k.max, 2.0);
    assert_eq!(verdict.staleness.stale_gets, 1);
    // Gets by k: two fresh, one that missed two puts.
    assert_eq!(verdict.staleness.k_histogram, vec![(0, 2), (2, 1)]);
    assert_eq!(verdict.staleness.t_visibility_histogram_ms.len(), 1);
    // Process 0 read b; a later get by process 1 is not its session.
    assert_eq!(verdict.session.monotonic_read_misses, 0);
}

#[test]
fn a_delete_excuses_the_writes_it_supersedes() {
    let verdict = verdict(
        Mode::Strict,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":0,"op":2,"f":"delete","key":"k","value":"t","context":["a"]}"#,
            r#"{"type":"ok","process":0,"op":2,"f":"delete"}"#,
            r#"{"type":"invoke","process":1,"op":3,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":3,"f":"get","values":[]}"#,
            r#"{"type":"invoke","process":1,"op":4,"f":"get","key":"k","final":true}"#,
            r#"{"type":"ok","process":1,"op":4,"f":"get","values":[]}"#,
        ],
    );
    only(&verdict, "", 0);
}

#[test]
fn a_read_of_a_deleted_value_after_the_delete_is_stale() {
    let verdict = verdict(
        Mode::Strict,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":0,"op":2,"f":"delete","key":"k","value":"t","context":["a"]}"#,
            r#"{"type":"ok","process":0,"op":2,"f":"delete"}"#,
            r#"{"type":"invoke","process":1,"op":3,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":3,"f":"get","values":["a"]}"#,
        ],
    );
    only(&verdict, "stale-read", 1);
}

#[test]
fn final_reads_must_cover_every_acknowledged_put_but_not_indeterminate_ones() {
    let lost = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"k","value":"b","context":[]}"#,
            r#"{"type":"info","process":1,"op":1,"f":"put","error":"timeout"}"#,
            r#"{"type":"invoke","process":2,"op":2,"f":"get","key":"k","final":true}"#,
            r#"{"type":"ok","process":2,"op":2,"f":"get","values":["b"]}"#,
        ],
    );
    only(&lost, "lost-write", 1);
    assert_eq!(lost.findings[0].ops, vec![0, 2]);
    // The same with the acknowledged write seen: the info write may or may
    // not be there.
    for values in [r#"["a"]"#, r#"["a","b"]"#] {
        let completion = format!(r#"{{"type":"ok","process":2,"op":2,"f":"get","values":{values}}}"#);
        let fine = verdict(
            Mode::Eventual,
            &[
                W_A[0],
                W_A[1],
                r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"k","value":"b","context":[]}"#,
                r#"{"type":"info","process":1,"op":1,"f":"put","error":"timeout"}"#,
                r#"{"type":"invoke","process":2,"op":2,"f":"get","key":"k","final":true}"#,
                &completion,
            ],
        );
        only(&fine, "", 0);
    }
}

#[test]
fn a_final_read_returning_a_superseded_value_is_a_resurrection() {
    let verdict = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":0,"op":2,"f":"delete","key":"k","value":"t","context":["a"]}"#,
            r#"{"type":"ok","process":0,"op":2,"f":"delete"}"#,
            r#"{"type":"invoke","process":1,"op":3,"f":"get","key":"k","final":true}"#,
            r#"{"type":"ok","process":1,"op":3,"f":"get","values":["a"]}"#,
        ],
    );
    only(&verdict, "lost-write", 1);
    assert!(verdict.findings[0].message.contains("came back"));
}

#[test]
fn final_reads_that_disagree_are_divergence() {
    let verdict = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"k","value":"b","context":[]}"#,
            r#"{"type":"ok","process":1,"op":1,"f":"put"}"#,
            r#"{"type":"invoke","process":2,"op":2,"f":"get","key":"k","final":true,"node":"n1"}"#,
            r#"{"type":"ok","process":2,"op":2,"f":"get","values":["a","b"]}"#,
            r#"{"type":"invoke","process":2,"op":3,"f":"get","key":"k","final":true,"node":"n2"}"#,
            r#"{"type":"ok","process":2,"op":3,"f":"get","values":["b","a"]}"#,
            r#"{"type":"invoke","process":2,"op":4,"f":"get","key":"k","final":true,"node":"n3"}"#,
            r#"{"type":"ok","process":2,"op":4,"f":"get","values":["b"]}"#,
        ],
    );
    // The third read also misses a: divergence and a lost write.
    assert_eq!(violations(&verdict, "divergence"), 1);
    assert_eq!(violations(&verdict, "lost-write"), 1);
    let divergence = verdict
        .findings
        .iter()
        .find(|f| f.invariant == Invariant::Divergence)
        .unwrap();
    assert_eq!(divergence.ops, vec![2, 4]);
}

#[test]
fn session_misses_are_measured_not_judged() {
    let verdict = verdict(
        Mode::Eventual,
        &[
            W_A[0],
            W_A[1],
            // Process 0 misses its own write: read-your-writes.
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":[]}"#,
            r#"{"type":"invoke","process":1,"op":2,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":1,"op":2,"f":"get","values":["a"]}"#,
            r#"{"type":"invoke","process":1,"op":3,"f":"put","key":"k","value":"b","context":["a"]}"#,
            r#"{"type":"ok","process":1,"op":3,"f":"put"}"#,
            r#"{"type":"invoke","process":2,"op":4,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":2,"op":4,"f":"get","values":["b"]}"#,
            // Process 2 then reads the older a: monotonic reads.
            r#"{"type":"invoke","process":2,"op":5,"f":"get","key":"k"}"#,
            r#"{"type":"ok","process":2,"op":5,"f":"get","values":["a"]}"#,
        ],
    );
    only(&verdict, "", 0);
    assert_eq!(verdict.session.read_your_writes_misses, 1);
    assert_eq!(verdict.session.monotonic_read_misses, 1);
}

#[test]
fn broken_history_rules_are_history_findings() {
    let cases: [(&[&str], &str); 5] = [
        (&[r#"{"type":"ok","process":0,"op":9,"f":"put"}"#], "never invoked"),
        (
            &[
                W_A[0],
                W_A[1],
                r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"k","value":"a","context":[]}"#,
                r#"{"type":"ok","process":1,"op":1,"f":"put"}"#,
            ],
            "written twice",
        ),
        (
            &[
                r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"k","value":"b","context":["a"]}"#,
                r#"{"type":"ok","process":1,"op":1,"f":"put"}"#,
            ],
            "no get returned",
        ),
        (
            &[
                r#"{"type":"invoke","process":0,"op":0,"f":"get","key":"k"}"#,
                r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            ],
            "while op 0 is running",
        ),
        (
            &[
                r#"{"type":"invoke","process":0,"op":0,"f":"get","key":"k"}"#,
                r#"{"type":"info","process":0,"op":0,"f":"get"}"#,
                r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k"}"#,
            ],
            "reused after",
        ),
    ];
    for (lines, expected) in cases {
        let verdict = verdict(Mode::Eventual, lines);
        only(&verdict, "history", 1);
        assert!(verdict.findings[0].message.contains(expected), "{:?}", verdict.findings);
    }
    // Time going backwards.
    let text = "{\"type\":\"invoke\",\"process\":0,\"op\":0,\"f\":\"get\",\"key\":\"k\",\"time_ns\":50}\n\
                {\"type\":\"ok\",\"process\":0,\"op\":0,\"f\":\"get\",\"values\":[],\"time_ns\":40}\n";
    let history = read("h.jsonl", text.as_bytes()).unwrap();
    let verdict = check(&history, &Options::default());
    only(&verdict, "history", 1);
    assert!(verdict.findings[0].message.contains("line 2"));
}

#[test]
fn malformed_lines_are_errors_naming_the_line() {
    let cases = [
        ("{\"type\":\"invoke\",\"process\":0,\"op\":0,\"f\":\"get\",\"key\":\"k\",\"time_ns\":1}\nnot json\n", 2, ""),
        ("{\"type\":\"begin\",\"process\":0,\"op\":0,\"f\":\"get\",\"key\":\"k\",\"time_ns\":1}\n", 1, "type"),
        ("{\"type\":\"invoke\",\"process\":0,\"op\":0,\"f\":\"cas\",\"key\":\"k\",\"time_ns\":1}\n", 1, "f:"),
        ("{\"type\":\"invoke\",\"process\":0,\"op\":0,\"f\":\"get\",\"time_ns\":1}\n", 1, "key"),
        ("{\"type\":\"invoke\",\"process\":0,\"op\":0,\"f\":\"put\",\"key\":\"k\",\"value\":\"a\",\"time_ns\":1}\n", 1, "context"),
        ("\n{\"type\":\"invoke\",\"process\":-1,\"op\":0,\"f\":\"get\",\"key\":\"k\",\"time_ns\":1}\n", 2, ""),
        ("{\"type\":\"invoke\",\"process\":0,\"op\":0,\"f\":\"get\",\"key\":\"k\",\"time_ns\":1}\n{\"type\":\"ok\",\"process\":0,\"op\":0,\"f\":\"get\",\"time_ns\":2}\n", 2, "values"),
    ];
    for (text, line, word) in cases {
        let error = read("h.jsonl", text.as_bytes()).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with(&format!("h.jsonl:{line}: ")), "{message}");
        assert!(message.contains(word), "{message}");
    }
}

#[test]
fn unknown_fields_are_ignored_so_the_format_can_grow() {
    let verdict = verdict(
        Mode::Strict,
        &[
            r#"{"type":"invoke","process":0,"op":0,"f":"get","key":"k","trace":"abc"}"#,
            r#"{"type":"ok","process":0,"op":0,"f":"get","values":[]}"#,
        ],
    );
    only(&verdict, "", 0);
}

#[test]
fn an_invoke_without_completion_counts_as_info() {
    let verdict = verdict(
        Mode::Eventual,
        &[r#"{"type":"invoke","process":0,"op":0,"f":"put","key":"k","value":"a","context":[]}"#],
    );
    only(&verdict, "", 0);
    assert_eq!(verdict.counts.info, 1);
}

#[test]
fn invariant_names_in_check_json_are_history_md_s() {
    // HISTORY.md, "check.json": the `violations` keys, in its order.
    let documented = [
        "phantom",
        "sibling-antichain",
        "stale-read",
        "lost-write",
        "divergence",
        "history",
    ];
    let serialised: Vec<String> = Invariant::ALL
        .iter()
        .map(|invariant| serde_json::to_value(invariant).unwrap().as_str().unwrap().to_string())
        .collect();
    assert_eq!(serialised, documented);
    let verdict = verdict(Mode::Eventual, &W_A);
    let json = serde_json::to_value(&verdict).unwrap();
    let keys: Vec<&String> = json["violations"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), documented.len());
    for name in documented {
        assert_eq!(json["violations"][name], 0, "{json}");
        assert_eq!(name.parse::<Invariant>().unwrap().name(), name);
    }
}

#[test]
fn fault_events_are_read_counted_and_decide_nothing() {
    let verdict = verdict(
        Mode::Eventual,
        &[
            r#"{"type":"fault","fault":"kill","phase":"start","targets":["n2"],"detail":"SIGKILL pid 42"}"#,
            W_A[0],
            W_A[1],
            r#"{"type":"fault","fault":"kill","phase":"end","targets":["n2"]}"#,
            r#"{"type":"fault","fault":"partition","phase":"start","targets":["n1,n2|n3"]}"#,
            r#"{"type":"invoke","process":1,"op":1,"f":"put","key":"fault","value":"fault","context":[]}"#,
            r#"{"type":"ok","process":1,"op":1,"f":"put"}"#,
        ],
    );
    only(&verdict, "", 0);
    assert_eq!(verdict.counts.fault_events, 3);
    assert_eq!(verdict.counts.faults.get("kill"), Some(&1));
    assert_eq!(verdict.counts.faults.get("partition"), Some(&1));
    // A value or key named "fault" is still an operation.
    assert_eq!(verdict.counts.puts, 2);
}

#[test]
fn retired_keys_are_judged_from_their_final_reads_and_touched_again_is_a_history_finding() {
    // Key k: a write, its final read, then retirement: valid, one key retired.
    let retired = [
        W_A[0],
        W_A[1],
        r#"{"type":"invoke","process":9,"op":1,"f":"get","key":"k","final":true}"#,
        r#"{"type":"ok","process":9,"op":1,"f":"get","values":["a"]}"#,
        r#"{"type":"retire","keys":["k"]}"#,
    ];
    let clean = verdict(Mode::Strict, &retired);
    only(&clean, "history", 0);
    assert_eq!(clean.counts.retired_keys, 1);
    assert_eq!(clean.counts.final_keys, 1);

    // Its final read missed the write: a lost write, found as before.
    let mut lost = retired;
    lost[3] = r#"{"type":"ok","process":9,"op":1,"f":"get","values":[]}"#;
    only(&verdict(Mode::Eventual, &lost), "lost-write", 1);

    // An operation on it after retirement.
    let mut after = retired.to_vec();
    after.push(r#"{"type":"invoke","process":2,"op":2,"f":"get","key":"k"}"#);
    after.push(r#"{"type":"ok","process":2,"op":2,"f":"get","values":["a"]}"#);
    let found = verdict(Mode::Eventual, &after);
    only(&found, "history", 1);
    assert!(
        found.findings[0].message.contains("which line 5 retired"),
        "{:?}",
        found.findings
    );

    // Retired while an operation on it still runs, and retired twice.
    let early = [
        r#"{"type":"invoke","process":0,"op":0,"f":"get","key":"k"}"#,
        r#"{"type":"retire","keys":["k"]}"#,
        r#"{"type":"ok","process":0,"op":0,"f":"get","values":[]}"#,
        r#"{"type":"retire","keys":["k"]}"#,
    ];
    let found = verdict(Mode::Eventual, &early);
    only(&found, "history", 2);
    assert!(
        found.findings[0].message.contains("still running"),
        "{:?}",
        found.findings
    );
    assert!(
        found.findings[1].message.contains("retired again (first at line 2)"),
        "{:?}",
        found.findings
    );
}

/// Strings with JSON escapes (which the parser cannot borrow from the
/// line) read as the same strings as without.
#[test]
fn escaped_strings_read_as_themselves() {
    let verdict = verdict(
        Mode::Strict,
        &[
            r#"{"type":"invoke","process":0,"op":0,"f":"put","key":"k\"1","value":"a\u0062","context":[]}"#,
            r#"{"type":"ok","process":0,"op":0,"f":"put"}"#,
            r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k\u00221","final":true}"#,
            r#"{"type":"ok","process":0,"op":1,"f":"get","values":["ab","gh\"ost"]}"#,
        ],
    );
    only(&verdict, "phantom", 1);
    assert_eq!(verdict.findings[0].key, "k\"1");
    assert!(
        verdict.findings[0].message.contains(r#""gh\"ost""#),
        "{:?}",
        verdict.findings
    );
}

#[test]
fn a_delete_after_the_get_excuses_the_invariant_but_not_the_staleness_measure() {
    // a ← b acknowledged; process 1 then reads a (missing b); only later
    // is b deleted. HISTORY.md excuses the miss for stale-read (a delete
    // supersedes b), but the get did miss an acknowledged write: k = 1.
    // A get invoked after the delete that returns nothing is not stale.
    let lines = [
        W_A[0],
        W_A[1],
        r#"{"type":"invoke","process":0,"op":5,"f":"get","key":"k"}"#,
        r#"{"type":"ok","process":0,"op":5,"f":"get","values":["a"]}"#,
        r#"{"type":"invoke","process":0,"op":1,"f":"put","key":"k","value":"b","context":["a"]}"#,
        r#"{"type":"ok","process":0,"op":1,"f":"put"}"#,
        r#"{"type":"invoke","process":1,"op":2,"f":"get","key":"k"}"#,
        r#"{"type":"ok","process":1,"op":2,"f":"get","values":["a"]}"#,
        r#"{"type":"invoke","process":0,"op":6,"f":"get","key":"k"}"#,
        r#"{"type":"ok","process":0,"op":6,"f":"get","values":["b"]}"#,
        r#"{"type":"invoke","process":0,"op":3,"f":"delete","key":"k","value":"t","context":["b"]}"#,
        r#"{"type":"ok","process":0,"op":3,"f":"delete"}"#,
        r#"{"type":"invoke","process":2,"op":4,"f":"get","key":"k"}"#,
        r#"{"type":"ok","process":2,"op":4,"f":"get","values":[]}"#,
    ];
    let strict = verdict(Mode::Strict, &lines);
    // Part 1 still holds the get to account (it returned a, which b
    // supersedes); part 2 (missing b) is excused by the delete.
    assert_eq!(strict.violations[&Invariant::StaleRead], 1, "{:?}", strict.findings);
    assert_eq!(strict.findings[0].ops, vec![2, 0], "{:?}", strict.findings);
    let eventual = verdict(Mode::Eventual, &lines);
    assert_eq!(eventual.staleness.gets, 4);
    assert_eq!(eventual.staleness.stale_gets, 1, "{:?}", eventual.staleness);
    assert_eq!(eventual.staleness.k_histogram, vec![(0, 3), (1, 1)]);
}

#[test]
fn gets_are_counted_by_the_second_they_began_in_fresh_and_stale_apart() {
    // A put acknowledged in second 0; a fresh get in second 1; two gets in
    // second 3, one of them missing the put; nothing judged in second 2.
    let history = [
        r#"{"type":"invoke","process":0,"op":0,"f":"put","key":"k","value":"a","context":[],"time_ns":1000}"#,
        r#"{"type":"ok","process":0,"op":0,"f":"put","time_ns":2000}"#,
        r#"{"type":"invoke","process":1,"op":1,"f":"get","key":"k","time_ns":1500000000}"#,
        r#"{"type":"ok","process":1,"op":1,"f":"get","values":["a"],"time_ns":1500001000}"#,
        r#"{"type":"invoke","process":2,"op":2,"f":"get","key":"k","time_ns":3000000000}"#,
        r#"{"type":"ok","process":2,"op":2,"f":"get","values":[],"time_ns":3000001000}"#,
        r#"{"type":"invoke","process":3,"op":3,"f":"get","key":"k","time_ns":3900000000}"#,
        r#"{"type":"ok","process":3,"op":3,"f":"get","values":["a"],"time_ns":3900001000}"#,
    ]
    .join("\n");
    let verdict = common::both(&format!("{history}\n"), &Options::default());
    assert_eq!(verdict.staleness.stale_gets, 1);
    assert_eq!(verdict.staleness.by_second, vec![(1, 1, 0), (3, 2, 1)]);
}
