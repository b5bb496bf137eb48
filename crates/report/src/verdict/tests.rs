//! The verdict rules on fixed inputs: one VT-x/AMD-V machine and one paravirtual (kvm_pvm) one.

use super::*;
use isolab_bench::schema::{
    ClaimId, Finding, Observation, Outcome, Question, Row, Scope, Settings, StartKind, Unit,
    SCHEMA_VERSION,
};
use isolab_bench::stats::summarize;
use std::collections::BTreeMap;

fn fingerprint(kvm_module: &str, cpl0_native: Option<bool>) -> Fingerprint {
    Fingerprint {
        cpu_model: "Test CPU".into(),
        cpu_cores: 4,
        memory_total_bytes: 8 << 30,
        kernel_release: "6.18.0".into(),
        kernel_version: "#1 SMP".into(),
        cgroup_mode: "unified".into(),
        host_is_virtualized: cpl0_native == Some(false),
        kvm_module: kvm_module.into(),
        guest_cpl0_native: cpl0_native,
        guest_cpl0_detail: "probe".into(),
        tools: BTreeMap::new(),
        git_revision: "abc1234".into(),
        isolab_version: "0.1.0".into(),
        date: "2026-11-30T10:00:00Z".into(),
        rcu_expedited: Some(false),
        cgroup_favordynmods: false,
    }
}

/// A VT-x machine: guest kernel mode native.
fn vtx() -> Fingerprint {
    fingerprint("kvm_intel", Some(true))
}

/// A paravirtual machine: guest kernel mode emulated.
fn pvm() -> Fingerprint {
    fingerprint("kvm_pvm", Some(false))
}

/// A measured row whose samples all lie around `median` (±5 %).
fn row(question: Question, env: &str, workload: &str, unit: Unit, median: f64) -> Row {
    let samples = vec![median * 0.95, median, median * 1.05];
    Row {
        question,
        scope: Scope::of_environment(env),
        start: (question == Question::Startup).then_some(StartKind::Warm),
        environment: env.into(),
        workload: workload.into(),
        unit,
        result: Outcome::Measured {
            summary: summarize(&samples).unwrap(),
            samples,
        },
        ratio_to_host: None,
        phases_median_us: BTreeMap::new(),
        note: None,
    }
}

fn not_measured(question: Question, env: &str, workload: &str, unit: Unit, why: &str) -> Row {
    Row {
        result: Outcome::NotMeasured { reason: why.into() },
        ..row(question, env, workload, unit, 1.0)
    }
}

fn with_ratio(mut r: Row, ratio: f64) -> Row {
    r.ratio_to_host = Some(ratio);
    r
}

fn results(fp: Fingerprint, rows: Vec<Row>) -> Results {
    Results {
        schema_version: SCHEMA_VERSION,
        fingerprint: fp,
        settings: Settings {
            quick: false,
            samples_per_row: 3,
            questions: vec![
                "startup".into(),
                "memory".into(),
                "syscall".into(),
                "cpu".into(),
            ],
            shuffle_seed: 7,
            cold_gap_ms: 300,
            cold_samples_per_row: 3,
        },
        rows,
        observations: Vec::new(),
        started_at: "2026-11-30T10:00:00Z".into(),
        duration_s: 1.0,
    }
}

fn judge(r: &Results, id: &str) -> Judgement {
    judge_all(r).into_iter().find(|j| j.claim.id == id).unwrap()
}

fn startup_rows(vm_us: f64) -> Vec<Row> {
    let s = |env, w, us| row(Question::Startup, env, w, Unit::Us, us);
    vec![
        s("host", "true", 600.0),
        s("isolab-cli-container", "true", 6_200.0),
        s("crun", "true", 7_800.0),
        // In-process: must not enter the verdict however fast it is.
        s("isolab-engine-container-ns", "true", 2_500.0),
        s("isolab-engine-microvm-stub", "stub-true", 1_000.0),
        s("isolab-cli-microvm-stub", "stub-true", vm_us),
    ]
}

#[test]
fn host_kind_comes_from_the_cpl0_probe_not_the_module_name() {
    assert_eq!(HostVirt::of(&vtx()), HostVirt::Native);
    assert_eq!(HostVirt::of(&pvm()), HostVirt::EmulatedKernelMode);
    assert_eq!(
        HostVirt::of(&fingerprint("kvm_pvm", None)),
        HostVirt::Unknown
    );
    assert!(emulation_caveat(&vtx()).is_none());
    assert!(emulation_caveat(&pvm()).unwrap().contains("kvm_pvm"));
}

#[test]
fn c1_refuted_when_a_whole_process_microvm_starts_in_milliseconds() {
    for fp in [vtx(), pvm()] {
        let pvm_host = fp.guest_cpl0_native == Some(false);
        let j = judge(&results(fp, startup_rows(9_000.0)), "C1");
        assert_eq!(j.verdict, Verdict::Refuted);
        let all = j.numbers.join("\n");
        assert!(
            all.contains("isolab-cli-microvm-stub · stub-true, warm: median 9.0 ms"),
            "{all}"
        );
        assert!(all.contains("crun, warm: median 7.8 ms"), "{all}");
        // In-process rows are a breakdown, never a launch to compare.
        assert!(!all.contains("isolab-engine"), "{all}");
        assert_eq!(j.caveat.contains("emulates guest kernel mode"), pvm_host);
    }
}

#[test]
fn c1_uses_no_in_process_row_in_place_of_a_launch() {
    let rows: Vec<Row> = startup_rows(9_000.0)
        .into_iter()
        .filter(|r| r.environment != "isolab-cli-microvm-stub")
        .collect();
    let j = judge(&results(vtx(), rows), "C1");
    match j.verdict {
        Verdict::NotMeasured(why) => assert!(why.contains("no whole-process VM start"), "{why}"),
        v => panic!("expected not measured, got {v:?}"),
    }
}

#[test]
fn c1_supported_when_the_vm_takes_minutes() {
    let j = judge(&results(vtx(), startup_rows(95e6)), "C1");
    assert_eq!(j.verdict, Verdict::Supported);
}

#[test]
fn c1_depends_when_one_vm_is_fast_and_another_slow() {
    let mut rows = startup_rows(9_000.0);
    rows.push(row(
        Question::Startup,
        "qemu-linux",
        "linux-to-init",
        Unit::Us,
        120e6,
    ));
    let j = judge(&results(vtx(), rows), "C1");
    assert!(matches!(j.verdict, Verdict::Depends(ref on) if on.contains("what the VM boots")));
}

fn memory_rows(containers: f64, vms: f64) -> Vec<Row> {
    let m = |env, w, unit, v| row(Question::Memory, env, w, unit, v);
    vec![
        m("isolab-cli-container", "true", Unit::Bytes, 5.3 * 1048576.0),
        m(
            "isolab-cli-microvm-stub",
            "idle-vmm",
            Unit::Bytes,
            4.3 * 1048576.0,
        ),
        m(
            "isolab-engine-container-cgroups",
            "density-1GiB",
            Unit::Count,
            containers,
        ),
        m("isolab-cli-microvm-stub", "density-1GiB", Unit::Count, vms),
    ]
}

#[test]
fn c2_follows_the_density_fill() {
    let j = judge(&results(vtx(), memory_rows(900.0, 150.0)), "C2");
    assert_eq!(j.verdict, Verdict::Supported);
    assert!(j.numbers[0].contains("900 containers"), "{:?}", j.numbers);
    let j = judge(&results(vtx(), memory_rows(100.0, 150.0)), "C2");
    assert_eq!(j.verdict, Verdict::Refuted);
    let j = judge(&results(vtx(), memory_rows(200.0, 150.0)), "C2");
    assert!(matches!(j.verdict, Verdict::Depends(_)));
}

#[test]
fn c2_without_density_says_why_and_compares_per_instance() {
    let mut rows = memory_rows(0.0, 0.0);
    rows.truncate(2);
    rows.push(not_measured(
        Question::Memory,
        "isolab-cli-microvm-stub",
        "density-1GiB",
        Unit::Count,
        "skipped by --quick",
    ));
    let j = judge(&results(pvm(), rows), "C2");
    // The container launcher (5.3 MiB) is heavier than the idle stub VMM (4.3 MiB) here.
    assert!(matches!(j.verdict, Verdict::Depends(ref on) if on.contains("skipped by --quick")));
}

fn cpu_rows(container_time_ratio: f64) -> Vec<Row> {
    let c = |env, w, unit, v| row(Question::Cpu, env, w, unit, v);
    vec![
        with_ratio(c("host", "cpu-loop", Unit::Ns, 4.3), 1.0),
        with_ratio(
            c("isolab-cli-container", "cpu-loop", Unit::Ns, 4.3),
            container_time_ratio,
        ),
        // Bandwidth: a ratio of 0.5 means twice the host's time.
        with_ratio(
            c("isolab-cli-container", "triad", Unit::BytesPerS, 3.8e9),
            0.98,
        ),
        with_ratio(
            c("isolab-cli-microvm-stub", "cpu-loop", Unit::Ns, 4.7),
            1.09,
        ),
    ]
}

#[test]
fn c3_near_bare_metal_within_ten_percent() {
    let j = judge(&results(vtx(), cpu_rows(1.02)), "C3");
    assert_eq!(j.verdict, Verdict::Supported);
    assert!(j.caveat.is_empty());
    let j = judge(&results(pvm(), cpu_rows(1.02)), "C3");
    assert_eq!(j.verdict, Verdict::Supported);
    assert!(j.caveat.contains("guest user mode"), "{}", j.caveat);
    let j = judge(&results(vtx(), cpu_rows(2.0)), "C3");
    assert_eq!(j.verdict, Verdict::Refuted);
    let j = judge(&results(vtx(), cpu_rows(1.3)), "C3");
    assert!(matches!(j.verdict, Verdict::Depends(ref on) if on.contains("cpu-loop")));
}

#[test]
fn c3_inverts_bandwidth_ratios() {
    let mut rows = cpu_rows(1.0);
    rows[2].ratio_to_host = Some(0.5);
    let j = judge(&results(vtx(), rows), "C3");
    assert_eq!(j.verdict, Verdict::Refuted);
    assert!(
        j.numbers.iter().any(|n| n.contains("triad: 2.00×")),
        "{:?}",
        j.numbers
    );
}

fn syscall_rows(container_ns: f64, exit_ns: f64) -> Vec<Row> {
    let s = |env, w, v| row(Question::Syscall, env, w, Unit::Ns, v);
    vec![
        s("host", "getpid", 140.0),
        s("isolab-cli-container", "getpid", container_ns),
        s("isolab-cli-microvm-stub", "pio-exit", exit_ns),
        not_measured(
            Question::Syscall,
            "isolab-cli-microvm-stub",
            "getpid",
            Unit::Ns,
            "guest CPL3 to CPL0 does not switch here",
        ),
    ]
}

#[test]
fn c4_rules() {
    let j = judge(&results(vtx(), syscall_rows(180.0, 2_000.0)), "C4");
    assert_eq!(j.verdict, Verdict::Supported);
    assert!(!j.caveat.contains("paravirtual"));
    let j = judge(&results(pvm(), syscall_rows(180.0, 24_700.0)), "C4");
    assert_eq!(j.verdict, Verdict::Supported);
    assert!(j.caveat.contains("paravirtual KVM"), "{}", j.caveat);
    assert!(j
        .numbers
        .iter()
        .any(|n| n.contains("guest getpid not measured: guest CPL3")));
    let j = judge(&results(vtx(), syscall_rows(600.0, 2_000.0)), "C4");
    assert_eq!(j.verdict, Verdict::Refuted);
    let j = judge(&results(vtx(), syscall_rows(180.0, 500.0)), "C4");
    assert!(matches!(j.verdict, Verdict::Depends(_)));
}

#[test]
fn empty_results_are_not_measured_everywhere_with_a_reason() {
    for j in judge_all(&results(pvm(), Vec::new())) {
        match &j.verdict {
            Verdict::NotMeasured(why) => assert!(!why.is_empty(), "{}", j.claim.id),
            v => panic!("{}: {v:?}", j.claim.id),
        }
    }
}

#[test]
fn c1_prefers_cold_starts_when_the_file_has_them() {
    let mut rows = startup_rows(9_000.0);
    let mut cold = row(Question::Startup, "crun", "true", Unit::Us, 14_000.0);
    cold.start = Some(StartKind::Cold);
    rows.push(cold);
    let mut cold_vm = row(
        Question::Startup,
        "isolab-cli-microvm-stub",
        "stub-true",
        Unit::Us,
        11_000.0,
    );
    cold_vm.start = Some(StartKind::Cold);
    rows.push(cold_vm);
    let j = judge(&results(vtx(), rows), "C1");
    let all = j.numbers.join("\n");
    assert!(all.contains("crun, cold: median 14.0 ms"), "{all}");
    // Per environment: the cold row replaces the warm one where there is one.
    assert!(!all.contains("crun, warm"), "{all}");
    assert!(!all.contains("stub-true, warm"), "{all}");
    assert!(all.contains("isolab-cli-container, warm"), "{all}");
}

fn observation(claim: ClaimId, check: &str, env: &str, holds: Option<bool>) -> Observation {
    Observation {
        claim,
        check: check.into(),
        environment: env.into(),
        statement: format!("{check} in {env}"),
        outcome: match holds {
            Some(holds) => Finding::Observed { holds },
            None => Finding::NotMeasured {
                reason: "needs root".into(),
            },
        },
        evidence: "$ true".into(),
        figures: BTreeMap::new(),
    }
}

#[test]
fn observed_claims() {
    let mut r = results(pvm(), Vec::new());
    r.observations = vec![
        observation(
            ClaimId::C5,
            "kernel-is-host-kernel",
            "isolab-cli-container",
            Some(true),
        ),
        observation(
            ClaimId::C5,
            "kernel-is-host-kernel",
            "isolab-cli-microvm-linux",
            Some(false),
        ),
        observation(
            ClaimId::C6,
            "root-writes-host-file-through-bind-mount",
            "isolab-cli-container",
            Some(true),
        ),
        observation(
            ClaimId::C6,
            "root-writes-host-file-through-bind-mount",
            "isolab-cli-container-userns",
            Some(false),
        ),
        observation(
            ClaimId::C8,
            "memory-limit-oom-kills",
            "isolab-cli-container",
            Some(true),
        ),
        observation(
            ClaimId::C8,
            "pids-limit-stops-fork-bomb",
            "isolab-cli-container",
            Some(true),
        ),
        observation(
            ClaimId::C8,
            "freezer-stops-and-resumes",
            "isolab-cli-container",
            None,
        ),
        observation(
            ClaimId::C9,
            "writes-stay-in-upper-layer",
            "isolab-cli-container",
            Some(false),
        ),
        observation(
            ClaimId::C10,
            "chroot-escape-reads-host-file",
            "isolab-cli-container-chroot",
            Some(true),
        ),
        observation(
            ClaimId::C10,
            "chroot-escape-reads-host-file",
            "isolab-cli-container",
            Some(false),
        ),
        observation(ClaimId::C7, "something-new", "host", Some(true)),
    ];
    assert_eq!(judge(&r, "C5").verdict, Verdict::Supported);
    match judge(&r, "C6").verdict {
        Verdict::Depends(on) => {
            assert!(
                on.contains("borne out in isolab-cli-container (root-writes"),
                "{on}"
            );
            assert!(on.contains("not in isolab-cli-container-userns"), "{on}");
        }
        v => panic!("C6: {v:?}"),
    }
    let c8 = judge(&r, "C8");
    assert_eq!(c8.verdict, Verdict::Supported);
    assert!(c8
        .numbers
        .iter()
        .any(|n| n.contains("not measured (needs root)")));
    assert_eq!(judge(&r, "C9").verdict, Verdict::Refuted);
    match judge(&r, "C10").verdict {
        Verdict::Depends(on) => {
            assert!(on.starts_with("on privileges"), "{on}");
            assert!(on.contains("pivot_root in a mount namespace held"), "{on}");
        }
        v => panic!("C10: {v:?}"),
    }
    // A check the rules do not know is shown, never silently weighed.
    match judge(&r, "C7").verdict {
        Verdict::NotMeasured(why) => assert!(why.contains("not ones this report"), "{why}"),
        v => panic!("C7: {v:?}"),
    }
}

#[test]
fn c5_reads_the_kernel_check_by_environment_kind() {
    let mut r = results(vtx(), Vec::new());
    let check = "kernel-is-host-kernel";
    r.observations = vec![
        observation(ClaimId::C5, check, "isolab-cli-container", Some(true)),
        observation(ClaimId::C5, check, "isolab-cli-microvm-linux", Some(false)),
    ];
    assert_eq!(judge(&r, "C5").verdict, Verdict::Supported);
    // gVisor: a container runtime whose workload sees a kernel other than the host's.
    r.observations
        .push(observation(ClaimId::C5, check, "gvisor", Some(false)));
    match judge(&r, "C5").verdict {
        Verdict::Depends(on) => assert!(on.contains("not in gvisor"), "{on}"),
        v => panic!("C5: {v:?}"),
    }
}

#[test]
fn c7_six_namespaces_is_refuted_by_a_kernel_with_more() {
    let mut r = results(pvm(), Vec::new());
    r.observations = vec![
        observation(
            ClaimId::C7,
            "kernel-offers-more-than-six-namespaces",
            "host",
            Some(true),
        ),
        observation(
            ClaimId::C7,
            "default-container-has-own-pid-namespace",
            "isolab-cli-container",
            Some(true),
        ),
    ];
    assert_eq!(judge(&r, "C7").verdict, Verdict::Refuted);
    // A default container without its own time namespace does not rescue the claim.
    r.observations.push(observation(
        ClaimId::C7,
        "default-container-has-own-time-namespace",
        "isolab-cli-container",
        Some(false),
    ));
    assert_eq!(judge(&r, "C7").verdict, Verdict::Refuted);
}
