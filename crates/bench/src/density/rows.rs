//! The memory question's density rows: the two fills, each as a count and a cost per instance.

use super::{Fill, FillLimits};
use crate::environment::{NotMeasured, Variant};
use crate::memory::idle_vm_argv;
use crate::runner::{RunConfig, DENSITY_CAP};
use crate::schema::{Question, Row, Scope, Unit};
use crate::shared::Shared;
use std::collections::BTreeMap;

/// A row holding figures that were measured once, outside [`crate::plan::measure`].
fn direct_row(
    scope: Scope,
    environment: &str,
    workload: &str,
    unit: Unit,
    figures: Result<Vec<f64>, NotMeasured>,
    note: Option<String>,
) -> Row {
    Row {
        question: Question::Memory,
        scope,
        start: None,
        environment: environment.into(),
        workload: workload.into(),
        unit,
        result: crate::plan::outcome(figures),
        ratio_to_host: None,
        phases_median_us: BTreeMap::new(),
        note,
    }
}

/// Two rows per kind: how many idle instances fit the budget, and what each one cost the
/// machine (`MemAvailable` drop per instance; the per-process account is in the note).
fn density_pair(
    scope: Scope,
    environment: &str,
    limits: &FillLimits,
    fill: Result<Fill, NotMeasured>,
    how: &str,
    account: &str,
) -> [Row; 2] {
    let label = super::budget_label(limits.budget_bytes);
    let note = |fill: &Fill| {
        let mut per_process = fill.per_instance_bytes.clone();
        per_process.sort_by(f64::total_cmp);
        let median = per_process
            .get(per_process.len() / 2)
            .map_or_else(|| "-".into(), |b| format!("{:.0} KiB", b / 1024.0));
        format!(
            "{how}; {} instances started in {:.1} s, {}; MemAvailable fell by {} MiB in all \
             (kernel memory included — and anything else running on the machine); \
             per-process view: median {account} {median} per instance",
            fill.started,
            fill.elapsed.as_secs_f64(),
            fill.stop.describe(limits),
            fill.mem_available_drop_bytes >> 20,
        )
    };
    let (count, bytes, note) = match &fill {
        Ok(f) => (
            Ok(vec![f.count as f64]),
            f.mem_available_drop_per_instance_bytes()
                .map(|b| vec![b])
                .ok_or_else(|| {
                    NotMeasured::Memory(format!(
                        "MemAvailable did not fall over the fill ({} MiB): something else on \
                         the machine freed memory meanwhile, so there is no per-instance figure",
                        f.mem_available_drop_bytes >> 20
                    ))
                }),
            Some(note(f)),
        ),
        Err(e) => (Err(e.clone()), Err(e.clone()), None),
    };
    [
        direct_row(
            scope,
            environment,
            &format!("density-{label}"),
            Unit::Count,
            count,
            note.clone(),
        ),
        direct_row(
            scope,
            environment,
            "idle-instance",
            Unit::Bytes,
            bytes,
            note,
        ),
    ]
}

/// Idle containers vs idle microVMs in one memory budget (skipped by `--quick`).
pub(crate) fn density_rows(shared: &Shared, config: &RunConfig) -> Vec<Row> {
    let limits = FillLimits {
        budget_bytes: config.density_budget_bytes,
        cap: DENSITY_CAP,
        time_limit: config.density_time_limit,
        floor_bytes: super::DEFAULT_FLOOR_BYTES,
    };
    let quick = NotMeasured::SkippedByQuick(
        "density starts idle instances until the budget is full (run without --quick)",
    );
    let (containers, vms) = if config.quick {
        (Err(quick.clone()), Err(quick))
    } else {
        (
            container_fill(shared, &limits),
            shared
                .isolab_exe()
                .and_then(|exe| super::fill_vmm_processes(&idle_vm_argv(exe, "900s"), &limits)),
        )
    };
    let mut rows = Vec::new();
    rows.extend(density_pair(
        Scope::InProcess,
        Variant::Cgroups.name(),
        &limits,
        containers,
        "idle `sleep` containers (namespaces + a 64 MiB memory cgroup each), started through \
         the library until the system's MemAvailable had fallen by the budget",
        "cgroup charge + share of the bench process's RSS growth",
    ));
    rows.extend(density_pair(
        Scope::WholeProcess,
        "isolab-cli-microvm-stub",
        &limits,
        vms,
        "idle `isolab vm run --guest stub:hang --memory 64M` processes (one VMM each, \
         SIGSTOPped once settled because the stub idles in a busy loop), started until the \
         system's MemAvailable had fallen by the budget",
        "VMM PSS (shared pages divided among the VMMs)",
    ));
    rows
}

/// Fills the budget with idle `sleep` containers, each in a 64 MiB memory cgroup.
fn container_fill(shared: &Shared, limits: &FillLimits) -> Result<Fill, NotMeasured> {
    let mut spec = shared.base_spec(&["/bin/sleep", "3600"])?;
    let fx = shared.fixture()?;
    let cgroups = shared.cgroups.as_ref().ok_or(NotMeasured::NoCgroups)?;
    spec.use_cgroup = true;
    spec.resources = isolab_cgroups::Resources {
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(64),
        ..Default::default()
    };
    spec.rootfs = isolab_container::RootfsSource::Dir(fx.rootfs());
    super::fill_containers(&spec, cgroups, limits)
}
