//! A small logger for the binaries: one line per event on stderr, with the
//! seconds since start, the level and the module. `DYNAMO_LOG` sets the
//! level (`error`, `warn`, `info` — the default — `debug`, `trace`).

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

struct StderrLogger {
    start: Instant,
    level: log::LevelFilter,
}

/// The node's name, shown on every line once set (several nodes of a local
/// cluster share one terminal).
static NAME: OnceLock<String> = OnceLock::new();

/// Names the process in every later log line (first call wins).
pub fn set_name(name: &str) {
    let _ = NAME.set(name.to_string());
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let elapsed = self.start.elapsed();
            let name = NAME.get().map(String::as_str).unwrap_or("");
            let _ = writeln!(
                std::io::stderr().lock(),
                "[{:>4}.{:03}s {:<5} {}{}{}] {}",
                elapsed.as_secs(),
                elapsed.subsec_millis(),
                record.level(),
                name,
                if name.is_empty() { "" } else { " " },
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

/// Installs the logger (once; later calls do nothing).
pub fn init() {
    let level = std::env::var("DYNAMO_LOG")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    let logger = LOGGER.get_or_init(|| StderrLogger {
        start: Instant::now(),
        level,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// For commands that print and are piped into others (`client get | head`):
/// a reader that goes away ends the process quietly, as it does `cat`,
/// instead of a panic in `println!`. (Rust starts with SIGPIPE ignored;
/// sockets write with `MSG_NOSIGNAL` and are not affected.)
pub fn quiet_on_broken_pipe() {
    // SAFETY: resets one signal's disposition to the default; no handler
    // runs our code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
