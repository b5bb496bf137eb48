//! Start-up (C1): launch → busybox `true` → exit, whole processes beside isolab's engine in-process.

//!
//! One row per way a user can start a container or a VM: the host process as the baseline;
//! isolab's CLI; crun, runc, bubblewrap, unshare, podman, docker and gVisor; isolab's VMM and
//! QEMU booting the same images. isolab's engine also runs in-process, one row per isolation
//! feature, as the breakdown of where its time goes.

use crate::environment::{HostProcess, MicroVmStub, NotMeasured, PeerCommand, Variant};
use crate::fixture::{self, Fixture};
use crate::linux_boot;
use crate::plan::Plan;
use crate::podman::Podman;
use crate::runner::RunConfig;
use crate::schema::{Question, Unit};
use crate::shared::{os, path_str, Shared};
use isolab_microvm::{StubOptions, Workload};
use std::ffi::OsString;

/// The stub guest's workload: its first instruction exits. Not busybox `true` (no exec, no
/// rootfs), so never compared with the container rows' `true`.
pub const STUB_TRUE: &str = "stub-true";

/// The note on every in-process row.
pub(crate) fn engine_note(what: &str) -> String {
    format!(
        "isolab's library inside the bench process (where the time goes), not a launch a user \
         sees: {what}"
    )
}

pub(crate) fn startup_plans<'a>(shared: &'a Shared, config: &RunConfig) -> Vec<Plan<'a>> {
    let q = Question::Startup;
    let w = "true";
    let mut plans = Vec::new();
    match shared.fixture() {
        Ok(fx) => plans.push(Plan::new(
            q,
            w,
            Unit::Us,
            HostProcess {
                argv: vec![fx.rootfs().join("bin/true").into()],
            },
        )),
        Err(_) => plans.push(
            Plan::new(
                q,
                w,
                Unit::Us,
                HostProcess {
                    argv: os(&["/bin/true"]),
                },
            )
            .note("no bench rootfs: the host's /bin/true"),
        ),
    }
    for variant in Variant::ALL {
        plans.push(
            Plan::boxed(q, w, Unit::Us, shared.container(variant, &["/bin/true"]))
                .note(&engine_note(variant.feature())),
        );
    }
    plans.extend(isolab_cli_plans(shared, q));
    plans.extend(peer_plans(shared));
    plans.extend(crate::oci_runtime::plans(shared));
    plans.extend(docker_and_gvisor_plans(shared, q));
    let vm = MicroVmStub {
        name: "isolab-engine-microvm-stub".into(),
        workload: Workload::True,
        options: StubOptions::default(),
    };
    plans.push(Plan::new(q, STUB_TRUE, Unit::Us, vm).note(&engine_note(
        "KVM VM create → the stub guest's first instruction → exit → teardown",
    )));
    plans.extend(pvh_stub_plans(shared));
    plans.extend(linux_boot_plans(shared, config));
    plans
}

/// `isolab container run --rm` and `isolab vm run --guest stub:true` as whole processes,
/// spawned and waited for by the same code as every peer.
fn isolab_cli_plans<'a>(shared: &'a Shared, q: Question) -> Vec<Plan<'a>> {
    let missing = |name: &str, workload: &str, reason: NotMeasured| {
        Plan::not_measured(q, workload, Unit::Us, name, reason)
    };
    let exe = match shared.isolab_exe() {
        Ok(exe) => exe,
        Err(why) => {
            return vec![
                missing("isolab-cli-container", "true", why.clone()),
                missing("isolab-cli-microvm-stub", STUB_TRUE, why),
            ]
        }
    };
    let container = match shared.fixture() {
        Err(reason) => missing("isolab-cli-container", "true", reason),
        Ok(fx) => {
            let argv = fixture::peers::isolab_container(&path_str(exe), &path_str(&fx.rootfs()));
            Plan::new(
                q,
                "true",
                Unit::Us,
                PeerCommand {
                    name: "isolab-cli-container".into(),
                    argv: Box::new(move |_| argv.clone()),
                    via: None,
                    envs: vec![(
                        isolab_container::image::HOME_ENV.into(),
                        fx.scratch().join("cli-home").into(),
                    )],
                },
            )
            .note(
                "`isolab container run --rm --rootfs ROOTFS -- /bin/true`: the CLI as a user \
                 launches it (its defaults: docker's six namespaces, a cgroup, pivot_root), \
                 with its state store in a scratch ISOLAB_HOME",
            )
        }
    };
    let argv = fixture::peers::isolab_vm_stub(&path_str(exe), "true");
    let vm = Plan::new(
        q,
        STUB_TRUE,
        Unit::Us,
        PeerCommand {
            name: "isolab-cli-microvm-stub".into(),
            argv: Box::new(move |_| argv.clone()),
            via: None,
            envs: Vec::new(),
        },
    )
    .note(
        "`isolab vm run --guest stub:true --memory 64M`: exec → VM → the stub's first \
         instruction exits → teardown → process exit",
    );
    vec![container, vm]
}

/// `docker run` and gVisor's `runsc run` of busybox `true` on the same rootfs.
fn docker_and_gvisor_plans(shared: &Shared, q: Question) -> Vec<Plan<'_>> {
    let Ok(fx) = shared.fixture() else {
        return ["docker", "gvisor"]
            .into_iter()
            .map(|name| Plan::new(q, "true", Unit::Us, shared.unavailable(name)))
            .collect();
    };
    let docker = Plan::new(
        q,
        "true",
        Unit::Us,
        crate::docker::DockerRun::new(fx.rootfs(), fx.scratch()),
    )
    .note(
        "docker run --rm --network none of the same rootfs (docker import): client → dockerd \
         → containerd → shim → runc; a private dockerd (cgroupfs driver, no bridge) when none \
         was running, stopped after",
    );
    let gvisor = match crate::gvisor::available() {
        Err(reason) => Plan::not_measured(q, "true", Unit::Us, "gvisor", reason),
        Ok(_) => {
            let (bundle, state) = (fx.bundle(), fx.scratch().join("runsc"));
            Plan::new(
                q,
                "true",
                Unit::Us,
                PeerCommand {
                    name: "gvisor".into(),
                    argv: Box::new(move |i| {
                        let id = crate::gvisor::sandbox_id("true", i);
                        crate::gvisor::run_argv(&state, &bundle, &id)
                    }),
                    via: None,
                    envs: Vec::new(),
                },
            )
            .note(
                "runsc --network=none --ignore-cgroups --platform=ptrace run on crun's bundle: \
                 the workload's system calls served by gVisor's user-space kernel",
            )
        }
    };
    vec![docker, gvisor]
}

/// isolab's VMM and QEMU booting the same PVH stub image, as whole processes.
fn pvh_stub_plans(shared: &Shared) -> Vec<Plan<'_>> {
    use crate::vmm_compare::{PvhStub, Vmm, PVH_STUB};
    let scratch = match shared.fixture() {
        Ok(fx) => fx.scratch(),
        Err(_) => {
            return ["isolab-cli-microvm-stub", "qemu-microvm-stub"]
                .into_iter()
                .map(|name| {
                    Plan::new(
                        Question::Startup,
                        PVH_STUB,
                        Unit::Us,
                        shared.unavailable(name),
                    )
                })
                .collect()
        }
    };
    [Vmm::Isolab, Vmm::Qemu]
        .into_iter()
        .map(|vmm| {
            let env = PvhStub {
                vmm,
                isolab: shared.isolab_exe().ok().map(std::path::Path::to_path_buf),
                image: scratch.join("stub-pvh.elf"),
            };
            Plan::new(Question::Startup, PVH_STUB, Unit::Us, env).note(match vmm {
                Vmm::Isolab => {
                    "`isolab vm run --kernel stub-pvh.elf --debug-exit --memory 64M`: the PVH \
                     stub QEMU boots too — process start → guest → isa-debug-exit → process exit"
                }
                Vmm::Qemu => {
                    "`qemu-system-x86_64 -M microvm -accel kvm -m 64M -device isa-debug-exit \
                     -kernel stub-pvh.elf`: the same image, the same exit"
                }
            })
        })
        .collect()
}

/// Samples of a Linux boot row (each one is a whole VM boot to the banner, ~0.6 s here).
const LINUX_BOOT_SAMPLES: usize = 5;
const LINUX_BOOT_SAMPLES_QUICK: usize = 3;

/// isolab's VMM and QEMU's microvm machine booting the same Linux kernel to its banner.
fn linux_boot_plans<'a>(shared: &'a Shared, config: &RunConfig) -> Vec<Plan<'a>> {
    let (q, w) = (Question::Startup, "linux-to-command-line");
    let cap = if config.quick {
        LINUX_BOOT_SAMPLES_QUICK
    } else {
        LINUX_BOOT_SAMPLES
    };
    let note = linux_boot::boot_note(shared.cpl0_native, &shared.cpl0_detail);
    let images = linux_boot::guest_images();
    let isolab = images.clone().and_then(|(kernel, initrd)| {
        Ok(linux_boot::isolab_argv(
            shared.isolab_exe()?,
            &kernel,
            &initrd,
        ))
    });
    let qemu = fixture::require_qemu()
        .and_then(|_| images.map(|(kernel, initrd)| linux_boot::qemu_argv(&kernel, &initrd)));
    let vmms = [
        (
            "isolab-cli-microvm-linux",
            isolab,
            true,
            "includes stopping the VM (`vm run --until` prints the console when it stops)",
        ),
        (
            "qemu-microvm",
            qemu,
            false,
            "`qemu-system-x86_64 -M microvm -cpu host,-arch-capabilities,-cx16 -m 256`, \
             killed after the line (outside the timing)",
        ),
    ];
    vmms.into_iter()
        .map(|(name, argv, stops_itself, how)| match argv {
            Err(reason) => Plan::not_measured(q, w, Unit::Us, name, reason),
            Ok(argv) => Plan::new(
                q,
                w,
                Unit::Us,
                linux_boot::TimeToConsoleLine {
                    name: name.into(),
                    argv,
                    timeout: std::time::Duration::from_secs(90),
                    stops_itself,
                },
            )
            .note(&format!("{note}; {how}"))
            .samples_cap(cap),
        })
        .collect()
}

/// A peer that runs busybox `true` from the bench rootfs as one command line.
struct PeerCli {
    /// Row name (and the program looked up on PATH).
    name: &'static str,
    /// The program as a user knows it, for "not installed".
    tool: &'static str,
    /// Launched from the thread that hides the cgroup2 mount (crun refuses a hybrid layout).
    via_crun_thread: bool,
    /// The command line for launch `i` on the bundle and rootfs.
    argv: fn(&RootfsPaths, usize) -> Vec<OsString>,
    note: Option<&'static str>,
}

/// The bench bundle and its rootfs, as command-line text.
#[derive(Clone)]
struct RootfsPaths {
    bundle: String,
    rootfs: String,
}

/// A fresh container id per launch: runtimes refuse to reuse a live one.
fn oci_id(i: usize) -> String {
    format!("isolab-bench-{}-{i}", std::process::id())
}

const PEER_CLIS: [PeerCli; 4] = [
    PeerCli {
        name: "crun",
        tool: "crun",
        via_crun_thread: true,
        argv: |p, i| fixture::peers::oci_run("crun", &p.bundle, &oci_id(i)),
        note: None,
    },
    PeerCli {
        name: "runc",
        tool: "runc",
        via_crun_thread: false,
        argv: |p, i| fixture::peers::oci_run("runc", &p.bundle, &oci_id(i)),
        note: None,
    },
    PeerCli {
        name: "bwrap",
        tool: "bwrap (bubblewrap)",
        via_crun_thread: false,
        argv: |p, _| fixture::peers::bwrap(&p.rootfs),
        note: None,
    },
    PeerCli {
        name: "unshare",
        tool: "unshare (util-linux)",
        via_crun_thread: false,
        argv: |p, _| fixture::peers::unshare(&p.rootfs),
        note: Some("unshare -fpmuin --root ROOTFS: namespaces + chroot, no cgroup"),
    },
];

/// crun, runc, bwrap, unshare and podman running busybox `true` from the same rootfs.
fn peer_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let (q, w, unit) = (Question::Startup, "true", Unit::Us);
    let Ok(fx) = shared.fixture() else {
        return ["crun", "runc", "bwrap", "unshare", "podman"]
            .into_iter()
            .map(|name| Plan::new(q, w, unit, shared.unavailable(name)))
            .collect();
    };
    let paths = RootfsPaths {
        bundle: path_str(&fx.bundle()),
        rootfs: path_str(&fx.rootfs()),
    };
    let mut plans: Vec<Plan<'_>> = PEER_CLIS
        .iter()
        .map(|peer| match peer_command(shared, peer, paths.clone()) {
            Ok(env) => {
                let plan = Plan::new(q, w, unit, env);
                match peer.note {
                    Some(note) => plan.note(note),
                    None => plan,
                }
            }
            Err(reason) => Plan::not_measured(q, w, unit, peer.name, reason),
        })
        .collect();
    plans.push(podman_plan(shared, fx));
    plans
}

/// `peer` as an environment, or why it cannot run here.
fn peer_command<'a>(
    shared: &'a Shared,
    peer: &'static PeerCli,
    paths: RootfsPaths,
) -> Result<PeerCommand<'a>, NotMeasured> {
    fixture::which(peer.name).ok_or(NotMeasured::ToolMissing {
        tool: peer.tool,
        fix: "",
    })?;
    let via = match peer.via_crun_thread {
        true => Some(shared.crun_via()?),
        false => None,
    };
    Ok(PeerCommand {
        name: peer.name.into(),
        argv: Box::new(move |i| (peer.argv)(&paths, i)),
        via,
        envs: Vec::new(),
    })
}

/// podman on an image imported from the bench rootfs, from the crun thread.
fn podman_plan<'a>(shared: &'a Shared, fx: &Fixture) -> Plan<'a> {
    let (q, w, unit) = (Question::Startup, "true", Unit::Us);
    let via = fixture::which("podman")
        .ok_or(NotMeasured::ToolMissing {
            tool: "podman",
            fix: "apt-get install podman",
        })
        .and_then(|_| shared.crun_via());
    match via {
        Err(reason) => Plan::not_measured(q, w, unit, "podman", reason),
        Ok(via) => Plan::new(q, w, unit, Podman::new(fx, via)).note(
            "podman run --rm --network none of the same rootfs (podman import), with \
             --cgroup-manager cgroupfs and nofile/nproc ulimits, from the thread that hides \
             the cgroup2 mount (podman's crun refuses a hybrid layout otherwise)",
        ),
    }
}
