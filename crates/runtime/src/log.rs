//! Where a runtime's errors go: stderr always, and the `--log` file in runc's two formats.
//!
//! conmon and containerd read a runtime's `--log` when a command fails and show its last error
//! to the user, so the line must be there, in the format they asked for with `--log-format`:
//! `text` (logrus's `time="..." level=error msg="..."`) or `json`
//! (`{"level":"error","msg":"...","time":"..."}`).

use std::io::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `--log` destination, if any.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub file: Option<PathBuf>,
    pub format: LogFormat,
}

impl Log {
    /// Writes `msg` at `level` to the log file (if any). Failing to log is not itself an error
    /// worth failing a command for, so it is ignored.
    pub fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let line = self.format_line(level, msg, &crate::state::now_rfc3339());
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn format_line(&self, level: &str, msg: &str, time: &str) -> String {
        match self.format {
            LogFormat::Json => {
                let mut v =
                    serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string();
                v.push('\n');
                v
            }
            LogFormat::Text => format!(
                "time={} level={level} msg={}\n",
                serde_json::Value::from(time),
                serde_json::Value::from(msg)
            ),
        }
    }

    /// An error: one line on stderr, and in the log.
    pub fn error(&self, msg: &str) {
        eprintln!("isolab-runtime: {msg}");
        self.write("error", msg);
    }

    /// A warning (something in config.json isolab does not apply): stderr and the log.
    pub fn warn(&self, msg: &str) {
        eprintln!("isolab-runtime: warning: {msg}");
        self.write("warning", msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_parse_and_text_lines_quote() {
        let json = Log {
            file: None,
            format: LogFormat::Json,
        };
        let line = json.format_line("error", "bad \"id\"", "T");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["msg"], "bad \"id\"");
        assert_eq!(v["level"], "error");
        let text = Log::default().format_line("error", "no such container", "T");
        assert_eq!(text, "time=\"T\" level=error msg=\"no such container\"\n");
    }
}
