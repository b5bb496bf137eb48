//! What to run: the guest (a Linux kernel or the stub), its vCPUs and memory, the console,
//! and the time limit. Plus parsers for the human forms ("256M", "30s") the CLI accepts.

use crate::error::{Result, VmError};
use crate::stub::Workload;
use std::path::PathBuf;
use std::time::Duration;

/// Default guest memory.
pub const DEFAULT_MEMORY_BYTES: u64 = 256 << 20;
/// Default time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default Linux command line: serial console, no PCI probing, power off (not reboot) on panic.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off nomodule";

/// The guest to boot.
#[derive(Debug, Clone)]
pub enum GuestSpec {
    /// A Linux kernel: ELF vmlinux (PVH entry if it has the note) or bzImage.
    Linux {
        /// Kernel image.
        kernel: PathBuf,
        /// Optional initramfs (uncompressed cpio loads fastest).
        initrd: Option<PathBuf>,
        /// Kernel command line.
        cmdline: String,
    },
    /// isolab's stub guest running one workload.
    Stub {
        /// Which workload.
        workload: Workload,
        /// Iterations (or warm passes for the memory workload); `None` = the workload default.
        iterations: Option<u64>,
    },
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, Default)]
pub enum ConsoleSpec {
    /// The VMM's stdout.
    Stdout,
    /// A file (created or truncated).
    File(PathBuf),
    /// Kept in memory and returned in the report (tests, benches); at most 4 MiB.
    Capture,
    /// Thrown away (still scanned for the kernel banner).
    #[default]
    Discard,
}

/// A complete VM configuration.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The guest.
    pub guest: GuestSpec,
    /// Number of vCPUs (one thread each).
    pub vcpus: u8,
    /// Guest RAM.
    pub memory_bytes: u64,
    /// The watchdog stops the guest after this long.
    pub timeout: Duration,
    /// Serial console destination.
    pub console: ConsoleSpec,
}

impl VmConfig {
    /// A stub-guest VM: 1 vCPU, 64 MiB (enough for the memory workload's default buffer).
    pub fn stub(workload: Workload) -> Self {
        VmConfig {
            guest: GuestSpec::Stub {
                workload,
                iterations: None,
            },
            vcpus: 1,
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(10),
            console: ConsoleSpec::Discard,
        }
    }

    /// A Linux VM with the default command line.
    pub fn linux(kernel: impl Into<PathBuf>) -> Self {
        VmConfig {
            guest: GuestSpec::Linux {
                kernel: kernel.into(),
                initrd: None,
                cmdline: DEFAULT_CMDLINE.to_string(),
            },
            vcpus: 1,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            console: ConsoleSpec::Stdout,
        }
    }

    /// Rejects configurations no VM could run, before any KVM work.
    pub fn validate(&self) -> Result<()> {
        if self.vcpus == 0 {
            return Err(VmError::Config("a VM needs at least 1 vCPU (got 0)".into()));
        }
        if self.memory_bytes < 16 << 20 {
            return Err(VmError::Config(format!(
                "guest memory {} is too small: give at least 16M",
                format_bytes(self.memory_bytes)
            )));
        }
        if !self.memory_bytes.is_multiple_of(4096) {
            return Err(VmError::Config(
                "guest memory must be a multiple of 4 KiB".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(VmError::Config("timeout must be greater than 0".into()));
        }
        if let GuestSpec::Linux { cmdline, .. } = &self.guest {
            if cmdline.len() >= crate::layout::CMDLINE_MAX_BYTES {
                return Err(VmError::Config(format!(
                    "kernel command line is {} bytes; the limit is {}",
                    cmdline.len(),
                    crate::layout::CMDLINE_MAX_BYTES - 1
                )));
            }
        }
        Ok(())
    }
}

/// Parses "256M", "1G", "65536K", "1048576" (bytes) into bytes.
pub fn parse_memory_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let bad = || {
        VmError::Config(format!(
            "memory size {text:?} is not a size: use a number with K, M, G or T (e.g. 256M)"
        ))
    };
    // Accept "256M", "256MiB", "256MB" alike: binary units either way.
    let unit = text.strip_suffix(['B', 'b']).unwrap_or(text);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let (digits, shift) = match unit.char_indices().last() {
        Some((i, 'k' | 'K')) => (&unit[..i], 10),
        Some((i, 'm' | 'M')) => (&unit[..i], 20),
        Some((i, 'g' | 'G')) => (&unit[..i], 30),
        Some((i, 't' | 'T')) => (&unit[..i], 40),
        Some(_) => (unit, 0),
        None => return Err(bad()),
    };
    let value: u64 = digits.parse().map_err(|_| bad())?;
    value
        .checked_shl(shift)
        .filter(|v| v >> shift == value)
        .ok_or_else(bad)
}

/// Parses "30s", "500ms", "2m", "10" (seconds) into a duration.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let bad = || {
        VmError::Config(format!(
            "duration {text:?} is not a duration: use e.g. 30s, 500ms or 2m"
        ))
    };
    let (digits, unit_ms) = if let Some(d) = text.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = text.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = text.strip_suffix('m') {
        (d, 60_000)
    } else {
        (text, 1000)
    };
    let value: u64 = digits.parse().map_err(|_| bad())?;
    value
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

/// "256 MiB"-style rendering for messages.
pub fn format_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_memory_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_memory_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_memory_size("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_memory_size("4096").unwrap(), 4096);
        assert!(parse_memory_size("lots").is_err());
        assert!(parse_memory_size("").is_err());
        assert!(parse_memory_size("99999999999999G").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn zero_vcpus_rejected() {
        let mut config = VmConfig::stub(Workload::True);
        config.vcpus = 0;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 1 vCPU"));
    }
}
