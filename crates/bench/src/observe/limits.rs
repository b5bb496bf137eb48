//! C8, limits enforced: a cgroup's memory limit ends in the OOM killer, its CPU quota in
//! throttled periods, its pids limit in a failing `fork`, and its freezer stops every task
//! in it until thawed. Each check makes the kernel act and reads what it counted.

use super::{capture, conclude, in_container, observation, os, Target};
use crate::environment::NotMeasured;
use crate::schema::{ClaimId, Observation};
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

/// C8: a process that outgrows `--memory 32M` is killed by the OOM killer.
pub fn oom_kill(target: Result<&Target, NotMeasured>) -> Observation {
    let o = observation(
        ClaimId::C8,
        "memory-limit-oom-kills",
        "isolab-cli-container",
        "a workload that allocates 100 MiB under --memory 32M is killed by the OOM killer",
    );
    let allocate = "x=$(head -c 104857600 /dev/zero | tr '\\0' x); echo survived";
    in_container(
        target,
        o,
        &["--memory", "32M"],
        &["sh", "-c", allocate],
        |c| c.code == 137 && !c.stdout.contains("survived"),
    )
}

/// C8: `--cpus 0.2` makes the kernel throttle a busy loop (throttled periods in cpu.stat).
pub fn cpu_throttling(target: Result<&Target, NotMeasured>) -> Observation {
    let mut o = observation(
        ClaimId::C8,
        "cpu-quota-throttles",
        "isolab-cli-container",
        "a busy loop under --cpus 0.2 is throttled (the cgroup counts throttled periods)",
    );
    let result = target.and_then(|t| {
        let json = t.scratch.join("observe-throttle.json");
        let path = json.to_string_lossy().into_owned();
        let c = t.container(
            &["--cpus", "0.2", "--json", &path],
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done",
            ],
        )?;
        let stats = read_stats(&json);
        let _ = std::fs::remove_file(&json);
        let periods = stats?
            .get("cpu_throttled_periods")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| {
                NotMeasured::NoReading("the cgroup reports no throttling counter here".into())
            })?;
        Ok((periods, c.evidence))
    });
    if let Ok((periods, _)) = &result {
        o.figures.insert("throttled_periods_count".into(), *periods);
    }
    conclude(
        o,
        result.map(|(p, e)| (p > 0.0, format!("{e}\ncpu_throttled_periods: {p}"))),
    )
}

fn read_stats(json: &Path) -> Result<serde_json::Map<String, serde_json::Value>, NotMeasured> {
    let text = std::fs::read_to_string(json)
        .map_err(NotMeasured::io(format!("reading {}", json.display())))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(NotMeasured::json(json.display().to_string()))?;
    v.get("cgroup_stats")
        .and_then(|s| s.as_object())
        .cloned()
        .ok_or_else(|| NotMeasured::NoReading("the run reported no cgroup stats".into()))
}

/// C8: `--pids-limit 16` stops a shell that tries to start 64 processes.
pub fn fork_bomb_stopped(target: Result<&Target, NotMeasured>) -> Observation {
    let o = observation(
        ClaimId::C8,
        "pids-limit-stops-fork-bomb",
        "isolab-cli-container",
        "under --pids-limit 16 a shell trying to start 64 processes is refused (fork fails)",
    );
    in_container(
        target,
        o,
        &["--pids-limit", "16"],
        &["sh", "-c", "for i in $(seq 64); do sleep 1 & done; wait"],
        |c| c.stderr.contains("fork") || c.stderr.contains("Resource temporarily"),
    )
}

/// C8: `isolab container pause` freezes a counting loop; `resume` lets it go on.
pub fn freezer(target: Result<&Target, NotMeasured>) -> Observation {
    let o = observation(
        ClaimId::C8,
        "freezer-stops-and-resumes",
        "isolab-cli-container",
        "a paused container's counting loop makes no progress, and counts again once resumed",
    );
    conclude(o, target.and_then(freeze_and_thaw))
}

fn freeze_and_thaw(t: &Target) -> Result<(bool, String), NotMeasured> {
    let name = format!("bench-freeze-{}", std::process::id());
    let ticks = t.rootfs.join(".bench-freeze-ticks");
    let stop = t.rootfs.join(".bench-freeze-stop");
    let script = "i=0; while [ ! -e /.bench-freeze-stop ]; do echo >> /.bench-freeze-ticks; done";
    let mut argv: Vec<OsString> = vec![t.isolab.clone().into()];
    argv.extend(os(&[
        "container",
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
    ]));
    argv.push(t.rootfs.clone().into());
    argv.extend(os(&["--", "sh", "-c", script]));
    let envs = t.envs();
    let runner = std::thread::spawn(move || capture(&argv, &envs));
    // One byte appended per tick: the size only grows, so a read never sees half a write.
    let read = || -> u64 { std::fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0) };
    let result = (|| {
        wait_until(|| read() > 0, Duration::from_secs(10)).ok_or_else(|| {
            NotMeasured::Misbehaved("the counting container did not start".into())
        })?;
        let p = t.isolab(&["container", "pause", &name])?;
        std::thread::sleep(Duration::from_millis(200));
        let a = read();
        std::thread::sleep(Duration::from_millis(500));
        let b = read();
        let r = t.isolab(&["container", "resume", &name])?;
        std::thread::sleep(Duration::from_millis(500));
        let c = read();
        Ok((
            p.code == 0 && a == b && c > b,
            format!(
                "{}\nticks while paused: {a} → {b} (0.5 s)\n{}\nticks 0.5 s after resume: {c}",
                p.evidence, r.evidence
            ),
        ))
    })();
    let _ = std::fs::write(&stop, "");
    let _ = t.isolab(&["container", "resume", &name]);
    let _ = runner.join();
    let _ = std::fs::remove_file(&stop);
    let _ = std::fs::remove_file(t.rootfs.join(".bench-freeze-ticks"));
    result
}

fn wait_until(mut ready: impl FnMut() -> bool, limit: Duration) -> Option<()> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ready() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
