//! Scaling rows: isolab's container, its microVM and crun started 1, 2, 4, 8 at once.

use crate::environment::{Environment, IsolabContainer, NotMeasured, Unavailable, Variant};
use crate::fixture::{self};
use crate::plan::Plan;
use crate::scaling::{self, Concurrent, Measure, Target};
use crate::schema::{Question, Unit};
use crate::shared::{path_str, Shared};
use isolab_microvm::StubOptions;

// ---- Scaling ------------------------------------------------------------------------------

/// isolab's full container, the stub microVM and crun, started 1, 2, 4, 8 at a time.
pub(crate) fn scaling_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Scaling;
    let mut plans = Vec::new();
    // One prepared container serves every level: preparing once keeps one bridge anchor.
    let container: Result<std::sync::Arc<IsolabContainer<'_>>, NotMeasured> =
        match (shared.base_spec(&["/bin/true"]), &shared.fixture) {
            (Err(reason), _) => Err(NotMeasured(reason)),
            (_, None) => Err(NotMeasured(shared.unavailable("").reason)),
            (Ok(spec), Some(fx)) => {
                let mut c = IsolabContainer::new(
                    Variant::Full,
                    spec,
                    fx.rootfs(),
                    fx.scratch(),
                    shared.cgroups.as_ref(),
                );
                c.prepare().map(|()| std::sync::Arc::new(c))
            }
        };
    let crun = match (fixture::which("crun"), &shared.fixture) {
        (None, _) => Err(NotMeasured("crun not installed".into())),
        (_, None) => Err(NotMeasured(shared.unavailable("").reason)),
        (Some(_), Some(fx)) => Ok(path_str(&fx.bundle())),
    };
    for n in scaling::LEVELS {
        for measure in [Measure::Latency, Measure::Memory] {
            let (workload, unit) = match measure {
                Measure::Latency => (format!("true-x{n}"), Unit::Us),
                Measure::Memory => (format!("peak-memory-x{n}"), Unit::Bytes),
            };
            let stub_workload = format!("stub-{workload}");
            let mut targets: Vec<(&str, Result<Target<'_>, NotMeasured>)> = vec![
                (
                    Variant::Full.name(),
                    container.clone().map(Target::Container),
                ),
                (
                    "isolab-engine-microvm-stub",
                    Ok(Target::MicroVm(StubOptions::default())),
                ),
                (
                    "crun",
                    crun.clone().map(|bundle| Target::Command {
                        argv: Box::new(move |round, i| {
                            let id = format!(
                                "isolab-bench-scale-{}-{n}-{round}-{i}",
                                std::process::id()
                            );
                            fixture::peers::oci_run("crun", &bundle, &id)
                        }),
                        threads: Vec::new(),
                    }),
                ),
            ];
            if measure == Measure::Latency {
                targets.extend(cli_targets(shared));
            }
            for (name, target) in targets {
                let note = match (measure, name) {
                    (Measure::Latency, _) => format!(
                        "{n} started at once (a barrier releases {n} threads); mean \
                         per-instance launch → exit; slowest/fastest in the phases"
                    ),
                    (Measure::Memory, "isolab-engine-microvm-stub") => format!(
                        "{n} stub VMs at once in this process: how far its resident set rose \
                         (VmHWM after a clear_refs reset); KVM's kernel-side memory (vCPU \
                         state, shadow page tables) is not in it"
                    ),
                    (Measure::Memory, _) => format!(
                        "{n} at once: the sum of their cgroups' peak charges + how far this \
                         process's resident set rose (VmHWM after a clear_refs reset)"
                    ),
                };
                let workload = if name.contains("microvm-stub") {
                    &stub_workload
                } else {
                    &workload
                };
                let plan = match target {
                    Ok(target) => Plan::new(
                        q,
                        workload,
                        unit,
                        Concurrent {
                            name: name.into(),
                            n,
                            measure,
                            target,
                        },
                    ),
                    Err(NotMeasured(reason)) => Plan::new(
                        q,
                        workload,
                        unit,
                        Unavailable {
                            name: name.into(),
                            reason,
                        },
                    ),
                };
                let plan = match measure {
                    Measure::Latency => plan.startup(false),
                    Measure::Memory => plan,
                };
                let note = if name.starts_with(crate::schema::ENGINE_PREFIX) {
                    crate::startup::engine_note(&note)
                } else {
                    note
                };
                plans.push(plan.note(&note));
            }
        }
    }
    plans
}

/// `isolab container run --rm` and `isolab vm run --guest stub:true` N at a time, as whole
/// processes (latency only: their memory is the memory question's).
fn cli_targets(shared: &Shared) -> Vec<(&'static str, Result<Target<'_>, NotMeasured>)> {
    let exe = shared
        .isolab_exe
        .clone()
        .ok_or_else(|| NotMeasured("needs the isolab binary (run it as `isolab bench`)".into()));
    let container = exe.clone().and_then(|exe| {
        let fx = shared.fixture()?;
        let argv = fixture::peers::isolab_container(&path_str(&exe), &path_str(&fx.rootfs()));
        let home = fx.scratch().join("cli-home");
        Ok(Target::Process(
            Box::new(move |_, _| argv.clone()),
            vec![(isolab_container::image::HOME_ENV.into(), home.into())],
        ))
    });
    let vm = exe.map(|exe| {
        let argv = fixture::peers::isolab_vm_stub(&path_str(&exe), "true");
        Target::Process(Box::new(move |_, _| argv.clone()), Vec::new())
    });
    vec![
        ("isolab-cli-container", container),
        ("isolab-cli-microvm-stub", vm),
    ]
}
