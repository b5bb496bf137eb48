//! What to run: the guest (a kernel image), its vCPUs and memory, the console, the time limit.
//! Plus parsers for the human forms ("256M", "30s") the CLI accepts. (isolab's stub guest is
//! configured through [`crate::stub::StubOptions`].)

use crate::error::{Result, VmError};
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
    /// A Linux kernel, or any image with a PVH note (such as [`crate::stub::pvh_elf`]): ELF
    /// vmlinux (PVH entry if it has the note) or bzImage.
    Linux {
        /// Kernel image.
        kernel: PathBuf,
        /// Optional initramfs (uncompressed cpio loads fastest).
        initrd: Option<PathBuf>,
        /// Kernel command line.
        cmdline: String,
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
    /// Attach QEMU's `isa-debug-exit` at port 0xf4: a guest write of V stops the VM with
    /// [`crate::GuestExit::ExitPort`]`(V)`.
    pub debug_exit: bool,
}

/// The virtual machine without its guest: what every boot needs.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) vcpus: u8,
    pub(crate) memory_bytes: u64,
    pub(crate) timeout: Duration,
    pub(crate) console: ConsoleSpec,
    pub(crate) debug_exit: bool,
}

impl VmConfig {
    /// The machine part of this configuration.
    pub(crate) fn machine(&self) -> Machine {
        Machine {
            vcpus: self.vcpus,
            memory_bytes: self.memory_bytes,
            timeout: self.timeout,
            console: self.console.clone(),
            debug_exit: self.debug_exit,
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
            debug_exit: false,
        }
    }

    /// Rejects configurations no VM could run, before any KVM work.
    pub fn validate(&self) -> Result<()> {
        self.machine().validate()?;
        crate::guest::Guest::validate(&self.kernel_guest())
    }

    /// The guest this configuration boots.
    pub(crate) fn kernel_guest(&self) -> crate::linux::LinuxGuest<'_> {
        let GuestSpec::Linux {
            kernel,
            initrd,
            cmdline,
        } = &self.guest;
        crate::linux::LinuxGuest {
            kernel,
            initrd: initrd.as_deref(),
            cmdline,
        }
    }
}

impl Machine {
    /// Rejects machines no guest could run on, before any KVM work.
    pub(crate) fn validate(&self) -> Result<()> {
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
        let mut config = VmConfig::linux("/boot/vmlinux");
        config.vcpus = 0;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 1 vCPU"));
    }

    #[test]
    fn bad_machines_and_command_lines_are_rejected() {
        let mut config = VmConfig::linux("/boot/vmlinux");
        assert!(config.validate().is_ok());
        config.memory_bytes = 8 << 20;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("too small"));
        config.memory_bytes = (64 << 20) + 1;
        assert!(config.validate().unwrap_err().to_string().contains("4 KiB"));
        config.memory_bytes = 64 << 20;
        config.guest = GuestSpec::Linux {
            kernel: "/boot/vmlinux".into(),
            initrd: None,
            cmdline: "x".repeat(crate::layout::CMDLINE_MAX_BYTES),
        };
        assert!(config.validate().unwrap_err().to_string().contains("limit"));
    }
}
