//! CPU and memory speed (claim C3): the same register-only loop, the same warm memory
//! passes and the same STREAM triad on the host, in an isolab container and in the microVM stub's guest.
//!
//! `cargo bench --bench cpu` (as root for the container rows, /dev/kvm for the stub). Rows are
//! `cpu/<environment>/<workload>`; compare each row's time with the host's.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use isolab_bench::environment::Variant;
use isolab_bench::probes::{Probe, TRIAD_ARRAY_BYTES};
use isolab_benches::{Containers, ProbeBench};
use isolab_microvm::Workload;
use std::time::Duration;

const LOOP_ITERATIONS: u64 = 20_000_000;
const BUFFER_BYTES: u64 = 32 << 20;
const PASSES: u64 = 16;
/// STREAM triad passes over three `TRIAD_ARRAY_BYTES` arrays.
const TRIAD_PASSES: u64 = 10;

fn cpu(c: &mut Criterion) {
    let containers = Containers::new();
    let mut group = c.benchmark_group("cpu");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    ProbeBench {
        workload: "cpu-loop",
        long: Probe::Cpu {
            iterations: LOOP_ITERATIONS,
        },
        short: Probe::Cpu { iterations: 1 },
        throughput: Throughput::Elements(LOOP_ITERATIONS),
        variants: &[Variant::Cgroups],
        stub: Some((Workload::Cpu, LOOP_ITERATIONS)),
    }
    .run(&mut group, &containers);
    ProbeBench {
        workload: "memory-pass",
        long: Probe::Memory {
            buffer_bytes: BUFFER_BYTES,
            passes: PASSES,
        },
        short: Probe::Memory {
            buffer_bytes: BUFFER_BYTES,
            passes: 0,
        },
        throughput: Throughput::Bytes(BUFFER_BYTES * PASSES),
        variants: &[Variant::Cgroups],
        stub: Some((Workload::Memory, PASSES)),
    }
    .run(&mut group, &containers);
    ProbeBench {
        workload: "triad",
        long: Probe::Triad {
            array_bytes: TRIAD_ARRAY_BYTES,
            passes: TRIAD_PASSES,
        },
        short: Probe::Triad {
            array_bytes: TRIAD_ARRAY_BYTES,
            passes: 0,
        },
        // STREAM's count: 24 bytes per element per pass (b and c read, a written).
        throughput: Throughput::Bytes(3 * TRIAD_ARRAY_BYTES * TRIAD_PASSES),
        variants: &[Variant::Cgroups],
        stub: Some((Workload::Triad, TRIAD_PASSES)),
    }
    .run(&mut group, &containers);
    group.finish();
}

criterion_group!(benches, cpu);
criterion_main!(benches);
