//! One progress line on a terminal, rewritten in place (`\r`), at most a
//! few times a second; nothing at all when stderr is not a terminal (a CI
//! log, a pipe), so logs stay clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress line on stderr.
pub struct Line {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Line {
    /// A line that shows only when stderr is a terminal.
    pub fn on_terminal() -> Line {
        Line {
            enabled: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    /// Shows `text` (rate-limited to every 200 ms).
    pub fn show(&mut self, text: std::fmt::Arguments<'_>) {
        if !self.enabled
            || self
                .last
                .is_some_and(|last| last.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\r\x1b[2K{text}");
        let _ = stderr.flush();
        self.shown = true;
    }

    /// Clears the line, if one was shown.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}
