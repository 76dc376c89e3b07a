//! What one plugin call may write to the daemon's log, and the lines its
//! report keeps.
//!
//! A plugin's message is one log line whatever it holds: control
//! characters are escaped ([`fieldhook_core::text`]) so a newline cannot
//! start a line that looks like the daemon's own, and a line is cut at
//! [`MAX_LINE_BYTES`]. A call may log `[sandbox] log_max_lines` lines and
//! `log_max_bytes` bytes; what comes after is dropped and counted, and the
//! end of the call logs one line saying how much.

use fieldhook_core::text::one_line;
use fieldhook_policy::sandbox::Sandbox;

/// Longest line a plugin may log, bytes (after escaping); longer ones are
/// cut, saying how much was left out.
pub const MAX_LINE_BYTES: usize = 4096;

/// A line a plugin logged during one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Level name (`info`).
    pub level: &'static str,
    /// Message, escaped to one line and cut at [`MAX_LINE_BYTES`].
    pub message: String,
}

/// Lines a call logged past its limits: neither in the daemon's log nor in
/// the call's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedLogs {
    /// Lines dropped.
    pub lines: u64,
    /// Their size as the plugin sent them, bytes.
    pub bytes: u64,
}

/// Levels of the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One call's log: its limits, the lines kept, what was dropped.
#[derive(Debug)]
pub(crate) struct CallLog {
    max_lines: u64,
    max_bytes: u64,
    lines: Vec<LogLine>,
    bytes: u64,
    dropped: DroppedLogs,
}

impl CallLog {
    pub(crate) fn new(sandbox: &Sandbox) -> Self {
        Self {
            max_lines: u64::from(sandbox.log_max_lines),
            max_bytes: sandbox.log_max_bytes,
            lines: Vec::new(),
            bytes: 0,
            dropped: DroppedLogs::default(),
        }
    }

    /// Writes one line of `plugin` to the daemon's log and keeps it for the
    /// report, unless the call's limits are reached: then it is counted.
    pub(crate) fn write(&mut self, plugin: &str, level: Level, message: &str) {
        let line = one_line(message, MAX_LINE_BYTES);
        let bytes = self.bytes.saturating_add(line.len() as u64);
        if self.lines.len() as u64 >= self.max_lines || bytes > self.max_bytes {
            self.dropped.lines = self.dropped.lines.saturating_add(1);
            self.dropped.bytes = self.dropped.bytes.saturating_add(message.len() as u64);
            return;
        }
        self.bytes = bytes;
        match level {
            Level::Trace => tracing::trace!(plugin, "{line}"),
            Level::Debug => tracing::debug!(plugin, "{line}"),
            Level::Info => tracing::info!(plugin, "{line}"),
            Level::Warn => tracing::warn!(plugin, "{line}"),
            Level::Error => tracing::error!(plugin, "{line}"),
        }
        self.lines.push(LogLine {
            level: level.name(),
            message: line,
        });
    }

    /// Ends the call: logs one line saying what was dropped, if anything,
    /// and hands over the lines kept. The log is empty again after.
    pub(crate) fn finish(&mut self, plugin: &str) -> (Vec<LogLine>, DroppedLogs) {
        let dropped = std::mem::take(&mut self.dropped);
        if dropped.lines > 0 {
            tracing::warn!(
                plugin,
                dropped_lines = dropped.lines,
                dropped_bytes = dropped.bytes,
                "{} log lines ({} bytes) of this call dropped: a call may log {} lines and {} bytes \
                 ([sandbox] log_max_lines, log_max_bytes)",
                dropped.lines,
                dropped.bytes,
                self.max_lines,
                self.max_bytes
            );
        }
        self.bytes = 0;
        (std::mem::take(&mut self.lines), dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(max_lines: u32, max_bytes: u64) -> CallLog {
        CallLog::new(&Sandbox {
            log_max_lines: max_lines,
            log_max_bytes: max_bytes,
            ..Sandbox::default()
        })
    }

    #[test]
    fn a_message_is_one_line_whatever_it_holds() {
        let mut l = log(10, 10_000);
        l.write(
            "p",
            Level::Info,
            "done\nINFO fieldhook::admin: admin token accepted\r\u{1b}[2K",
        );
        let (lines, _) = l.finish("p");
        assert_eq!(
            lines[0].message,
            "done\\nINFO fieldhook::admin: admin token accepted\\r\\u{1b}[2K"
        );
    }

    #[test]
    fn a_long_line_is_cut_saying_how_much_was_left_out() {
        let mut l = log(10, 100_000);
        l.write("p", Level::Warn, &"x".repeat(64 * 1024));
        let (lines, dropped) = l.finish("p");
        assert!(lines[0].message.len() < MAX_LINE_BYTES + 32);
        assert!(
            lines[0]
                .message
                .ends_with(&format!("… ({} more bytes)", 64 * 1024 - MAX_LINE_BYTES)),
            "{}",
            &lines[0].message[MAX_LINE_BYTES - 10..]
        );
        assert_eq!(dropped, DroppedLogs::default());
    }

    #[test]
    fn lines_past_the_calls_limits_are_dropped_and_counted() {
        let mut l = log(3, 1_000_000);
        for i in 0..10 {
            l.write("p", Level::Info, &format!("line {i}"));
        }
        let (lines, dropped) = l.finish("p");
        assert_eq!(lines.len(), 3);
        assert_eq!(
            dropped,
            DroppedLogs {
                lines: 7,
                bytes: 42
            }
        );

        let mut l = log(1000, 10_000);
        for _ in 0..800 {
            l.write("p", Level::Info, &"y".repeat(64 * 1024));
        }
        let (lines, dropped) = l.finish("p");
        let written: usize = lines.iter().map(|l| l.message.len()).sum();
        assert!(written <= 10_000, "{written}");
        assert_eq!(lines.len(), 2);
        assert_eq!(dropped.lines, 798);
        assert_eq!(dropped.bytes, 798 * 64 * 1024);
    }

    #[test]
    fn the_next_call_starts_with_an_empty_log() {
        let mut l = log(1, 1000);
        l.write("p", Level::Info, "a");
        l.write("p", Level::Info, "b");
        assert_eq!(l.finish("p").1.lines, 1);
        l.write("p", Level::Info, "c");
        let (lines, dropped) = l.finish("p");
        assert_eq!((lines.len(), dropped.lines), (1, 0));
    }
}
