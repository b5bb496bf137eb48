//! `isolab-guest-init`: the whole userspace of isolab's Linux microVM guest.
//!
//! A Linux VM's boot ends when the kernel execs `/init` from the initramfs. For a benchmark
//! guest that one static binary is all the userspace we need: it tells the VMM "userspace is
//! up" (boot timer, [`port_io`]), mounts the kernel's pseudo-filesystems ([`guest`]), reads its
//! orders from the kernel command line ([`cmdline`]), runs one workload ([`workload`]), prints
//! machine-readable lines on the serial console ([`report`]) and stops the VM.
//!
//! The contracts with the VMM (port numbers, values, line grammar) are in guests/README.md.

pub mod cmdline;
pub mod guest;
pub mod port_io;
pub mod report;
pub mod workload;

use report::{emit, Line};

/// Where this process is running, which decides what it may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 inside the guest: full boot sequence, ends by stopping the VM.
    Guest,
    /// On a development host (`--host-test`): no port I/O, no mounts, no power-off; the command
    /// line comes from `--cmdline` or the host's `/proc/cmdline`.
    HostTest { cmdline: Option<String> },
}

/// Parses init's own argv. The kernel passes undotted, `=`-less command-line words as argv,
/// so unknown arguments are ignored rather than fatal.
pub fn mode_from_args(args: &[String], pid: u32) -> Result<Mode, String> {
    if args.iter().any(|a| a == "--host-test") {
        let cmdline = match args.iter().position(|a| a == "--cmdline") {
            Some(i) => Some(
                args.get(i + 1)
                    .cloned()
                    .ok_or("--cmdline needs a value, e.g. --cmdline 'isolab.workload=cpu'")?,
            ),
            None => None,
        };
        return Ok(Mode::HostTest { cmdline });
    }
    if pid == 1 {
        Ok(Mode::Guest)
    } else {
        Err(format!(
            "running as pid {pid}, not as the guest's init (pid 1); pass --host-test [--cmdline '...'] to try it on a host"
        ))
    }
}

fn read_proc_cmdline() -> Result<String, String> {
    std::fs::read_to_string("/proc/cmdline").map_err(|e| format!("reading /proc/cmdline: {e}"))
}

/// Runs init in `mode`; returns the exit status (only reached in host-test mode: guest mode
/// ends in [`guest::power_off`]).
pub fn run(mode: Mode) -> i32 {
    let in_guest = mode == Mode::Guest;
    let fail = |stage: &str, msg: String| -> i32 {
        emit(&Line::new("error").kv("stage", stage).msg(msg));
        if in_guest {
            emit(&Line::new("poweroff").finish());
            guest::power_off();
        }
        1
    };

    let mut boot_timer = "skipped";
    let mut missing = Vec::new();
    if in_guest {
        // First, before anything else, so the VMM's "time to init" excludes our own work.
        let timer = port_io::signal_boot_timer();
        match guest::mount_pseudo_filesystems() {
            Ok(skipped) => missing = skipped,
            Err(e) => return fail("mount", e.to_string()),
        }
        guest::ensure_console();
        match timer {
            Ok(path) => boot_timer = path.name(),
            Err(e) => return fail("boot_timer", e.to_string()),
        }
    }

    let cmdline = match &mode {
        Mode::HostTest {
            cmdline: Some(text),
        } => text.clone(),
        _ => match read_proc_cmdline() {
            Ok(text) => text,
            Err(e) => return fail("cmdline", e),
        },
    };
    let config = match cmdline::parse(&cmdline) {
        Ok(config) => config,
        Err(e) => return fail("cmdline", e.to_string()),
    };

    let mut ready = Line::new("ready")
        .kv("boottime_ns", guest::boottime_ns())
        .kv("workload", config.workload.name())
        .kv("boot_timer", boot_timer);
    if !missing.is_empty() {
        ready = ready.kv("missing_fs", missing.join(","));
    }
    emit(&ready.finish());

    match workload::run(&config) {
        Ok(m) => emit(&m.to_line()),
        Err(e) => return fail("workload", e.to_string()),
    }

    if in_guest {
        emit(&Line::new("poweroff").finish());
        guest::power_off();
    }
    0
}

/// Installs a panic hook that prints one `error` line and, as PID 1, stops the VM instead of
/// letting the kernel panic (a dead init would otherwise hang a VM booted without `panic=-1`).
pub fn install_panic_hook(in_guest: bool) {
    std::panic::set_hook(Box::new(move |info| {
        emit(&Line::new("error").kv("stage", "panic").msg(info));
        if in_guest {
            emit(&Line::new("poweroff").finish());
            guest::power_off();
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pid_1_is_guest_mode() {
        assert_eq!(mode_from_args(&args(&["/init"]), 1), Ok(Mode::Guest));
    }

    #[test]
    fn not_pid_1_without_flag_refuses() {
        let e = mode_from_args(&args(&["init"]), 4242).unwrap_err();
        assert!(e.contains("--host-test"), "{e}");
    }

    #[test]
    fn host_test_flag_with_and_without_cmdline() {
        assert_eq!(
            mode_from_args(&args(&["init", "--host-test"]), 7),
            Ok(Mode::HostTest { cmdline: None })
        );
        assert_eq!(
            mode_from_args(
                &args(&["init", "--host-test", "--cmdline", "isolab.workload=cpu"]),
                7
            ),
            Ok(Mode::HostTest {
                cmdline: Some("isolab.workload=cpu".into())
            })
        );
        assert!(mode_from_args(&args(&["init", "--host-test", "--cmdline"]), 7).is_err());
    }
}
