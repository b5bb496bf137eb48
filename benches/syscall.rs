//! System-call and VM-exit cost (claim C4): `getpid` on the host, in isolab containers with
//! and without seccomp, and in the microVM stub's guest; one port-I/O and one MMIO exit round
//! trip through KVM and the VMM.
//!
//! `cargo bench --bench syscall` (as root for the container rows, /dev/kvm for the stub).
//! Rows are `syscall/<environment>/<workload>`; one iteration is `GETPID_CALLS` calls
//! (criterion's element rate is then calls per second).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use isolab_bench::probe_loops::GETPID;
use isolab_benches::{stub_duration, Containers, ProbeBench};
use isolab_microvm::Workload;
use std::time::Duration;

const EXITS: u64 = 20_000;

fn syscall(c: &mut Criterion) {
    let containers = Containers::new();
    let mut group = c.benchmark_group("syscall");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    ProbeBench::of(&GETPID).run(&mut group, &containers);
    group.throughput(Throughput::Elements(EXITS));
    for (name, workload) in [("pio-exit", Workload::Pio), ("mmio-exit", Workload::Mmio)] {
        if let Err(reason) = stub_duration(workload, EXITS) {
            eprintln!("{name}: isolab-microvm-stub not measured here: {reason}");
            continue;
        }
        group.bench_function(BenchmarkId::new("isolab-engine-microvm-stub", name), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| stub_duration(workload, EXITS).expect("stub VM"))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, syscall);
criterion_main!(benches);
