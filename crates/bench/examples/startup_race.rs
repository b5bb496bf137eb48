//! Whole-process start-up race: `isolab container run --rm -- true` against crun, bwrap and
//! `unshare`, the way a user launches each one.
//!
//! Every command is a direct child of this process (spawn, then `wait4`), on the same busybox
//! rootfs, running the same `true`. Rounds are interleaved and shuffled (A B C, C A B, …) so
//! drift and the "first cgroup after a quiet spell" penalty fall on every command alike. Before
//! the first round the process enters a private mount namespace and unmounts this hybrid host's
//! near-empty `/sys/fs/cgroup/unified`, which crun refuses to run under (runc and isolab do not
//! care); the host's own mounts are untouched.
//!
//! Peak RSS comes from `wait4`'s rusage: the largest resident set of the launcher and of every
//! descendant it waited for, the same figure `/usr/bin/time -f %M` prints. The kernel folds the
//! spawning process's own resident set into that maximum when a vforked child execs, so a
//! figure at this process's floor (about 2 MiB: `/bin/true`'s row shows it) means "no more
//! than that"; isolab's and crun's launchers sit above it.
//!
//! ```text
//! cargo build --release -p isolab-cli
//! cargo run --release -p isolab-bench --example startup_race -- [ROUNDS] [GAP_MS]
//! make dist && ISOLAB=target/x86_64-unknown-linux-gnu/dist/isolab \
//!     cargo run --release -p isolab-bench --example startup_race   # the binary users run
//! ```
//! ROUNDS defaults to 40. GAP_MS (default 0) sleeps between launches: 0 measures warm starts
//! (back to back, a burst), 300 measures cold ones (what a single `docker run` sees).

use isolab_bench::environment::{hide_cgroup2_mount, run_command};
use isolab_bench::fixture::{peers, which, Fixture};
use isolab_bench::order::Rng;
use isolab_bench::stats;
use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

struct Contender {
    name: &'static str,
    argv: Vec<OsString>,
    wall_ms: Vec<f64>,
    peak_rss_kib: Vec<i64>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let gap = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(0));
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("startup_race: run as root (containers need namespaces and cgroups)");
        std::process::exit(1);
    }
    let isolab = std::env::var_os("ISOLAB")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("isolab"))
        })
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!("startup_race: build the CLI first: cargo build --release -p isolab-cli");
            std::process::exit(1);
        });
    let fixture = Fixture::new().expect("building the busybox rootfs and OCI bundle");
    let rootfs = fixture.rootfs().to_string_lossy().into_owned();
    let bundle = fixture.bundle().to_string_lossy().into_owned();
    hide_cgroup2_mount().unwrap_or_else(|e| panic!("{e}"));

    let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let isolab = isolab.to_string_lossy().into_owned();
    let mut field = vec![
        Contender::new(
            "isolab",
            os(&[
                &isolab,
                "container",
                "run",
                "--rm",
                "--rootfs",
                &rootfs,
                "--",
                "true",
            ]),
        ),
        Contender::new(
            "isolab --no-cgroup",
            os(&[
                &isolab,
                "container",
                "run",
                "--rm",
                "--no-cgroup",
                "--rootfs",
                &rootfs,
                "--",
                "true",
            ]),
        ),
        Contender::new(
            "isolab vm stub",
            os(&[&isolab, "vm", "run", "--guest", "stub:true"]),
        ),
        Contender::new("/bin/true", os(&["/bin/true"])),
    ];
    if which("crun").is_some() {
        field.push(Contender::new(
            "crun",
            peers::oci_run("crun", &bundle, "race"),
        ));
    }
    if which("bwrap").is_some() {
        field.push(Contender::new("bwrap", peers::bwrap(&rootfs)));
    }
    if which("unshare").is_some() {
        field.push(Contender::new("unshare", peers::unshare(&rootfs)));
    }

    // One untimed warm-up each (page cache, the default seccomp program's cache file).
    for c in &mut field {
        c.launch();
        c.wall_ms.clear();
        c.peak_rss_kib.clear();
    }
    let mut order: Vec<usize> = (0..field.len()).collect();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..rounds {
        rng.shuffle(&mut order);
        for &i in &order {
            std::thread::sleep(gap);
            field[i].launch();
        }
        eprint!("\rround {}/{rounds}", round + 1);
    }
    eprintln!();
    let crun = field
        .iter()
        .find(|c| c.name == "crun")
        .map(|c| median(&c.wall_ms));
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "command", "median ms", "p10 ms", "p90 ms", "p90/median", "peak RSS"
    );
    for c in &field {
        let m = median(&c.wall_ms);
        let p90 = percentile(&c.wall_ms, 90.0);
        let rss = median(&c.peak_rss_kib.iter().map(|&k| k as f64).collect::<Vec<_>>());
        let vs = crun
            .map(|cm| format!("  {:.2}× crun", m / cm))
            .unwrap_or_default();
        println!(
            "{:<20} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>6.2} MiB{vs}",
            c.name,
            m,
            percentile(&c.wall_ms, 10.0),
            p90,
            p90 / m,
            rss / 1024.0
        );
    }
    println!("({rounds} shuffled rounds, gap {} ms)", gap.as_millis());
}

impl Contender {
    fn new(name: &'static str, argv: Vec<OsString>) -> Self {
        Contender {
            name,
            argv,
            wall_ms: Vec::new(),
            peak_rss_kib: Vec::new(),
        }
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        let cost = run_command(&mut cmd).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.wall_ms.push(cost.wall_us / 1e3);
        self.peak_rss_kib.push((cost.max_rss_bytes / 1024) as i64);
    }
}

fn median(v: &[f64]) -> f64 {
    stats::median(v).unwrap_or(f64::NAN)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    stats::percentile(v, p).unwrap_or(f64::NAN)
}
