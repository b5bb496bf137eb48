//! microVM startup: isolab's stub guest (create → first guest instruction → exit, in-process,
//! with and without a CPUID table), and a Linux
//! kernel to its banner, isolab against `qemu-system-x86_64 -M microvm` with the same kernel,
//! initrd and command line, side by side in one run.
//!
//! `cargo bench --bench vm` (needs /dev/kvm; the Linux rows need the guest kernel from
//! `scripts/build-guest.sh`, QEMU from `scripts/setup.sh` and the `isolab` binary next to the
//! bench executable or `$ISOLAB_EXE`). Rows are `startup/<environment>/<workload>`, the same
//! names `isolab bench` writes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use isolab_bench::environment::Environment;
use isolab_bench::linux_boot::{self, TimeToConsoleLine};
use isolab_benches::{isolab_exe, which};
use isolab_microvm::{boot_stub, StubOptions, Workload};
use std::path::Path;
use std::time::{Duration, Instant};

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
    group.bench_function(
        BenchmarkId::new("isolab-engine-microvm-stub", "stub-true"),
        |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let t = Instant::now();
                    let report =
                        boot_stub(Workload::True, StubOptions::default()).expect("stub VM");
                    total += t.elapsed();
                    std::hint::black_box(report);
                }
                total
            })
        },
    );
    group.finish();

    // Where the in-process launch goes with and without a CPUID table (KVM_GET_SUPPORTED_CPUID
    // once per process, KVM_SET_CPUID2 per vCPU), which the stub never reads but Linux needs.
    let mut group = c.benchmark_group("microvm-engine");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(50)
        .measurement_time(Duration::from_secs(3));
    for cpuid in [false, true] {
        let options = StubOptions {
            cpuid,
            ..StubOptions::default()
        };
        let name = if cpuid { "cpuid" } else { "no-cpuid" };
        group.bench_function(BenchmarkId::new("stub-true", name), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        let t = Instant::now();
                        let report = boot_stub(Workload::True, options).expect("stub VM");
                        let elapsed = t.elapsed();
                        std::hint::black_box(report);
                        elapsed
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

/// Times one boot to the kernel's "Command line:" console line (see
/// `isolab_bench::linux_boot`): spawn → that line on the VMM's stdout.
fn time_to_mark(name: &str, argv: Vec<std::ffi::OsString>, stops_itself: bool) -> Duration {
    let mut env = TimeToConsoleLine {
        name: name.into(),
        argv,
        timeout: Duration::from_secs(90),
        stops_itself,
    };
    let sample = env
        .launch_once(0)
        .expect("the kernel never printed its command line");
    Duration::from_secs_f64(sample.value / 1e6)
}

fn linux(c: &mut Criterion) {
    let (kernel, initrd) = match linux_boot::guest_images() {
        Ok(images) if Path::new("/dev/kvm").exists() => images,
        Ok(_) => {
            eprintln!("vm: Linux rows not measured here: /dev/kvm is missing");
            return;
        }
        Err(reason) => {
            eprintln!("vm: Linux rows not measured here: {reason}");
            return;
        }
    };
    let mut group = c.benchmark_group("startup");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(8));
    let w = "linux-to-command-line";
    match isolab_exe() {
        Some(isolab) => {
            group.bench_function(BenchmarkId::new("isolab-cli-microvm-linux", w), |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| {
                            time_to_mark(
                                "isolab-cli-microvm-linux",
                                linux_boot::isolab_argv(&isolab, &kernel, &initrd),
                                true,
                            )
                        })
                        .sum()
                })
            });
        }
        None => eprintln!(
            "vm: isolab-cli-microvm-linux not measured: build the isolab binary (cargo build \
             --release -p isolab-cli) or set ISOLAB_EXE"
        ),
    }
    if which("qemu-system-x86_64").is_some() {
        group.bench_function(BenchmarkId::new("qemu-microvm", w), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        time_to_mark(
                            "qemu-microvm",
                            linux_boot::qemu_argv(&kernel, &initrd),
                            false,
                        )
                    })
                    .sum()
            })
        });
    } else {
        eprintln!("vm: qemu-microvm not measured here: qemu-system-x86_64 not installed");
    }
    group.finish();
}

criterion_group!(benches, stub, linux);
criterion_main!(benches);
