//! What a cgroup measured: memory peak, OOM kills, CPU time, tasks, throttling.
//!
//! The kernel keeps these counters per cgroup for as long as the directory exists, *including
//! after every process in it has exited* — which is why a runtime reads them between the
//! container's exit and `rmdir`. v1 and v2 expose the same facts under different names and
//! units; this module maps both onto one struct with the unit in every field name:
//!
//! | fact | v1 | v2 |
//! |---|---|---|
//! | memory now / peak | `memory.usage_in_bytes` / `memory.max_usage_in_bytes` | `memory.current` / `memory.peak` (5.19+) |
//! | OOM kills | `oom_kill` in `memory.oom_control` | `oom_kill` in `memory.events` |
//! | CPU time | `cpuacct.usage` (ns), `cpuacct.usage_user/_sys` (ns) or `cpuacct.stat` (USER_HZ ticks) | `usage_usec`, `user_usec`, `system_usec` in `cpu.stat` |
//! | throttling | `nr_periods`, `nr_throttled`, `throttled_time` (ns) in `cpu.stat` | same names, `throttled_usec` |
//! | tasks | `pids.current`, `pids.peak` | same |
//!
//! A field is `None` when this host lacks the file (an older kernel, a controller not mounted)
//! or the cgroup does not use the controller: throttling counters need a CPU limit (`--cpus` or
//! `--cpu-shares`), since without one the `cpu` controller is not used.

use serde::{Deserialize, Serialize};

/// Resource usage of one cgroup, gathered from every hierarchy it lives in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// Memory charged to the group now.
    pub memory_current_bytes: Option<u64>,
    /// Highest memory charge seen since creation.
    pub memory_peak_bytes: Option<u64>,
    /// Processes the OOM killer killed inside the group.
    pub oom_kills: Option<u64>,
    /// Total CPU time used by the group's tasks.
    pub cpu_usage_us: Option<u64>,
    /// CPU time in user mode.
    pub cpu_user_us: Option<u64>,
    /// CPU time in kernel mode.
    pub cpu_system_us: Option<u64>,
    /// CFS bandwidth periods that elapsed while the group had runnable tasks.
    pub cpu_periods: Option<u64>,
    /// Periods in which the group hit its quota and was throttled.
    pub cpu_throttled_periods: Option<u64>,
    /// Total time the group's tasks spent throttled.
    pub cpu_throttled_us: Option<u64>,
    /// Tasks (processes + threads) in the group now.
    pub pids_current: Option<u64>,
    /// Highest task count seen (`pids.peak`, Linux 6.1+ for v1 and v2).
    pub pids_peak: Option<u64>,
}

/// Finds `key value` in a flat-keyed file (`cpu.stat`, `memory.events`, `memory.oom_control`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_lookup() {
        let t = "nr_periods 10\nnr_throttled 3\nthrottled_time 4500\n";
        assert_eq!(keyed(t, "nr_throttled"), Some(3));
        assert_eq!(keyed(t, "nr_periods"), Some(10));
        assert_eq!(keyed(t, "throttled"), None);
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill"),
            Some(2)
        );
    }

    #[test]
    fn serde_roundtrip_keeps_units_in_names() {
        let s = CgroupStats {
            memory_peak_bytes: Some(1),
            cpu_throttled_us: Some(7),
            ..Default::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"memory_peak_bytes\":1"), "{json}");
        assert!(json.contains("\"oom_kills\":null"), "{json}");
        let back: CgroupStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
