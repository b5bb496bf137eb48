//! Memory (claim C2), measured in bytes rather than time: what the kernel charges an isolab
//! container's cgroup for `true`, the in-process VMM's resident overhead beyond guest RAM, and
//! the resident set of one idle `isolab vm run` process.
//!
//! `cargo bench --bench memory` (as root for the container row, /dev/kvm for the VM rows; the
//! CLI row needs the `isolab` binary next to the bench executable or `$ISOLAB_EXE`). Rows are
//! `memory/<environment>/<workload>` in bytes (criterion's [`Bytes`] measurement).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use isolab_bench::density::IdleProcessRss;
use isolab_bench::environment::{Environment, MicroVmStub, Variant};
use isolab_benches::{isolab_exe, Bytes, Containers};
use isolab_microvm::{StubOptions, Workload};
use std::time::Duration;

fn memory(c: &mut Criterion<Bytes>) {
    let mut group = c.benchmark_group("memory");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(2));
    match Containers::new() {
        Err(reason) => eprintln!("memory: container rows not measured here: {reason}"),
        Ok(cs) => {
            let mut row = cs.row(Variant::Cgroups, &["/bin/true"], 64 << 20);
            group.bench_function(
                BenchmarkId::new(Variant::Cgroups.name(), "true-cgroup-charge"),
                |b| {
                    b.iter_custom(|n| {
                        (0..n as usize)
                            .map(|i| {
                                let (_, out) = row.run_once(i).expect("container run");
                                out.cgroup_stats
                                    .and_then(|s| s.memory_peak_bytes.or(s.memory_current_bytes))
                                    .expect("the cgroup reports its memory")
                            })
                            .sum()
                    })
                },
            );
        }
    }
    if std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("memory: VM rows not measured here: /dev/kvm cannot be opened");
        group.finish();
        return;
    }
    let vm = MicroVmStub {
        name: "isolab-engine-microvm-stub".into(),
        workload: Workload::True,
        options: StubOptions {
            measure_rss: true,
            ..StubOptions::default()
        },
    };
    group.bench_function(
        BenchmarkId::new("isolab-engine-microvm-stub", "vmm-overhead-in-process"),
        |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        let (_, report) = vm.boot().expect("stub VM");
                        report.footprint.expect("footprint").vmm_overhead_bytes
                    })
                    .sum()
            })
        },
    );
    match isolab_exe() {
        None => eprintln!(
            "memory: isolab-microvm-cli not measured: build the isolab binary (cargo build \
             --release -p isolab-cli) or set ISOLAB_EXE"
        ),
        Some(exe) => {
            let mut idle = IdleProcessRss {
                name: "isolab-cli-microvm-stub".into(),
                argv: [
                    exe.as_os_str(),
                    "vm".as_ref(),
                    "run".as_ref(),
                    "--guest".as_ref(),
                    "stub:hang".as_ref(),
                    "--memory".as_ref(),
                    "64M".as_ref(),
                    "--timeout".as_ref(),
                    "60s".as_ref(),
                ]
                .iter()
                .map(|s| s.to_os_string())
                .collect(),
            };
            group.bench_function(
                BenchmarkId::new("isolab-cli-microvm-stub", "idle-vmm"),
                |b| {
                    b.iter_custom(|n| {
                        (0..n as usize)
                            .map(|i| idle.launch_once(i).expect("idle VMM").value as u64)
                            .sum()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(Bytes);
    targets = memory
}
criterion_main!(benches);
