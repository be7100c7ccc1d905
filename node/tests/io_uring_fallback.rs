//! Where io_uring cannot be set up (an old kernel, or a seccomp filter as
//! in many containers) the engine says so once and falls back to positioned
//! I/O. A child process installs a real seccomp filter that makes
//! io_uring_setup(2) fail with EPERM, then uses the engine.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::TempDir;
use dynamo_core::PartitionId;
use dynamo_node::storage::{Engine, IoBackendKind, IoMode, StorageConfig};

const CHILD_DIR: &str = "DYNAMO_FALLBACK_CHILD_DIR";

/// Denies io_uring_setup(2) with EPERM for this thread and the threads it
/// starts afterwards.
fn deny_io_uring_setup() {
    // BPF: load the syscall number; if io_uring_setup, return ERRNO(EPERM);
    // else allow. (The architecture check is left out: the test runs on the
    // architecture it was built for.)
    const LOAD_NR: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JUMP_EQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    let mut program = [
        libc::sock_filter {
            code: LOAD_NR,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: JUMP_EQ,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: RETURN,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: RETURN,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls with a filter that outlives them.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &filter as *const libc::sock_fprog
            ),
            0,
            "seccomp filter refused"
        );
    }
}

#[test]
#[ignore = "run as a child process by storage_falls_back_to_positioned_io_when_io_uring_is_denied"]
fn fallback_child_uses_the_engine_without_io_uring() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    dynamo_node::logging::init();
    deny_io_uring_setup();
    let dir = std::path::Path::new(&dir);
    // Auto falls back (and says so once, however many engines open)…
    for round in 0..2 {
        let engine = Engine::open(dir, StorageConfig::default()).unwrap();
        assert_eq!(engine.backend(), IoBackendKind::Positioned);
        engine
            .put(PartitionId(0), format!("k{round}").as_bytes(), b"v")
            .unwrap();
        assert_eq!(
            engine.get(PartitionId(0), format!("k{round}").as_bytes()).unwrap(),
            Some(b"v".to_vec())
        );
    }
    // …while asking for io_uring outright is an error.
    let error = Engine::open(
        dir,
        StorageConfig {
            io: IoMode::Uring,
            ..StorageConfig::default()
        },
    )
    .unwrap_err();
    println!("uring-error: {error}");
    println!("child-ok");
}

#[test]
fn storage_falls_back_to_positioned_io_when_io_uring_is_denied() {
    let dir = TempDir::new("fallback");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "fallback_child_uses_the_engine_without_io_uring",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("child-ok"),
        "child failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Operation not permitted"), "{stdout}");
    assert_eq!(
        stderr.matches("io_uring is unavailable").count(),
        1,
        "the fallback must be said exactly once:\n{stderr}"
    );
    // The data written without io_uring reads back with it.
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    assert_eq!(engine.get(PartitionId(0), b"k1").unwrap(), Some(b"v".to_vec()));
}
