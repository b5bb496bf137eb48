//! CPU and memory speed (claim C3): the same register-only loop, the same warm memory
//! passes and the same STREAM triad on the host, in an isolab container and in the microVM stub's guest.
//!
//! `cargo bench --bench cpu` (as root for the container rows, /dev/kvm for the stub). Rows are
//! `cpu/<environment>/<workload>`; compare each row's time with the host's.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use isolab_bench::probe_loops::{CPU_LOOP, MEMORY_PASS, TRIAD};
use isolab_benches::{Containers, ProbeBench};
use std::time::Duration;

fn cpu(c: &mut Criterion) {
    let containers = Containers::new();
    let mut group = c.benchmark_group("cpu");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for probe in [CPU_LOOP, MEMORY_PASS, TRIAD] {
        ProbeBench::of(&probe).run(&mut group, &containers);
    }
    group.finish();
}

criterion_group!(benches, cpu);
criterion_main!(benches);
