//! Scaling rows: isolab's container, its microVM and crun started 1, 2, 4, 8 at once.
//!
//! One start on a quiet machine is not how a cluster starts containers. Here `n` instances
//! are released together by a barrier, and each level gets two rows: the mean latency per
//! instance, and the memory the `n` of them held at their peak ([`crate::scaling`] takes the
//! figures).

use crate::environment::{Environment, IsolabContainer, NotMeasured, Variant};
use crate::fixture::{self};
use crate::plan::Plan;
use crate::scaling::{self, Concurrent, Measure, Target};
use crate::schema::{Question, Unit};
use crate::shared::{path_str, Shared};
use isolab_microvm::StubOptions;
use std::sync::Arc;

/// The container every scaling level starts: prepared once, so one bridge anchor serves all.
type SharedContainer<'a> = Result<Arc<IsolabContainer<'a>>, NotMeasured>;

/// isolab's full container, the stub microVM and crun, started 1, 2, 4, 8 at a time.
pub(crate) fn scaling_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let container = shared
        .isolab_container(Variant::Full, &["/bin/true"])
        .and_then(|mut c| {
            c.prepare()?;
            Ok(Arc::new(c))
        });
    let crun_bundle = fixture::require("crun", "crun", "")
        .and_then(|_| Ok(path_str(&shared.fixture()?.bundle())));
    let mut plans = Vec::new();
    for n in scaling::LEVELS {
        for measure in [Measure::Latency, Measure::Memory] {
            for (name, target) in targets(shared, n, measure, &container, &crun_bundle) {
                plans.push(level_plan(n, measure, name, target));
            }
        }
    }
    plans
}

/// What runs `n` at a time for `measure`: the rows of one level, in order.
fn targets<'a>(
    shared: &'a Shared,
    n: usize,
    measure: Measure,
    container: &SharedContainer<'a>,
    crun_bundle: &Result<String, NotMeasured>,
) -> Vec<(&'static str, Result<Target<'a>, NotMeasured>)> {
    let crun = crun_bundle.clone().map(|bundle| Target::Command {
        argv: Box::new(move |round, i| {
            let id = format!("isolab-bench-scale-{}-{n}-{round}-{i}", std::process::id());
            fixture::peers::oci_run("crun", &bundle, &id)
        }),
        threads: Vec::new(),
    });
    let mut targets = vec![
        (
            Variant::Full.name(),
            container.clone().map(Target::Container),
        ),
        (
            "isolab-engine-microvm-stub",
            Ok(Target::MicroVm(StubOptions::default())),
        ),
        ("crun", crun),
    ];
    if measure == Measure::Latency {
        targets.extend(cli_targets(shared));
    }
    targets
}

/// One row of a level: `n` instances of `name` at once.
fn level_plan<'a>(
    n: usize,
    measure: Measure,
    name: &str,
    target: Result<Target<'a>, NotMeasured>,
) -> Plan<'a> {
    let (workload, unit) = match measure {
        Measure::Latency => (format!("true-x{n}"), Unit::Us),
        Measure::Memory => (format!("peak-memory-x{n}"), Unit::Bytes),
    };
    let workload = if name.contains("microvm-stub") {
        format!("stub-{workload}")
    } else {
        workload
    };
    let q = Question::Scaling;
    let plan = match target {
        Ok(target) => Plan::new(
            q,
            &workload,
            unit,
            Concurrent {
                name: name.into(),
                n,
                measure,
                target,
            },
        ),
        Err(reason) => Plan::not_measured(q, &workload, unit, name, reason),
    };
    let plan = match measure {
        Measure::Latency => plan.startup(false),
        Measure::Memory => plan,
    };
    let note = level_note(n, measure, name);
    if name.starts_with(crate::schema::ENGINE_PREFIX) {
        plan.note(&crate::startup::engine_note(&note))
    } else {
        plan.note(&note)
    }
}

/// What a level's row measures, in words.
fn level_note(n: usize, measure: Measure, name: &str) -> String {
    match (measure, name) {
        (Measure::Latency, _) => format!(
            "{n} started at once (a barrier releases {n} threads); mean per-instance launch → \
             exit; slowest/fastest in the phases"
        ),
        (Measure::Memory, "isolab-engine-microvm-stub") => format!(
            "{n} stub VMs at once in this process: how far its resident set rose (VmHWM after a \
             clear_refs reset); KVM's kernel-side memory (vCPU state, shadow page tables) is \
             not in it"
        ),
        (Measure::Memory, _) => format!(
            "{n} at once: the sum of their cgroups' peak charges + how far this process's \
             resident set rose (VmHWM after a clear_refs reset)"
        ),
    }
}

/// `isolab container run --rm` and `isolab vm run --guest stub:true` N at a time, as whole
/// processes (latency only: their memory is the memory question's).
fn cli_targets(shared: &Shared) -> Vec<(&'static str, Result<Target<'_>, NotMeasured>)> {
    let exe = shared.isolab_exe();
    let container = exe.clone().and_then(|exe| {
        let fx = shared.fixture()?;
        let argv = fixture::peers::isolab_container(&path_str(exe), &path_str(&fx.rootfs()));
        let home = fx.scratch().join("cli-home");
        Ok(Target::Process(
            Box::new(move |_, _| argv.clone()),
            vec![(isolab_container::image::HOME_ENV.into(), home.into())],
        ))
    });
    let vm = exe.map(|exe| {
        let argv = fixture::peers::isolab_vm_stub(&path_str(exe), "true");
        Target::Process(Box::new(move |_, _| argv.clone()), Vec::new())
    });
    vec![
        ("isolab-cli-container", container),
        ("isolab-cli-microvm-stub", vm),
    ]
}
