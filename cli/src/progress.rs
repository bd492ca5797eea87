//! A progress line on standard error, shown only when it is a terminal and the run is long.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports `done / total` at most every 100 ms.
pub struct Progress {
    label: &'static str,
    total: usize,
    shown: bool,
    last: Instant,
}

impl Progress {
    /// A progress line for `total` steps, drawn only on a terminal and for at least 10,000.
    pub fn new(label: &'static str, total: usize) -> Self {
        Self {
            label,
            total,
            shown: total >= 10_000 && std::io::stderr().is_terminal(),
            last: Instant::now(),
        }
    }

    /// `done` steps are done.
    pub fn tick(&mut self, done: usize) {
        if !self.shown || self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        let width = 30;
        let filled = (done * width) / self.total.max(1);
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled.min(width));
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{} [{bar}] {done}/{} ({}%)",
            self.label,
            self.total,
            done * 100 / self.total.max(1)
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn finish(&self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
