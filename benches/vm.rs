//! microVM startup: isolab's stub guest (create → first guest instruction → exit), and a Linux
//! kernel to its banner, isolab against `qemu-system-x86_64 -M microvm` with the same kernel,
//! initrd and command line, side by side in one run.
//!
//! `cargo bench --bench vm` (needs /dev/kvm; the Linux rows need the guest kernel from
//! `scripts/build-guest.sh` and QEMU from `scripts/setup.sh`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use isolab_benches::which;
use isolab_microvm::{boot_stub, StubOptions, Workload};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The command line both VMMs get. `earlyprintk` makes the banner appear as soon as the kernel
/// prints it rather than when the real console driver registers.
const CMDLINE: &str = "console=ttyS0 earlyprintk=ttyS0 reboot=k panic=-1 nomodule pci=off";
/// "Command line:" follows "Linux version" by a few ms: both VMMs are timed to it.
const MARK: &str = "Command line:";

fn stub(c: &mut Criterion) {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("vm: not measured here: /dev/kvm is missing");
        return;
    }
    let mut group = c.benchmark_group("startup");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(50)
        .measurement_time(Duration::from_secs(3));
    group.bench_function(BenchmarkId::new("isolab-microvm-stub", "true"), |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let t = Instant::now();
                let report = boot_stub(Workload::True, StubOptions::default()).expect("stub VM");
                total += t.elapsed();
                std::hint::black_box(report);
            }
            total
        })
    });
    group.finish();
}

fn guest_dir() -> PathBuf {
    std::env::var_os("ISOLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/isolab"))
        .join("guest")
}

/// Spawns `cmd`, returns the time until a stdout line contains [`MARK`], then kills it.
fn time_to_mark(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the VMM");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut elapsed = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains(MARK) {
            elapsed = Some(start.elapsed());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    elapsed.expect("the kernel never printed its command line")
}

fn linux(c: &mut Criterion) {
    let dir = guest_dir();
    let (kernel, initrd) = (dir.join("vmlinux"), dir.join("initramfs.cpio"));
    if !Path::new("/dev/kvm").exists() || !kernel.exists() || !initrd.exists() {
        eprintln!(
            "vm: Linux rows not measured here: need /dev/kvm and {} (scripts/build-guest.sh)",
            kernel.display()
        );
        return;
    }
    let isolab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/isolab");
    let mut group = c.benchmark_group("linux-boot");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(8));
    if isolab.exists() {
        group.bench_function(BenchmarkId::new("isolab-microvm", "banner"), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        time_to_mark(Command::new(&isolab).args([
                            "vm",
                            "run",
                            "--kernel",
                            kernel.to_str().unwrap(),
                            "--initrd",
                            initrd.to_str().unwrap(),
                            "--cmdline",
                            CMDLINE,
                            "--timeout",
                            "60s",
                        ]))
                    })
                    .sum()
            })
        });
    } else {
        eprintln!("vm: isolab-microvm/banner not measured: build target/release/isolab first");
    }
    if which("qemu-system-x86_64").is_some() {
        // QEMU refuses plain `-cpu host` on this kind of host (MSR 0x10a); these two features
        // are the ones PLATFORM.md found it needs switched off. cx16 is hidden by isolab too.
        group.bench_function(BenchmarkId::new("qemu-microvm", "banner"), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        time_to_mark(Command::new("qemu-system-x86_64").args([
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
                            "-kernel",
                            kernel.to_str().unwrap(),
                            "-initrd",
                            initrd.to_str().unwrap(),
                            "-append",
                            CMDLINE,
                        ]))
                    })
                    .sum()
            })
        });
    } else {
        eprintln!("vm: qemu-microvm/banner not measured here: qemu-system-x86_64 not installed");
    }
    group.finish();
}

criterion_group!(benches, stub, linux);
criterion_main!(benches);
