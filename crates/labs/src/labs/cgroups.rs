//! Labs 9 to 12: cgroups — a budget for a group of processes, enforced by the kernel.

use super::{path_str, read_json};
use crate::{Lab, LabError, Session};
use std::time::Duration;

pub const MEMORY: Lab = Lab {
    number: 9,
    name: "memory-oom",
    summary: "a memory limit ends in an OOM kill, counted by the cgroup itself",
    claims: &["C8"],
    needs_root: true,
    background: "\
The memory controller charges every page a cgroup's processes use (anonymous memory, page
cache, kernel objects) to the cgroup. At the limit the kernel first reclaims what it can; if
that is not enough it runs the OOM killer inside the cgroup only, and the rest of the machine
never notices. The cgroup keeps its own counters: peak usage and the number of OOM kills.

What to look for: a shell that builds a 100 MiB string under --memory 32M is killed with
SIGKILL (exit 137), the cgroup's peak is the limit and its OOM counter is 1; the same shell
building 4 MiB finishes normally under the same limit.",
    run: run_memory,
};

pub const CPU: Lab = Lab {
    number: 10,
    name: "cpu-quota",
    summary: "a CPU quota throttles a busy loop, measured against an unthrottled run",
    claims: &["C8"],
    needs_root: true,
    background: "\
The CPU controller's bandwidth limit (CFS quota) lets a cgroup run for `quota` microseconds in
every `period` (100 ms): --cpus 0.2 is 20 ms per 100 ms. When the budget is spent the group's
threads are taken off the CPU until the next period — they are throttled, and the cgroup counts
the periods in which that happened.

What to look for: under --cpus 0.2 a one-second busy loop gets at most about 0.2 s of CPU time
and the cgroup reports throttled periods; unthrottled, the same loop gets up to a whole CPU
(less when other programs compete for it).",
    run: run_cpu,
};

pub const PIDS: Lab = Lab {
    number: 11,
    name: "pids-limit",
    summary: "a pids limit stops a fork bomb inside the container",
    claims: &["C8"],
    needs_root: true,
    background: "\
The pids controller counts the tasks (processes and threads) of a cgroup; at pids.max, fork()
and clone() fail with EAGAIN. A fork bomb inside the container hits the wall of its own cgroup
while the host's process table is untouched.

What to look for: with --pids-limit 16 the shell trying to start 100 background processes gets
\"can't fork: Resource temporarily unavailable\", and the cgroup's peak never exceeds 16.",
    run: run_pids,
};

pub const FREEZER: Lab = Lab {
    number: 12,
    name: "freezer",
    summary: "pause and resume a running container with the cgroup freezer",
    claims: &["C8"],
    needs_root: true,
    background: "\
The freezer stops every task of a cgroup at once, wherever it is, and thaws them later: they do
not see a signal and cannot refuse (unlike SIGSTOP, which a process can observe). `isolab
container pause` writes FROZEN to the v1 freezer.state (or 1 to the v2 cgroup.freeze).

What to look for: a counter written ten times a second stops moving while the container is
paused — the freezer state says FROZEN — and moves on after resume.",
    run: run_freezer,
};

fn run_memory(s: &mut Session) -> Result<(), LabError> {
    let oom_json = s.dir().join("oom.json");
    let ok_json = s.dir().join("ok.json");
    let big = s.isolab(&[
        "container",
        "run",
        "--rm",
        "--memory",
        "32M",
        "--json",
        &path_str(&oom_json),
        "--",
        "sh",
        "-c",
        "x=$(head -c 104857600 /dev/zero | tr '\\0' x); echo survived",
    ])?;
    let outcome = read_json(&oom_json)?;
    let stats = &outcome["cgroup_stats"];
    let kills = stats["oom_kills"].as_u64();
    let peak_mib = stats["memory_peak_bytes"].as_u64().map(|b| b >> 20);
    s.check(
        "oom-killed-at-limit",
        big.exit_code == Some(137) && outcome["oom_killed"] == true && kills.unwrap_or(0) >= 1,
        format!(
            "exit {:?}; the cgroup counted {} OOM kill(s), peak {} MiB",
            big.exit_code,
            kills.map_or("no".into(), |k| k.to_string()),
            peak_mib.map_or("?".into(), |p| p.to_string())
        ),
    );
    let small = s.isolab(&[
        "container",
        "run",
        "--rm",
        "--memory",
        "32M",
        "--json",
        &path_str(&ok_json),
        "--",
        "sh",
        "-c",
        "x=$(head -c 4194304 /dev/zero | tr '\\0' x); echo survived",
    ])?;
    let small_kills = read_json(&ok_json)?["cgroup_stats"]["oom_kills"].as_u64();
    s.check(
        "within-limit-survives",
        small.exit_code == Some(0) && small.stdout.contains("survived") && small_kills == Some(0),
        format!(
            "4 MiB under the same limit: exit {:?}, {:?} OOM kills",
            small.exit_code, small_kills
        ),
    );
    Ok(())
}

const BUSY: &str = "timeout 1 sh -c 'while :; do :; done'; echo done";

fn run_cpu(s: &mut Session) -> Result<(), LabError> {
    let free_json = s.dir().join("free.json");
    let quota_json = s.dir().join("quota.json");
    s.isolab(&[
        "container",
        "run",
        "--rm",
        "--json",
        &path_str(&free_json),
        "--",
        "sh",
        "-c",
        BUSY,
    ])?;
    s.isolab(&[
        "container",
        "run",
        "--rm",
        "--cpus",
        "0.2",
        "--json",
        &path_str(&quota_json),
        "--",
        "sh",
        "-c",
        BUSY,
    ])?;
    let free = read_json(&free_json)?;
    let quota = read_json(&quota_json)?;
    let cpu_ms = |v: &serde_json::Value| {
        v["cgroup_stats"]["cpu_usage_us"]
            .as_u64()
            .map(|u| u as f64 / 1e3)
    };
    let wall_ms = |v: &serde_json::Value| v["phases"]["run_us"].as_u64().map(|u| u as f64 / 1e3);
    let (Some(free_cpu), Some(quota_cpu), Some(quota_wall)) =
        (cpu_ms(&free), cpu_ms(&quota), wall_ms(&quota))
    else {
        s.check(
            "quota-throttles",
            false,
            "the runs reported no CPU usage (no cpu cgroup?)",
        );
        return Ok(());
    };
    let throttled = quota["cgroup_stats"]["cpu_throttled_periods"]
        .as_u64()
        .unwrap_or(0);
    // The quota allows 0.2 CPU-seconds per second of wall time; a quarter more covers the
    // period in progress when the loop ends.
    let allowed_ms = 0.2 * quota_wall * 1.25;
    s.check(
        "quota-throttles",
        quota_cpu <= allowed_ms && throttled > 0,
        format!(
            "CPU time in {:.1} s: {quota_cpu:.0} ms under --cpus 0.2 ({:.2} CPUs; {throttled} throttled periods), {free_cpu:.0} ms unthrottled ({:.2}x){}",
            quota_wall / 1e3,
            quota_cpu / quota_wall,
            quota_cpu / free_cpu.max(1.0),
            if free_cpu < 2.0 * quota_cpu { "; the unthrottled run got little CPU: this machine is busy" } else { "" }
        ),
    );
    Ok(())
}

fn run_pids(s: &mut Session) -> Result<(), LabError> {
    let json = s.dir().join("pids.json");
    let bomb = s.isolab(&[
        "container",
        "run",
        "--rm",
        "--pids-limit",
        "16",
        "--json",
        &path_str(&json),
        "--",
        "sh",
        "-c",
        "for i in $(seq 100); do sleep 5 & done; echo all 100 started",
    ])?;
    let peak = read_json(&json)?["cgroup_stats"]["pids_peak"].as_u64();
    let refused =
        bomb.stderr.contains("can't fork") || bomb.stderr.contains("Resource temporarily");
    s.check(
        "fork-refused-at-limit",
        refused && !bomb.stdout.contains("all 100") && peak.is_some_and(|p| p <= 16),
        format!(
            "{}; the cgroup's peak was {} tasks",
            bomb.stderr
                .lines()
                .find(|l| l.contains("fork"))
                .unwrap_or("no fork error")
                .trim(),
            peak.map_or("?".into(), |p| p.to_string())
        ),
    );
    Ok(())
}

const TICKER: &str =
    "i=0; while [ ! -e /lab/stop ]; do i=$((i+1)); echo $i > /lab/ticks; sleep 0.1; done";

fn run_freezer(s: &mut Session) -> Result<(), LabError> {
    let name = "lab12-ticker";
    let shared = s.shared_volume();
    let bg = s.isolab_background(&[
        "container",
        "run",
        "--rm",
        "--name",
        name,
        "-v",
        &shared,
        "--",
        "sh",
        "-c",
        TICKER,
    ])?;
    // Interrupted while paused, the container could not even be killed: thaw it first.
    s.undo_with(&["container", "resume", name]);
    let ticks_file = s.shared().join("ticks");
    let ticks = move || -> u64 {
        std::fs::read_to_string(&ticks_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    if !s.wait_until(Duration::from_secs(20), || ticks() >= 3)? {
        s.check("ticker-started", false, "the counter never reached 3");
        return Ok(());
    }
    s.isolab(&["container", "pause", name])?;
    let state = freezer_state(s, name)?;
    let frozen_at = ticks();
    s.sleep(Duration::from_millis(600))?;
    let still = ticks();
    s.check(
        "paused-stands-still",
        frozen_at == still && state.contains("FROZEN"),
        format!("freezer state {state:?}; counter {frozen_at} then {still} 0.6 s later"),
    );
    s.isolab(&["container", "resume", name])?;
    let moved = s.wait_until(Duration::from_secs(3), || ticks() > still)?;
    s.check(
        "resumed-moves-on",
        moved,
        format!("after resume the counter went from {still} to {}", ticks()),
    );
    std::fs::write(s.shared().join("stop"), b"").map_err(LabError::prepare(s.shared()))?;
    s.wait_background(bg)?;
    Ok(())
}

/// Shows and returns the freezer state of a running container's cgroup.
fn freezer_state(s: &mut Session, name: &str) -> Result<String, LabError> {
    let ls = s.isolab(&["container", "ls", "--json"])?;
    let list: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap_or_default();
    let pid = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"].as_str() == Some(name)))
        .and_then(|c| c["state"]["pid"].as_i64());
    let Some(pid) = pid else {
        return Ok(String::new());
    };
    let cgroup = s.cat(&format!("/proc/{pid}/cgroup"))?;
    let file = cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "freezer") {
            Some(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
        } else if controllers.is_empty()
            && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        {
            Some(format!("/sys/fs/cgroup{path}/cgroup.events"))
        } else {
            None
        }
    });
    match file {
        Some(f) => {
            let text = s.cat(&f)?;
            // cgroup v2 says `frozen 1` where v1 says FROZEN.
            Ok(if text.contains("frozen 1") {
                "FROZEN".into()
            } else {
                text.trim().to_string()
            })
        }
        None => Ok(String::new()),
    }
}
