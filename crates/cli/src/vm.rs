//! `isolab vm`: boot a Linux kernel or isolab's stub guest in a KVM microVM.
//!
//! The VMM itself lives in the isolab-microvm crate; this module turns command-line flags into
//! a `VmConfig`, prints the console / figure / phase timings, and picks the exit code:
//! 0 = the guest powered off, rebooted or the stub finished; 2 = the stub workload cannot run
//! on this host (the reason is printed); V = the guest wrote V to `--debug-exit`; any error =
//! one line and a non-zero code (from main).
//!
//! `vm run` is a start-up path users time as a whole process, so it does only what the VM
//! needs: no image store, no cgroups, no bench code; the stub path starts no thread.

use anyhow::{bail, Context};
use isolab_microvm::{
    boot_stub, parse_duration, parse_memory_size, ConsoleSpec, GuestExit, GuestSpec, PhaseTimings,
    Platform, StubOptions, VmConfig, Workload, WorkloadOutcome,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `isolab vm` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VmCommand {
    /// Boot a Linux kernel (--kernel) or the stub guest (--guest stub:WORKLOAD) and run it.
    Run(Box<RunArgs>),
    /// Write the stub guest's PVH image: an ELF that both `isolab vm run --kernel FILE
    /// --debug-exit` and `qemu-system-x86_64 -M microvm -kernel FILE -device
    /// isa-debug-exit,iobase=0xf4,iosize=4` boot, to compare the two VMMs on the same guest.
    StubImage {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show which KVM this host has and whether guest kernel mode runs natively.
    Platform {
        /// Skip the CPL0 probe (which boots a stub VM for a few milliseconds).
        #[arg(long)]
        no_probe: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Flags of `isolab vm run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Kernel image: ELF vmlinux (PVH entry when it has the note) or bzImage.
    #[arg(long, value_name = "K", conflicts_with = "guest")]
    kernel: Option<PathBuf>,
    /// Initramfs to pass to the kernel (an uncompressed cpio unpacks fastest).
    #[arg(long, value_name = "I", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, requires = "kernel", default_value = isolab_microvm::config::DEFAULT_CMDLINE)]
    cmdline: String,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// Guest memory (K, M or G suffix); default 256M for a kernel, 64M for the stub guest
    /// (its largest default buffer is 32M: KVM's per-VM bookkeeping grows with the size).
    #[arg(long)]
    memory: Option<String>,
    /// isolab's own guest: stub:true|syscall|pio|mmio|cpu|memory|cpl0-probe|hang|triple-fault.
    #[arg(long, value_name = "stub:WORKLOAD")]
    guest: Option<String>,
    /// Iterations for a stub workload (warm passes for `memory`).
    #[arg(long, requires = "guest")]
    iterations: Option<u64>,
    /// Stop the guest after this long (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Write the serial console to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    console: Option<PathBuf>,
    /// Print where the time went to stderr: process start to here (CPU time), then the VM's
    /// phases (create, load, first KVM_RUN, banner, init, exit, teardown), then the output.
    #[arg(long)]
    timings: bool,
    /// Attach QEMU's isa-debug-exit device at port 0xf4: a guest write of V stops the VM and
    /// isolab exits with V (see `isolab vm stub-image`).
    #[arg(long, requires = "kernel")]
    debug_exit: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Stub guest: also measure the VMM's resident memory beyond guest RAM (reported with
    /// --json as `footprint`), the way Firecracker does: process RSS minus guest pages touched.
    #[arg(long, requires = "guest")]
    measure_rss: bool,
    /// Stop the guest cleanly as soon as its console prints TEXT (e.g. "Command line:" to time
    /// a kernel to its banner, on hosts where it cannot go further).
    #[arg(long, value_name = "TEXT", requires = "kernel")]
    until: Option<String>,
}

/// Runs one `isolab vm` subcommand; returns the process exit code.
pub fn run(cmd: VmCommand) -> anyhow::Result<u8> {
    match cmd {
        VmCommand::Run(args) => {
            let clock = ProcessClock::now();
            if args.guest.is_some() {
                run_stub(*args, clock)
            } else {
                run_kernel(*args, clock)
            }
        }
        VmCommand::StubImage { out } => {
            std::fs::write(&out, isolab_microvm::stub::pvh_elf())
                .with_context(|| format!("writing the stub image to {}", out.display()))?;
            Ok(0)
        }
        VmCommand::Platform { no_probe, json } => {
            let platform = if no_probe {
                Platform::detect_static()
            } else {
                Platform::detect()
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&platform)?);
            } else {
                print_platform(&platform);
            }
            Ok(0)
        }
    }
}

/// `vm run --guest stub:WORKLOAD`.
fn run_stub(args: RunArgs, clock: ProcessClock) -> anyhow::Result<u8> {
    let guest = args.guest.as_deref().unwrap_or_default();
    let Some(name) = guest.strip_prefix("stub:") else {
        bail!("--guest takes stub:WORKLOAD (e.g. stub:true); boot Linux with --kernel");
    };
    let workload: Workload = name.parse()?;
    if args.vcpus == 0 {
        bail!("invalid VM configuration: a VM needs at least 1 vCPU (got 0)");
    }
    if args.vcpus != 1 {
        bail!(
            "the stub guest runs on exactly 1 vCPU (got --vcpus {})",
            args.vcpus
        );
    }
    let defaults = StubOptions::default();
    let memory_bytes = match &args.memory {
        Some(text) => parse_memory_size(text)?,
        None => defaults.memory_bytes,
    };
    let options = StubOptions {
        iterations: args.iterations,
        memory_bytes,
        timeout: parse_duration(&args.timeout)?,
        cpuid: false,
        measure_rss: args.measure_rss,
    };
    let booted_at = Instant::now();
    let report = boot_stub(workload, options)?;
    let code = match &report.outcome {
        WorkloadOutcome::Measured { figure } => {
            if !args.json {
                println!("stub:{workload}: {}", describe_figure(figure));
            }
            0
        }
        WorkloadOutcome::NotSupportedHere { reason } => {
            eprintln!("isolab: stub:{workload} not measured here: {reason}");
            2
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if args.timings {
        clock.print(&report.timings, booted_at);
    }
    Ok(code)
}

/// `vm run --kernel IMAGE`.
fn run_kernel(args: RunArgs, clock: ProcessClock) -> anyhow::Result<u8> {
    let Some(kernel) = args.kernel else {
        bail!("nothing to boot: give --kernel PATH (Linux) or --guest stub:WORKLOAD");
    };
    let memory_bytes = match &args.memory {
        Some(text) => parse_memory_size(text)?,
        None => isolab_microvm::config::DEFAULT_MEMORY_BYTES,
    };
    let config = VmConfig {
        guest: GuestSpec::Linux {
            kernel,
            initrd: args.initrd,
            cmdline: args.cmdline,
        },
        vcpus: args.vcpus,
        memory_bytes,
        timeout: parse_duration(&args.timeout)?,
        console: match args.console {
            Some(path) => ConsoleSpec::File(path),
            None if args.json => ConsoleSpec::Discard,
            None => ConsoleSpec::Stdout,
        },
        debug_exit: args.debug_exit,
    };
    let booted_at = Instant::now();
    let report = match args.until {
        None => isolab_microvm::run(&config).context("microVM failed")?,
        Some(text) => run_until(&config, text)?,
    };
    if args.json {
        let exit = serde_json::to_value(report.exit)?;
        let out = serde_json::json!({
            "exit": exit,
            "timings": report.timings,
            "pvh_entry": report.pvh_entry,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if args.timings {
        clock.print(&report.timings, booted_at);
        let how = match report.exit {
            GuestExit::PowerOff => "powered off".to_string(),
            GuestExit::Reset => "rebooted".to_string(),
            GuestExit::ExitPort(status) => format!("wrote {status} to its exit port"),
            GuestExit::ConsoleMatched => "stopped at the console text".to_string(),
        };
        eprintln!("isolab: guest {how}");
    }
    Ok(match report.exit {
        GuestExit::ExitPort(status) => status,
        _ => 0,
    })
}

/// Runs until the console shows `text`, then writes the console where it was asked to go.
fn run_until(config: &VmConfig, text: String) -> anyhow::Result<isolab_microvm::VmReport> {
    let target = config.console.clone();
    let (console, result) =
        isolab_microvm::vmm::run_until_console(config, move |c| c.contains(text.as_str()));
    match target {
        ConsoleSpec::File(path) => std::fs::write(&path, &console)
            .with_context(|| format!("writing the console to {}", path.display()))?,
        ConsoleSpec::Stdout => print!("{console}"),
        _ => {}
    }
    result.context("microVM failed")
}

/// Where a `vm run` process spends its time, from exec to its last output.
///
/// Exec → here cannot be read off a wall clock from inside the process (/proc/self/stat's
/// start time has 10 ms ticks), so it is the CPU time the process has used so far
/// (CLOCK_PROCESS_CPUTIME_ID: the dynamic loader, Rust's start-up, argument parsing). That
/// part is CPU-bound, so CPU time is its wall time unless the process was preempted.
/// Everything after is wall-clock time. What follows the last line (returning from main,
/// exit_group, the parent's wait) is not in it: `scripts/vm-startup.sh` times the whole
/// process from outside.
struct ProcessClock {
    cpu_before: Duration,
    at: Instant,
}

impl ProcessClock {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into `ts`, which is valid and writable.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ProcessClock {
            cpu_before: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
            at: Instant::now(),
        }
    }

    fn print(&self, t: &PhaseTimings, booted_at: Instant) {
        let at = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        let us = |d: Duration| d.as_micros();
        // The VM's own clock starts inside the boot call; the rest of the wall time there is
        // the library's preparation (options, guest image) and, after, building the report.
        let in_boot = Duration::from_micros(t.total_us);
        let boot_call = booted_at.elapsed();
        eprintln!("phase                                 µs");
        eprintln!("exec → vm run (CPU time)       {:>10}", us(self.cpu_before));
        eprintln!(
            "vm run → boot call             {:>10}",
            us(booted_at - self.at)
        );
        eprintln!("create VM                      {:>10}", t.create_vm_us);
        eprintln!("guest memory                   {:>10}", t.memory_us);
        eprintln!("irqchip + PIT                  {:>10}", t.irqchip_us);
        eprintln!("vCPUs                          {:>10}", t.vcpus_us);
        eprintln!("load guest + boot params       {:>10}", t.load_us);
        eprintln!("first KVM_RUN               at {:>10}", t.first_run_at_us);
        eprintln!("kernel banner               at {:>10}", at(t.banner_at_us));
        eprintln!("init reached                at {:>10}", at(t.init_at_us));
        eprintln!("exit                        at {:>10}", t.exit_at_us);
        eprintln!("teardown                       {:>10}", t.teardown_us);
        eprintln!("VM total                       {:>10}", t.total_us);
        eprintln!(
            "library + output outside VM    {:>10}",
            us(boot_call.saturating_sub(in_boot))
        );
        eprintln!(
            "process total to here          {:>10}",
            us(self.cpu_before + self.at.elapsed())
        );
    }
}

fn describe_figure(figure: &isolab_microvm::Figure) -> String {
    use isolab_microvm::Figure;
    match figure {
        Figure::Exited => "exited".into(),
        Figure::Syscall { ns_per_call, iterations } => {
            format!("{ns_per_call:.1} ns per syscall ({iterations} calls)")
        }
        Figure::Exit { kind, ns_per_exit, iterations } => {
            format!("{ns_per_exit:.0} ns per {kind} exit ({iterations} exits)")
        }
        Figure::Cpu { ns_per_iteration, iterations } => {
            format!("{ns_per_iteration:.3} ns per loop iteration ({iterations} iterations)")
        }
        Figure::Memory {
            first_touch_bytes_per_s,
            warm_bytes_per_s,
            buffer_bytes,
            passes,
        } => format!(
            "first touch {:.2} GB/s, warm {:.2} GB/s ({} MiB buffer, {passes} passes)",
            first_touch_bytes_per_s / 1e9,
            warm_bytes_per_s / 1e9,
            buffer_bytes >> 20
        ),
        Figure::Cpl0Probe { cpl0_cycles, cpl3_cycles, slowdown } => format!(
            "CPL0 loop {cpl0_cycles} cycles, CPL3 loop {cpl3_cycles} cycles: guest kernel mode is {slowdown:.1}x slower"
        ),
    }
}

fn print_platform(p: &Platform) {
    println!("KVM module:        {:?}", p.kvm_module);
    println!("/dev/kvm usable:   {}", p.kvm_available);
    println!(
        "host virtualized:  {}{}",
        p.host_is_virtualized,
        p.host_hypervisor
            .as_deref()
            .map(|h| format!(" ({h})"))
            .unwrap_or_default()
    );
    if let Some(nested) = &p.nested_param {
        println!("nested parameter:  {nested}");
    }
    if let Some(api) = p.api_version {
        println!("KVM API version:   {api}");
    }
    println!("capabilities:      {}", p.caps.join(", "));
    if let Some(max) = p.max_vcpus {
        println!("max vCPUs:         {max}");
    }
    if let Some(probe) = &p.cpl0 {
        println!(
            "guest CPL0:        {} ({})",
            if probe.native { "native" } else { "NOT native" },
            probe.detail
        );
    }
    println!("host kernel:       {}", p.host_kernel);
    println!("CPU:               {}", p.cpu_model);
}
