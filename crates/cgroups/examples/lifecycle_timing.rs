//! Times the cgroup part of a container start and stop on this host (needs root):
//! `create` (mkdir + limits), `add_pid`, then after the process exited `stats` and `destroy`.
//!
//! `cargo run --release -p isolab-cgroups --example lifecycle_timing [iterations] [keep]`
//!
//! With `keep`, a sentinel cgroup stays alive meanwhile, so the shared `isolab` parent is not
//! removed and re-created on every cycle (the situation with other containers running).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isolab_cgroups::{parse_cpus, parse_memory, CgroupRoot, Resources};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let t = Instant::now();
    let root = CgroupRoot::detect()?;
    let detect = t.elapsed();
    let res = Resources {
        memory_limit_bytes: Some(parse_memory("64m")?),
        cpu_quota: Some(parse_cpus("0.5")?),
        pids_limit: Some(32),
        ..Default::default()
    };
    let keep = std::env::args().nth(2).as_deref() == Some("keep");
    let sentinel = if keep {
        Some(root.create(
            &format!("sentinel-{}", std::process::id()),
            &Resources::default(),
        )?)
    } else {
        None
    };
    let (mut create, mut add, mut stats, mut destroy) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        // `cat` waits on its stdin: alive for add_pid, exits when we close the pipe.
        let mut child = Command::new("cat").stdin(Stdio::piped()).spawn()?;
        let name = format!("timing-{}-{i}", std::process::id());
        let t0 = Instant::now();
        let cg = root.create(&name, &res)?;
        let t1 = Instant::now();
        cg.add_pid(child.id() as i32)?;
        let t2 = Instant::now();
        child.stdin.take().unwrap().flush()?;
        child.wait()?;
        let t3 = Instant::now();
        let s = cg.stats()?;
        let t4 = Instant::now();
        cg.destroy()?;
        let t5 = Instant::now();
        std::hint::black_box(s);
        create.push(t1 - t0);
        add.push(t2 - t1);
        stats.push(t4 - t3);
        destroy.push(t5 - t4);
    }
    drop(sentinel);
    println!(
        "mode {:?}, {n} iterations, isolab parent {}, medians:",
        root.mode(),
        if keep {
            "kept"
        } else {
            "removed/re-created each cycle"
        }
    );
    println!(
        "  {:<25} {:>8.1} µs",
        "detect (once)",
        detect.as_secs_f64() * 1e6
    );
    let total: Vec<Duration> = (0..n)
        .map(|i| create[i] + add[i] + stats[i] + destroy[i])
        .collect();
    for (label, v) in [
        ("create+add+stats+destroy", &mut total.clone()),
        ("create", &mut create),
        ("add_pid", &mut add),
        ("stats", &mut stats),
        ("destroy", &mut destroy),
    ] {
        println!("  {label:<25} {:>8.1} µs", median(v).as_secs_f64() * 1e6);
    }
    Ok(())
}
