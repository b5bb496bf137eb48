//! The fill's verdicts, the /proc readers and a real process fill.

use super::*;
use std::ffi::OsString;

#[test]
fn budget_labels_are_exact() {
    assert_eq!(budget_label(1 << 30), "1GiB");
    assert_eq!(budget_label(512 << 20), "512MiB");
    assert_eq!(budget_label(3 << 29), "1536MiB");
    assert_eq!(budget_label(1000), "1000B");
}

#[test]
fn kb_fields_parse() {
    let text = "Name:\tx\nVmRSS:\t    1234 kB\nPss:   10 kB\n";
    assert_eq!(kb_field(text, "VmRSS"), Some(1234 * 1024));
    assert_eq!(kb_field(text, "Pss"), Some(10 * 1024));
    assert_eq!(kb_field(text, "Vm"), None);
    assert!(self_rss_bytes().unwrap() > 0);
    assert!(pss_bytes(std::process::id()).unwrap() > 0);
}

fn limits(cap: usize, time_limit: Duration) -> FillLimits {
    FillLimits {
        budget_bytes: u64::MAX,
        cap,
        time_limit,
        floor_bytes: 0,
    }
}

#[test]
fn fill_verdicts_name_what_stopped_it() {
    let l = FillLimits {
        budget_bytes: 100,
        cap: 10,
        time_limit: Duration::from_secs(5),
        floor_bytes: 1000,
    };
    let s = Duration::from_secs(1);
    assert_eq!(FillStop::check(&l, 1, s, 5000, 4950), None);
    // A rise in MemAvailable (something else freed memory) is no drop.
    assert_eq!(FillStop::check(&l, 1, s, 5000, 6000), None);
    assert_eq!(
        FillStop::check(&l, 1, s, 5000, 4900),
        Some(FillStop::Budget)
    );
    // Under the floor before the budget is used: the OOM guard.
    assert_eq!(
        FillStop::check(&l, 1, s, 1050, 999),
        Some(FillStop::MemoryFloor)
    );
    assert_eq!(FillStop::check(&l, 10, s, 5000, 4950), Some(FillStop::Cap));
    assert_eq!(
        FillStop::check(&l, 3, Duration::from_secs(5), 5000, 4950),
        Some(FillStop::TimeLimit)
    );
    // The budget's instance did not fit; a limit's count is a lower bound.
    let end = |stop, avail_now| FillEnd {
        stop,
        elapsed: s,
        avail_before: 10,
        avail_now,
    };
    assert_eq!(fill(4, end(FillStop::Budget, 0), vec![]).count, 3);
    assert_eq!(fill(4, end(FillStop::Cap, 0), vec![]).count, 4);
    let risen = fill(4, end(FillStop::TimeLimit, 20), vec![]);
    assert_eq!(risen.mem_available_drop_bytes, -10);
    assert_eq!(risen.mem_available_drop_per_instance_bytes(), None);
    assert!(FillStop::MemoryFloor.describe(&l).contains("floor"));
}

#[test]
fn process_fill_stops_at_the_cap_and_kills_everything() {
    // `sleep` processes stand in for VMMs; the fill checks itself that none survives.
    let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
    let fill = fill_vmm_processes(&argv, &limits(5, Duration::from_secs(60))).unwrap();
    assert_eq!((fill.count, fill.started, fill.stop), (5, 5, FillStop::Cap));
    assert_eq!(fill.per_instance_bytes.len(), 5);
    assert!(fill.per_instance_bytes.iter().all(|b| *b > 0.0), "{fill:?}");
}

#[test]
fn process_fill_stops_at_the_time_limit() {
    let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
    let fill = fill_vmm_processes(&argv, &limits(64, Duration::ZERO)).unwrap();
    assert_eq!((fill.count, fill.stop), (1, FillStop::TimeLimit));
}

#[test]
fn a_fill_never_starts_under_the_memory_floor() {
    let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
    let mut l = limits(4, Duration::from_secs(60));
    l.floor_bytes = u64::MAX;
    let err = fill_vmm_processes(&argv, &l).unwrap_err();
    assert!(err.to_string().contains("floor"), "{err}");
}

#[test]
fn a_vmm_that_exits_is_a_reason() {
    let argv: Vec<OsString> = ["sh", "-c", "echo nope >&2; exit 3"]
        .iter()
        .map(OsString::from)
        .collect();
    let err = fill_vmm_processes(&argv, &limits(4, Duration::from_secs(60))).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
