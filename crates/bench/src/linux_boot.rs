//! A Linux guest's start, timed from outside: spawn the VMM, read the guest's serial console on
//! the VMM's stdout, stop the clock at a chosen console line.
//!
//! What "started" means for a VM is a choice, and the articles' "VMs take minutes" (C1) lumps
//! firmware, bootloader, kernel and init together. A microVM skips the first two: the VMM loads
//! an uncompressed kernel (`vmlinux`, entered through its PVH note) straight into guest memory
//! and jumps to it. The kernel's first lines on a serial console are `Linux version …` and
//! `Command line: …`; the second one proves the kernel runs *and* read what the VMM passed it,
//! so both isolab's VMM and `qemu-system-x86_64 -M microvm` are timed to it with the same
//! kernel, initrd and command line. `earlyprintk=ttyS0` makes the kernel write those lines as
//! soon as it prints them instead of when the real console driver registers later.
//!
//! How far a guest gets depends on the host. With hardware virtualization (VT-x/AMD-V) guest
//! kernel mode runs natively and a minimal kernel reaches `/init` in ~100-200 ms. On a
//! paravirtual KVM such as `kvm_pvm`, an unmodified guest's kernel mode (CPL0) is emulated
//! instruction by instruction, and its first user→kernel transition fails, so it never reaches
//! init: the banner is the furthest honest point. The row's note says which case applies.
//!
//! The clock runs from `spawn` (so process creation, the VMM's own start and KVM setup are
//! included — what a user waits for) to the moment the line arrives on the pipe. isolab's
//! `vm run --until` prints the captured console when it stops, so its figure also includes
//! stopping the VM; QEMU is killed after the line, outside the timing.

use crate::environment::{Environment, NotMeasured, Sample};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The command line both VMMs give the kernel.
pub const CMDLINE: &str = "console=ttyS0 earlyprintk=ttyS0 reboot=k panic=-1 nomodule pci=off";
/// The console line the clock stops at.
pub const MARK: &str = "Command line:";

/// Where `scripts/build-guest.sh` leaves the guest kernel and initramfs.
pub fn guest_dir() -> PathBuf {
    std::env::var_os("ISOLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/isolab"))
        .join("guest")
}

/// The guest kernel and initramfs, or why they cannot be used.
pub fn guest_images() -> Result<(PathBuf, PathBuf), NotMeasured> {
    let dir = guest_dir();
    let (kernel, initrd) = (dir.join("vmlinux"), dir.join("initramfs.cpio"));
    for p in [&kernel, &initrd] {
        if !p.is_file() {
            return Err(NotMeasured::GuestImageMissing(p.clone()));
        }
    }
    Ok((kernel, initrd))
}

/// `isolab vm run` booting the kernel until [`MARK`], with phase timings on stderr.
pub fn isolab_argv(exe: &Path, kernel: &Path, initrd: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![exe.into(), "vm".into(), "run".into()];
    argv.extend(["--kernel".into(), kernel.into()]);
    argv.extend(["--initrd".into(), initrd.into()]);
    for a in [
        "--cmdline",
        CMDLINE,
        "--until",
        MARK,
        "--timeout",
        "60s",
        "--timings",
    ] {
        argv.push(a.into());
    }
    argv
}

/// `qemu-system-x86_64 -M microvm` with the same kernel, initrd and command line.
///
/// `-cpu host` minus two features: on a kvm_pvm host QEMU aborts on `arch-capabilities`
/// (MSR 0x10a), and isolab hides `cx16` from its guests too.
pub fn qemu_argv(kernel: &Path, initrd: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = [
        "qemu-system-x86_64",
        "-M",
        "microvm",
        "-enable-kvm",
        "-cpu",
        "host,-arch-capabilities,-cx16",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-serial",
        "stdio",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    argv.extend(["-kernel".into(), kernel.into()]);
    argv.extend(["-initrd".into(), initrd.into()]);
    argv.extend(["-append".into(), CMDLINE.into()]);
    argv
}

/// The note for a Linux boot row, from the platform probe.
pub fn boot_note(cpl0_native: Option<bool>, cpl0_detail: &str) -> String {
    let why = match cpl0_native {
        Some(false) => format!(
            "on this host guest kernel mode is not native ({cpl0_detail}): an unmodified Linux \
             guest crawls through emulated CPL0 and dies at its first user→kernel system call, \
             so the point reached is the kernel's banner, not init"
        ),
        Some(true) => "guest kernel mode runs natively here; the row still stops at the banner \
                       so both VMMs are timed to the same point"
            .to_string(),
        None => format!("guest kernel mode could not be probed ({cpl0_detail})"),
    };
    format!("spawn → the kernel's \"{MARK}\" console line; {why}")
}

/// Spawns a VMM and times it to a console line.
#[derive(Debug)]
pub struct TimeToConsoleLine {
    /// Row name.
    pub name: String,
    /// The VMM's command line.
    pub argv: Vec<OsString>,
    /// Give up (and kill the VMM) after this long.
    pub timeout: Duration,
    /// The VMM stops by itself after the line (isolab `--until`): wait for it and read its
    /// phase timings from stderr. Otherwise (QEMU) it is killed.
    pub stops_itself: bool,
}

/// Kills and reaps a child when dropped, so no VMM outlives a failed sample.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Reads `stdout` line by line on a thread; sends `()` when a line contains [`MARK`].
fn watch_for_mark(stdout: impl Read + Send + 'static) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(MARK) {
                let _ = tx.send(());
                // Keep draining so the VMM never blocks on a full pipe.
            }
        }
    });
    rx
}

/// The phases `isolab vm run --timings` prints (µs), under the bench's names.
pub fn parse_vm_timings(stderr: &str) -> Vec<(String, f64)> {
    let names = [
        ("create VM", "create_vm_us"),
        ("guest memory", "memory_us"),
        ("irqchip + PIT", "irqchip_us"),
        ("vCPUs", "vcpus_us"),
        ("load guest", "load_us"),
        ("first KVM_RUN", "first_run_at_us"),
        ("kernel banner", "banner_at_us"),
        ("exit", "exit_at_us"),
        ("teardown", "teardown_us"),
        ("VM total", "total_us"),
    ];
    let mut out = Vec::new();
    for line in stderr.lines() {
        for (prefix, key) in names {
            if line.starts_with(prefix) {
                if let Some(v) = line
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    out.push((key.to_string(), v));
                }
            }
        }
    }
    out
}

impl Environment for TimeToConsoleLine {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        crate::environment::kvm_usable()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let child = cmd.spawn().map_err(NotMeasured::start(&self.argv[0]))?;
        let mut child = Reaped(child);
        let stdout = child.0.stdout.take().expect("stdout is piped");
        let mut stderr = child.0.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let seen = watch_for_mark(stdout).recv_timeout(self.timeout);
        let us = t.elapsed().as_secs_f64() * 1e6;
        if !self.stops_itself || seen.is_err() {
            let _ = child.0.kill();
        }
        let status = child.0.wait().ok();
        drop(child);
        let stderr = stderr_reader.join().unwrap_or_default();
        if seen.is_err() {
            return Err(NotMeasured::Misbehaved(format!(
                "no \"{MARK}\" console line within {:?} ({}): {}",
                self.timeout,
                status.map(|s| s.to_string()).unwrap_or_default(),
                stderr.lines().last().unwrap_or("").trim()
            )));
        }
        let phases = if self.stops_itself {
            parse_vm_timings(&stderr)
        } else {
            Vec::new()
        };
        Ok(Sample {
            value: us,
            phases_us: phases,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_timings_parse_into_named_phases() {
        // As `isolab vm run --timings` prints it (crates/cli/src/vm.rs, print_timings).
        let text = "phase                                 µs\n\
                    exec → main (CPU time)                900\n\
                    create VM                             412\n\
                    guest memory                           61\n\
                    irqchip + PIT                         130\n\
                    load guest + boot params             9000\n\
                    first KVM_RUN               at       2100\n\
                    kernel banner               at     512345\n\
                    init reached                at          -\n\
                    VM total                           520000\n\
                    process total to here              521000\n";
        let phases = parse_vm_timings(text);
        assert!(phases.contains(&("create_vm_us".into(), 412.0)));
        assert!(phases.contains(&("banner_at_us".into(), 512345.0)));
        assert!(phases.contains(&("irqchip_us".into(), 130.0)));
        assert!(phases.contains(&("load_us".into(), 9000.0)));
        assert!(phases.contains(&("total_us".into(), 520000.0)));
        assert_eq!(phases.len(), 7, "{phases:?}");
        // "-" (not reached) is no figure.
        assert!(!phases.iter().any(|(k, _)| k.contains("init")));
    }

    #[test]
    fn a_missing_line_is_a_reason_and_leaves_no_process() {
        // `sh -c 'echo hello; exec sleep 30'` never prints the mark.
        let mut env = TimeToConsoleLine {
            name: "fake".into(),
            argv: ["sh", "-c", "echo hello; exec sleep 30"]
                .iter()
                .map(OsString::from)
                .collect(),
            timeout: Duration::from_millis(300),
            stops_itself: false,
        };
        let t = Instant::now();
        let err = env.launch_once(0).unwrap_err();
        assert!(err.to_string().contains("no \"Command line:\""), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn the_clock_stops_at_the_marked_line() {
        let mut env = TimeToConsoleLine {
            name: "fake".into(),
            argv: [
                "sh",
                "-c",
                "echo Linux version 6; echo 'Command line: console=ttyS0'; exec sleep 30",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
            timeout: Duration::from_secs(20),
            stops_itself: false,
        };
        let s = env.launch_once(0).unwrap();
        assert!(s.value > 0.0 && s.value < 10e6, "{}", s.value);
    }

    #[test]
    fn the_note_says_why_the_banner() {
        let note = boot_note(Some(false), "CPL0 2000× slower");
        assert!(note.contains("banner, not init") && note.contains("2000"));
        assert!(boot_note(Some(true), "").contains("natively"));
    }
}
