//! The result-line protocol: how a guest with nothing but a serial port reports numbers.
//!
//! Inside the microVM the only output device is a 16550-style UART. Every byte `/init` writes to
//! `/dev/console` becomes an `outb` to port 0x3f8, i.e. a VM exit the VMM turns into a byte on its
//! own stdout. The kernel writes to the same port, so our lines are interleaved with kernel log
//! lines; a fixed prefix (`isolab: `) lets the host pick ours out. Each line is written with a
//! single `write(2)` so a kernel message cannot land in the middle of it.
//!
//! Grammar (also in guests/README.md): `isolab: <event> key=value ... [msg=free text]`.

use std::fmt::Write as _;
use std::io::Write as _;

/// The prefix of every machine-readable line.
pub const PREFIX: &str = "isolab: ";

/// One machine-readable line under construction.
#[derive(Debug, Clone)]
pub struct Line {
    text: String,
}

impl Line {
    /// Starts a line for `event` (`ready`, `result`, `error`, `poweroff`).
    pub fn new(event: &str) -> Self {
        let mut text = String::with_capacity(96);
        text.push_str(PREFIX);
        text.push_str(event);
        Line { text }
    }

    /// Adds `key=value`. Whitespace in a value would break the grammar, so it becomes `_`.
    pub fn kv(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        let value = value.to_string();
        let _ = write!(self.text, " {key}=");
        self.text.extend(
            value
                .chars()
                .map(|c| if c.is_whitespace() { '_' } else { c }),
        );
        self
    }

    /// Adds the free-text `msg=` token; it must be the last one, and it stays on one line.
    pub fn msg(mut self, msg: impl std::fmt::Display) -> String {
        let msg = msg.to_string().replace(['\n', '\r'], " ");
        let _ = write!(self.text, " msg={msg}");
        self.finish()
    }

    /// The finished line, with its newline.
    pub fn finish(mut self) -> String {
        self.text.push('\n');
        self.text
    }
}

/// Writes one finished line to stdout (the console) in one `write` call and flushes it.
/// Errors are ignored on purpose: there is nowhere else to report them.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// A parsed machine-readable line: the event and its key/value tokens in order. The host side
/// (VMM, benches) can use the same rules; `/init` uses it in tests to prove the grammar holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    pub event: String,
    pub fields: Vec<(String, String)>,
}

impl ParsedLine {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one console line; `None` for lines that are not ours (kernel log, garbage).
pub fn parse_line(line: &str) -> Option<ParsedLine> {
    let rest = line.trim_end_matches(['\n', '\r']);
    let rest = &rest[rest.find(PREFIX)? + PREFIX.len()..];
    let (event, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if event.is_empty() || event.contains('=') {
        return None;
    }
    let mut fields = Vec::new();
    while !rest.is_empty() {
        if let Some(msg) = rest.strip_prefix("msg=") {
            fields.push(("msg".to_owned(), msg.to_owned()));
            break;
        }
        let (token, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let (k, v) = token.split_once('=')?;
        fields.push((k.to_owned(), v.to_owned()));
        rest = tail;
    }
    Some(ParsedLine {
        event: event.to_owned(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_the_parser() {
        let l = Line::new("result")
            .kv("workload", "syscall")
            .kv("iterations", 10)
            .kv("ns_per_iter", "1.5")
            .finish();
        assert_eq!(
            l,
            "isolab: result workload=syscall iterations=10 ns_per_iter=1.5\n"
        );
        let p = parse_line(&l).unwrap();
        assert_eq!(p.event, "result");
        assert_eq!(p.get("iterations"), Some("10"));
    }

    #[test]
    fn msg_is_last_and_keeps_spaces_but_not_newlines() {
        let l = Line::new("error")
            .kv("stage", "mount proc")
            .msg("no such\ndevice (os error 19)");
        assert_eq!(
            l,
            "isolab: error stage=mount_proc msg=no such device (os error 19)\n"
        );
        let p = parse_line(&l).unwrap();
        assert_eq!(p.get("stage"), Some("mount_proc"));
        assert_eq!(p.get("msg"), Some("no such device (os error 19)"));
    }

    #[test]
    fn kernel_log_lines_are_not_ours() {
        assert_eq!(parse_line("[    0.000000] Linux version 6.1.0"), None);
        // A kernel timestamp or stray byte before our prefix does not hide the line.
        let p = parse_line("\r[  1.0] isolab: poweroff\r\n").unwrap();
        assert_eq!(p.event, "poweroff");
        assert!(p.fields.is_empty());
    }
}
