//! Reading the guest's orders from the kernel command line.
//!
//! The VMM has exactly one cheap channel into a freshly booted Linux guest before any device
//! exists: the kernel command line, a string it places in guest memory and points the kernel at
//! (the `cmdline_ptr` of the boot protocol, or the PVH start info). The kernel parses the words
//! it knows (`console=`, `panic=` ...), hands words without a dot to PID 1 as argv (`foo`) or
//! environment (`foo=bar`), and *keeps* dotted words (`isolab.workload=cpu`) for modules, so they
//! never reach init's argv or env. That is why `/init` reads `/proc/cmdline` itself.
//!
//! The kernel's own tokenizer (`next_arg()` in lib/cmdline.c) splits on spaces, but a
//! double-quoted stretch may contain spaces: `isolab.x="a b"`. [`split_words`] follows it.

use std::fmt;

/// A workload is one measured thing the guest does between boot and power-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Nothing: measures boot + power-off only (the "`true`" of a VM).
    True,
    /// A dependent integer loop: pure guest user-mode CPU work, no exits expected.
    Cpu,
    /// Repeated `getppid()`: the guest's user→kernel→user round trip.
    Syscall,
    /// First touch then warm rewrite of a fresh buffer: guest page faults vs. cached TLB/memory.
    Mem,
}

impl Workload {
    /// The word used on the command line and in result lines.
    pub fn name(self) -> &'static str {
        match self {
            Workload::True => "true",
            Workload::Cpu => "cpu",
            Workload::Syscall => "syscall",
            Workload::Mem => "mem",
        }
    }

    fn parse(word: &str) -> Result<Self, CmdlineError> {
        match word {
            "true" => Ok(Workload::True),
            "cpu" => Ok(Workload::Cpu),
            "syscall" => Ok(Workload::Syscall),
            "mem" => Ok(Workload::Mem),
            other => Err(CmdlineError::UnknownWorkload(other.to_owned())),
        }
    }

    /// Iterations when the command line gives none: enough to amortise the clock reads, few
    /// enough that a slow (emulating) host still finishes in well under a second of guest time.
    pub fn default_iterations(self) -> u64 {
        match self {
            Workload::True | Workload::Mem => 0,
            Workload::Cpu => 1_000_000,
            Workload::Syscall => 100_000,
        }
    }
}

/// Default buffer for the `mem` workload: 16 MiB = 4096 pages.
pub const DEFAULT_MEM_BYTES: u64 = 16 * 1024 * 1024;

/// Largest `mem` buffer accepted: the guest usually has a few hundred MiB at most.
pub const MAX_MEM_BYTES: u64 = 1024 * 1024 * 1024;

/// What `/init` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    pub workload: Workload,
    /// Loop count for `cpu` / `syscall`; for `mem` it is derived from `mem_bytes`.
    pub iterations: u64,
    pub mem_bytes: u64,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            workload: Workload::True,
            iterations: Workload::True.default_iterations(),
            mem_bytes: DEFAULT_MEM_BYTES,
        }
    }
}

/// A command line `/init` cannot act on; the message says which word and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    UnknownWorkload(String),
    BadNumber { key: &'static str, value: String },
    MemOutOfRange(u64),
    UnterminatedQuote,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::UnknownWorkload(w) => write!(
                f,
                "unknown isolab.workload={w:?}; use one of true, cpu, syscall, mem"
            ),
            CmdlineError::BadNumber { key, value } => {
                write!(f, "{key}={value:?} is not a non-negative integer")
            }
            CmdlineError::MemOutOfRange(n) => write!(
                f,
                "isolab.mem_bytes={n} is out of range; use 4096..={MAX_MEM_BYTES}"
            ),
            CmdlineError::UnterminatedQuote => {
                write!(f, "kernel command line has an unterminated double quote")
            }
        }
    }
}

impl std::error::Error for CmdlineError {}

/// Splits a command line into words the way the kernel does: whitespace separates words,
/// double quotes group, and the quotes themselves are removed.
pub fn split_words(cmdline: &str) -> Result<Vec<String>, CmdlineError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut in_quotes = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                in_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_quotes {
        return Err(CmdlineError::UnterminatedQuote);
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

fn parse_u64(key: &'static str, value: &str) -> Result<u64, CmdlineError> {
    let digits: String = value.chars().filter(|c| *c != '_').collect();
    digits.parse::<u64>().map_err(|_| CmdlineError::BadNumber {
        key,
        value: value.to_owned(),
    })
}

/// Turns `/proc/cmdline` into an [`InitConfig`]. Unknown words (the kernel's own, and other
/// `isolab.*` keys a newer VMM might pass) are ignored; the last occurrence of a key wins, as
/// for kernel parameters.
pub fn parse(cmdline: &str) -> Result<InitConfig, CmdlineError> {
    let mut workload = Workload::True;
    let mut iterations = None;
    let mut mem_bytes = DEFAULT_MEM_BYTES;
    for word in split_words(cmdline)? {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "isolab.workload" => workload = Workload::parse(value)?,
            "isolab.iterations" => iterations = Some(parse_u64("isolab.iterations", value)?),
            "isolab.mem_bytes" => mem_bytes = parse_u64("isolab.mem_bytes", value)?,
            _ => {}
        }
    }
    if !(4096..=MAX_MEM_BYTES).contains(&mem_bytes) {
        return Err(CmdlineError::MemOutOfRange(mem_bytes));
    }
    Ok(InitConfig {
        workload,
        iterations: iterations.unwrap_or_else(|| workload.default_iterations()),
        mem_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cmdline_means_true_workload() {
        assert_eq!(parse("").unwrap(), InitConfig::default());
        assert_eq!(
            parse("console=ttyS0 reboot=k panic=-1\n").unwrap().workload,
            Workload::True
        );
    }

    #[test]
    fn workload_and_default_iterations() {
        let c = parse("console=ttyS0 isolab.workload=syscall quiet").unwrap();
        assert_eq!(c.workload, Workload::Syscall);
        assert_eq!(c.iterations, 100_000);
        let c = parse("isolab.workload=cpu").unwrap();
        assert_eq!(c.iterations, 1_000_000);
    }

    #[test]
    fn explicit_values_and_last_one_wins() {
        let c = parse(
            "isolab.workload=cpu isolab.iterations=5 isolab.workload=mem isolab.mem_bytes=65_536",
        )
        .unwrap();
        assert_eq!(c.workload, Workload::Mem);
        assert_eq!(c.iterations, 5);
        assert_eq!(c.mem_bytes, 65_536);
    }

    #[test]
    fn quotes_group_words_like_the_kernel() {
        let w = split_words(r#"a="b c" isolab.workload="cpu"  d"#).unwrap();
        assert_eq!(w, vec!["a=b c", "isolab.workload=cpu", "d"]);
        assert_eq!(
            split_words("x=\"open"),
            Err(CmdlineError::UnterminatedQuote)
        );
    }

    #[test]
    fn bad_input_gives_specific_errors() {
        assert_eq!(
            parse("isolab.workload=fork"),
            Err(CmdlineError::UnknownWorkload("fork".into()))
        );
        let e = parse("isolab.iterations=-3").unwrap_err();
        assert!(e.to_string().contains("isolab.iterations=\"-3\""), "{e}");
        assert_eq!(
            parse("isolab.mem_bytes=100"),
            Err(CmdlineError::MemOutOfRange(100))
        );
    }
}
