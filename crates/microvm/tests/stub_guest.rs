//! The stub guest on real /dev/kvm: every workload and its figure. (Launch times are in
//! benches/vm.rs.)

use isolab_microvm::{boot_stub, Figure, StubOptions, Workload, WorkloadOutcome};

mod common;
use common::kvm_or_skip;

fn quick(iterations: u64) -> StubOptions {
    StubOptions {
        iterations: Some(iterations),
        ..StubOptions::default()
    }
}

#[test]
fn true_workload_exits_with_phase_timings() {
    if !kvm_or_skip() {
        return;
    }
    let report = boot_stub(Workload::True, StubOptions::default()).unwrap();
    assert_eq!(
        report.outcome,
        WorkloadOutcome::Measured {
            figure: Figure::Exited
        }
    );
    let t = &report.timings;
    assert!(t.first_run_at_us > 0, "{t:?}");
    assert!(t.exit_at_us >= t.first_run_at_us, "{t:?}");
    assert!(t.total_us >= t.exit_at_us, "{t:?}");
}

#[test]
fn exit_loops_report_ns_per_exit() {
    if !kvm_or_skip() {
        return;
    }
    for workload in [Workload::Pio, Workload::Mmio] {
        let report = boot_stub(workload, quick(2_000)).unwrap();
        match report.outcome {
            WorkloadOutcome::Measured {
                figure:
                    Figure::Exit {
                        ns_per_exit,
                        iterations,
                        ..
                    },
            } => {
                eprintln!("{workload}: {ns_per_exit:.0} ns per exit");
                assert_eq!(iterations, 2_000);
                // An exit is a trip through the host kernel and back: never free.
                assert!(
                    ns_per_exit > 50.0 && ns_per_exit < 10_000_000.0,
                    "{ns_per_exit}"
                );
            }
            other => panic!("{workload}: {other:?}"),
        }
    }
}

#[test]
fn cpu_and_memory_loops_report_figures() {
    if !kvm_or_skip() {
        return;
    }
    let report = boot_stub(Workload::Cpu, quick(5_000_000)).unwrap();
    let WorkloadOutcome::Measured {
        figure: Figure::Cpu {
            ns_per_iteration, ..
        },
    } = report.outcome
    else {
        panic!("{:?}", report.outcome)
    };
    let host = isolab_microvm::stub::host_cpu_loop(5_000_000).as_secs_f64() * 1e9 / 5e6;
    eprintln!("cpu loop: guest {ns_per_iteration:.3} ns/iter, host {host:.3} ns/iter");
    assert!(ns_per_iteration > 0.0);

    let report = boot_stub(Workload::Memory, quick(2)).unwrap();
    let WorkloadOutcome::Measured {
        figure:
            Figure::Memory {
                first_touch_bytes_per_s,
                warm_bytes_per_s,
                buffer_bytes,
                ..
            },
    } = report.outcome
    else {
        panic!("{:?}", report.outcome)
    };
    eprintln!(
        "memory ({buffer_bytes} bytes): first touch {:.2} GB/s, warm {:.2} GB/s",
        first_touch_bytes_per_s / 1e9,
        warm_bytes_per_s / 1e9
    );
    assert!(buffer_bytes > 0 && first_touch_bytes_per_s > 0.0 && warm_bytes_per_s > 0.0);
}

#[test]
fn syscall_is_measured_or_explained() {
    if !kvm_or_skip() {
        return;
    }
    let report = boot_stub(Workload::Syscall, quick(100_000)).unwrap();
    match &report.outcome {
        WorkloadOutcome::Measured {
            figure: Figure::Syscall { ns_per_call, .. },
        } => {
            eprintln!("syscall: {ns_per_call:.1} ns");
            assert!(*ns_per_call > 0.0);
        }
        WorkloadOutcome::NotSupportedHere { reason } => {
            eprintln!("syscall not measured here: {reason}");
            assert!(reason.contains("CPL3"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cpl0_probe_gives_a_verdict() {
    if !kvm_or_skip() {
        return;
    }
    let report = boot_stub(Workload::Cpl0Probe, StubOptions::default()).unwrap();
    eprintln!("cpl0 probe: {:?}", report.outcome);
    match report.outcome {
        WorkloadOutcome::Measured {
            figure:
                Figure::Cpl0Probe {
                    cpl0_cycles,
                    cpl3_cycles,
                    ..
                },
        } => assert!(cpl0_cycles > 0 && cpl3_cycles > 0),
        WorkloadOutcome::NotSupportedHere { reason } => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn vmm_memory_overhead_is_measured() {
    if !kvm_or_skip() {
        return;
    }
    let options = StubOptions {
        measure_rss: true,
        iterations: Some(1),
        ..StubOptions::default()
    };
    let report = boot_stub(Workload::Memory, options).unwrap();
    let footprint = report.footprint.expect("footprint measured");
    eprintln!(
        "RSS: process {} KiB, guest {} KiB, VMM overhead {} KiB (test harness included)",
        footprint.process_rss_bytes >> 10,
        footprint.guest_rss_bytes >> 10,
        footprint.vmm_overhead_bytes >> 10
    );
    // The memory workload touched its whole buffer: the guest's share must show it.
    assert!(footprint.guest_rss_bytes >= 32 << 20, "{footprint:?}");
    assert!(footprint.process_rss_bytes > footprint.guest_rss_bytes);
}

#[test]
fn triad_workload_reports_stream_bandwidth() {
    if !kvm_or_skip() {
        return;
    }
    // 512 MiB of guest RAM holds three 128 MiB arrays, each beyond a 32 MiB L3 cache.
    let options = StubOptions {
        memory_bytes: 512 << 20,
        ..quick(3)
    };
    let report = boot_stub(Workload::Triad, options).unwrap();
    let WorkloadOutcome::Measured {
        figure:
            Figure::Memory {
                first_touch_bytes_per_s,
                warm_bytes_per_s,
                buffer_bytes,
                passes,
            },
    } = report.outcome
    else {
        panic!("{:?}", report.outcome)
    };
    eprintln!(
        "triad (3 x {} MiB): first touch {:.2} GB/s, triad {:.2} GB/s",
        (buffer_bytes / 3) >> 20,
        first_touch_bytes_per_s / 1e9,
        warm_bytes_per_s / 1e9
    );
    assert_eq!(buffer_bytes, 3 * (128 << 20));
    assert_eq!(passes, 3);
    assert!(first_touch_bytes_per_s > 0.0 && warm_bytes_per_s > 0.0);
}
