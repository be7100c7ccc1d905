//! `dynamo-node dump PARTITION_DIR`, run as a person would.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::TempDir;
use dynamo_core::version::{encode_sibling_set, Actor, SiblingSet, VectorClock, Versioning};
use dynamo_core::{NodeId, PartitionId};
use dynamo_node::storage::{Engine, StorageConfig};

fn dump(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .arg("dump")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn dump_prints_one_line_per_record_and_flags_damage() {
    let dir = TempDir::new("dump");
    let actor = Actor {
        node: NodeId(2),
        incarnation: 0xabc,
    };
    {
        let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
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
            Some(b"pear".to_vec()),
            2,
            Versioning::Dvv,
            10,
        )
        .unwrap();
        engine
            .put(PartitionId(7), b"cart:1", &encode_sibling_set(&set))
            .unwrap();
        engine.put(PartitionId(7), b"\x00binary", b"not a sibling set").unwrap();
        engine.remove(PartitionId(7), b"cart:1").unwrap();
    }
    let partition_dir = dir.path().join("p00007");
    let (code, stdout, stderr) = dump(&[partition_dir.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("0000000001 segment partition=7 written-by=appends"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(
            "0000000001 32 seq=1 put key=\"cart:1\" siblings=[n2.abc:1 past={} \"apple\" | n2.abc:2 past={} \"pear\"]"
        ),
        "{stdout}"
    );
    assert!(
        lines[2].contains("seq=2 put key=base64:AGJpbmFyeQ payload-not-a-sibling-set"),
        "{stdout}"
    );
    assert!(lines[3].ends_with("seq=3 remove key=\"cart:1\""), "{stdout}");
    assert!(stderr.contains("1 segments, 3 records, 0 problems"), "{stderr}");

    // Damage: a flipped byte in the second record.
    let file = partition_dir.join("0000000001.seg");
    let mut bytes = std::fs::read(&file).unwrap();
    let second = lines[2].split(' ').nth(1).unwrap().parse::<usize>().unwrap();
    bytes[second + 12] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let (code, stdout, stderr) = dump(&[partition_dir.as_os_str()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("0000000001 {second} DAMAGED Checksum")),
        "{stdout}"
    );
    assert!(stderr.contains("1 problems"), "{stderr}");
}

#[test]
fn dump_of_a_missing_directory_is_one_clear_line_and_status_2() {
    let (code, _, stderr) = dump(&[std::ffi::OsStr::new("/nonexistent/p00001")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/p00001") && stderr.contains("No such file"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
