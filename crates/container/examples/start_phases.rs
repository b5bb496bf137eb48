//! Where a container start's time goes, per isolation layer: runs `true` N times in each
//! variant and prints the median of every phase.
//!
//! `cargo run --release -p isolab-container --example start_phases -- [N]` (as root, with
//! /bin/busybox installed).

use isolab_cgroups::{CgroupRoot, Resources};
use isolab_container::rootfs::OverlayDirs;
use isolab_container::spawn::{self, Phases, RunContext};
use isolab_container::{ContainerSpec, RootfsSource};
use std::time::Instant;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().expect("temp dir");
    let layer = tmp.path().join("layer");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(layer.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", layer.join("bin/busybox")).expect("/bin/busybox");
    std::os::unix::fs::symlink("busybox", layer.join("bin/true")).unwrap();
    let cgroups = CgroupRoot::detect().expect("cgroups");
    let limits = Resources {
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(64),
        ..Default::default()
    };
    let shared = tmp.path().join("mnt");
    std::fs::create_dir(&shared).unwrap();
    // (name, overlay: 0 none / 1 on disk / 2 in memory, cgroup)
    let variants: [(&str, u8, bool); 5] = [
        ("namespaces, dir rootfs", 0, false),
        ("+ memory/pids cgroup", 0, true),
        ("+ overlay rootfs on disk", 1, false),
        ("full, upper on disk", 1, true),
        ("full, upper in memory", 2, true),
    ];
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "variant (median µs)",
        "wall",
        "cgroup",
        "clone",
        "rootfs",
        "exec",
        "run",
        "cleanup",
        "dirs"
    );
    for (name, overlay, cgroup) in variants {
        let mut rows: Vec<(u64, Phases, u64)> = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            let base = tmp.path().join(format!("c{i}"));
            let (rootfs, dirs) = match overlay {
                1 => {
                    let d = OverlayDirs::on_disk(
                        base.join("upper"),
                        base.join("work"),
                        base.join("merged"),
                    );
                    for p in [&d.upper, &d.work, &d.merged] {
                        std::fs::create_dir_all(p).unwrap();
                    }
                    (RootfsSource::Layers(vec![layer.clone()]), Some(d))
                }
                2 => (
                    RootfsSource::Layers(vec![layer.clone()]),
                    Some(OverlayDirs::in_memory(&shared)),
                ),
                _ => (RootfsSource::Dir(layer.clone()), None),
            };
            let mut spec = ContainerSpec::new(rootfs, vec!["/bin/true".into()]);
            spec.resources = limits.clone();
            spec.use_cgroup = cgroup;
            let mut ctx = RunContext::new(format!("phases-{i}"));
            ctx.cgroups = Some(&cgroups);
            ctx.overlay = dirs;
            let out = spawn::run(&spec, ctx).expect("run");
            let td = Instant::now();
            if overlay == 1 {
                std::fs::remove_dir_all(&base).unwrap();
            }
            let dirs_us = td.elapsed().as_micros() as u64;
            rows.push((t.elapsed().as_micros() as u64, out.phases, dirs_us));
        }
        let m = |f: &dyn Fn(&(u64, Phases, u64)) -> u64| median(rows.iter().map(f).collect());
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            name,
            m(&|r| r.0),
            m(&|r| r.1.cgroup_us),
            m(&|r| r.1.clone_us),
            m(&|r| r.1.rootfs_us),
            m(&|r| r.1.exec_setup_us),
            m(&|r| r.1.run_us),
            m(&|r| r.1.cleanup_us),
            m(&|r| r.2),
        );
    }
}
