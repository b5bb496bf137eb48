//! Startup latency: launch → the workload (`true`) runs → exit, for a host process, isolab
//! containers at several isolation levels, and the peers on the same rootfs and OCI bundle.
//!
//! `cargo bench --bench startup` (as root). Rows are `startup/<environment>/<workload>`, named
//! as in `isolab bench`: whole processes (`host`, `isolab-cli-container`, `isolab-cli-microvm-stub`,
//! crun, runc, bwrap, unshare) are launches a user sees and the ones to compare;
//! `isolab-engine-*` rows call isolab's library inside this process — where the time goes, not a
//! launch. The stub VM's workload is `stub-true` (no exec, no rootfs), never compared with `true`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use isolab_bench::fixture::peers;
use isolab_benches::{
    container_skip_reason, hide_cgroup2_mount_for_crun, isolab_exe, run_quiet, which, Fixture,
};
use isolab_cgroups::{CgroupRoot, Resources};
use isolab_container::rootfs::OverlayDirs;
use isolab_container::spawn::{self, ExitStatus, RunContext};
use isolab_container::{ContainerSpec, RootfsSource};
use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

/// A peer's command line for launch number `i`.
type PeerArgv = Box<dyn Fn(u64) -> Vec<OsString>>;

/// Times `iters` sequential launches; ms-scale work, so each one is timed on its own.
fn timed(iters: u64, mut launch: impl FnMut(u64)) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let t = Instant::now();
        launch(i);
        total += t.elapsed();
    }
    total
}

fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));

    group.bench_function(BenchmarkId::new("host", "true"), |b| {
        b.iter_custom(|n| timed(n, |_| run_quiet(&mut Command::new("/bin/true"))))
    });

    if let Some(reason) = container_skip_reason() {
        eprintln!("startup: container rows not measured here: {reason}");
        group.finish();
        return;
    }
    let fx = Fixture::new().expect("building the bench rootfs");
    let cgroups = CgroupRoot::detect().expect("detecting cgroups");
    let limits = Resources {
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(64),
        ..Default::default()
    };

    // Full isolation: docker's six namespaces + memory/pids cgroup + an overlay rootfs whose
    // upper/work dirs are created and removed inside the timing, as a real start does.
    let layer = fx.rootfs();
    let mut full = ContainerSpec::new(
        RootfsSource::Layers(vec![layer.clone()]),
        vec!["true".into()],
    );
    full.resources = limits.clone();
    let scratch = fx.scratch();
    // As `isolab container run --rm` does: the writable layer on a tmpfs that the container
    // mounts in its own mount namespace, so no directory is created or removed on disk.
    let shared = scratch.join("in-memory");
    std::fs::create_dir_all(&shared).unwrap();
    group.bench_function(
        BenchmarkId::new("isolab-engine-container-full", "true"),
        |b| {
            b.iter_custom(|n| {
                timed(n, |i| {
                    let mut ctx = RunContext::new(format!("bench-full-{i}"));
                    ctx.cgroups = Some(&cgroups);
                    ctx.overlay = Some(OverlayDirs::in_memory(&shared));
                    let out = spawn::run(&full, ctx).expect("isolab run");
                    assert_eq!(out.status, ExitStatus::Exited(0));
                })
            })
        },
    );
    // As a kept container: upper/work dirs created on disk and removed afterwards.
    group.bench_function(
        BenchmarkId::new("isolab-engine-container-full-upper-on-disk", "true"),
        |b| {
            b.iter_custom(|n| {
                timed(n, |i| {
                    let base = scratch.join(format!("c{i}"));
                    let dirs = OverlayDirs::on_disk(
                        base.join("upper"),
                        base.join("work"),
                        base.join("merged"),
                    );
                    for d in [&dirs.upper, &dirs.work, &dirs.merged] {
                        std::fs::create_dir_all(d).unwrap();
                    }
                    let mut ctx = RunContext::new(format!("bench-disk-{i}"));
                    ctx.cgroups = Some(&cgroups);
                    ctx.overlay = Some(dirs);
                    let out = spawn::run(&full, ctx).expect("isolab run");
                    assert_eq!(out.status, ExitStatus::Exited(0));
                    std::fs::remove_dir_all(&base).unwrap();
                })
            })
        },
    );

    // The same OCI bundle crun and runc run: the rootfs dir as is, plus the same cgroup.
    let mut bundle = isolab_container::oci::load_bundle(&fx.bundle()).expect("loading the bundle");
    bundle.resources = limits.clone();
    group.bench_function(
        BenchmarkId::new("isolab-engine-container-bundle", "true"),
        |b| {
            b.iter_custom(|n| {
                timed(n, |i| {
                    let mut ctx = RunContext::new(format!("bench-bundle-{i}"));
                    ctx.cgroups = Some(&cgroups);
                    let out = spawn::run(&bundle, ctx).expect("isolab run");
                    assert_eq!(out.status, ExitStatus::Exited(0));
                })
            })
        },
    );

    // Namespaces only: no cgroup, no overlay.
    let mut ns_only = bundle.clone();
    ns_only.use_cgroup = false;
    group.bench_function(
        BenchmarkId::new("isolab-engine-container-ns", "true"),
        |b| {
            b.iter_custom(|n| {
                timed(n, |i| {
                    let out = spawn::run(&ns_only, RunContext::new(format!("bench-ns-{i}")))
                        .expect("isolab run");
                    assert_eq!(out.status, ExitStatus::Exited(0));
                })
            })
        },
    );

    cli_rows(&mut group, &fx);

    // The peers run the command lines `isolab bench` uses, on the same rootfs and bundle; crun
    // needs the cgroup2 mount hidden (from here on, for this thread and its children).
    hide_cgroup2_mount_for_crun();
    let rootfs = fx.rootfs().to_string_lossy().into_owned();
    let bundle = fx.bundle().to_string_lossy().into_owned();
    let mut peer_rows: Vec<(&str, PeerArgv)> = Vec::new();
    for runtime in ["crun", "runc"] {
        let bundle = bundle.clone();
        peer_rows.push((
            runtime,
            Box::new(move |i| {
                peers::oci_run(
                    runtime,
                    &bundle,
                    &format!("isolab-bench-{}-{i}", std::process::id()),
                )
            }),
        ));
    }
    let (r1, r2) = (rootfs.clone(), rootfs);
    peer_rows.push(("bwrap", Box::new(move |_| peers::bwrap(&r1))));
    peer_rows.push(("unshare", Box::new(move |_| peers::unshare(&r2))));
    for (name, argv) in peer_rows {
        if which(name).is_none() {
            eprintln!(
                "startup: {name} not measured here: not installed (scripts/setup.sh installs it)"
            );
            continue;
        }
        group.bench_function(BenchmarkId::new(name, "true"), |b| {
            b.iter_custom(|n| {
                timed(n, |i| {
                    let args = argv(i);
                    run_quiet(Command::new(&args[0]).args(&args[1..]))
                })
            })
        });
    }
    group.finish();
}

/// `isolab container run --rm` and `isolab vm run --guest stub:true` as whole processes, with
/// the same spawn-and-wait as the peers (`isolab bench`'s `isolab-cli-*` rows).
fn cli_rows(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    fx: &Fixture,
) {
    let Some(exe) = isolab_exe() else {
        eprintln!(
            "startup: isolab-cli rows not measured here: no isolab binary next to the bench \
             (cargo build --release -p isolab-cli, or set ISOLAB_EXE)"
        );
        return;
    };
    let exe = exe.to_string_lossy().into_owned();
    let home = fx.scratch().join("cli-home");
    let container = peers::isolab_container(&exe, &fx.rootfs().to_string_lossy());
    group.bench_function(BenchmarkId::new("isolab-cli-container", "true"), |b| {
        b.iter_custom(|n| {
            timed(n, |_| {
                run_quiet(
                    Command::new(&container[0])
                        .args(&container[1..])
                        .env(isolab_container::image::HOME_ENV, &home),
                )
            })
        })
    });
    if std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("startup: isolab-cli-microvm-stub not measured here: /dev/kvm cannot be opened");
        return;
    }
    let vm = peers::isolab_vm_stub(&exe, "true");
    group.bench_function(
        BenchmarkId::new("isolab-cli-microvm-stub", "stub-true"),
        |b| b.iter_custom(|n| timed(n, |_| run_quiet(Command::new(&vm[0]).args(&vm[1..])))),
    );
}

criterion_group!(benches, startup);
criterion_main!(benches);
