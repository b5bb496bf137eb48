//! Start-up (C1): launch → busybox `true` → exit, whole processes beside isolab's engine in-process.

use crate::environment::{
    self as env, Environment, HiddenCgroup2Thread, HostProcess, MicroVmStub, NotMeasured,
    PeerCommand, Sample, Unavailable, Variant,
};
use crate::fixture::{self};
use crate::linux_boot;
use crate::plan::Plan;
use crate::runner::RunConfig;
use crate::schema::{Question, Unit};
use crate::shared::{os, path_str, Shared};
use isolab_microvm::{StubOptions, Workload};
use std::path::PathBuf;

// ---- Startup -------------------------------------------------------------------------------

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
    match &shared.fixture {
        Some(fx) => plans.push(Plan::new(
            q,
            w,
            Unit::Us,
            HostProcess {
                argv: vec![fx.rootfs().join("bin/true").into()],
            },
        )),
        None => plans.push(
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
    plans.extend(peer_plans(shared, q, w, Unit::Us));
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
    let missing = |name: &str, workload: &str, reason: String| {
        Plan::new(
            q,
            workload,
            Unit::Us,
            Unavailable {
                name: name.into(),
                reason,
            },
        )
    };
    let Some(exe) = &shared.isolab_exe else {
        let why = "needs the isolab binary (run it as `isolab bench`)";
        return vec![
            missing("isolab-cli-container", "true", why.into()),
            missing("isolab-cli-microvm-stub", STUB_TRUE, why.into()),
        ];
    };
    let container = match &shared.fixture {
        None => missing(
            "isolab-cli-container",
            "true",
            shared.unavailable("").reason,
        ),
        Some(fx) => {
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
    let Some(fx) = shared.fixture.as_ref() else {
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
        Err(NotMeasured(reason)) => Plan::new(
            q,
            "true",
            Unit::Us,
            Unavailable {
                name: "gvisor".into(),
                reason,
            },
        ),
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
                isolab: shared.isolab_exe.clone(),
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
    let q = Question::Startup;
    let w = "linux-to-command-line";
    let cap = if config.quick {
        LINUX_BOOT_SAMPLES_QUICK
    } else {
        LINUX_BOOT_SAMPLES
    };
    let note = linux_boot::boot_note(shared.cpl0_native, &shared.cpl0_detail);
    let timeout = std::time::Duration::from_secs(90);
    let missing = |name: &str, reason: String| {
        Plan::new(
            q,
            w,
            Unit::Us,
            Unavailable {
                name: name.into(),
                reason,
            },
        )
    };
    let images = linux_boot::guest_images();
    let isolab = match (&images, &shared.isolab_exe) {
        (Err(reason), _) => missing("isolab-cli-microvm-linux", reason.clone()),
        (_, None) => missing(
            "isolab-cli-microvm-linux",
            "needs the isolab binary (run it as `isolab bench`)".into(),
        ),
        (Ok((kernel, initrd)), Some(exe)) => Plan::new(
            q,
            w,
            Unit::Us,
            linux_boot::TimeToConsoleLine {
                name: "isolab-cli-microvm-linux".into(),
                argv: linux_boot::isolab_argv(exe, kernel, initrd),
                timeout,
                stops_itself: true,
            },
        )
        .note(&format!(
            "{note}; includes stopping the VM (`vm run --until` prints the console when it stops)"
        ))
        .samples_cap(cap),
    };
    let qemu = match (&images, fixture::which("qemu-system-x86_64")) {
        (_, None) => missing(
            "qemu-microvm",
            "qemu-system-x86_64 not installed: apt-get install qemu-system-x86".into(),
        ),
        (Err(reason), _) => missing("qemu-microvm", reason.clone()),
        (Ok((kernel, initrd)), Some(_)) => Plan::new(
            q,
            w,
            Unit::Us,
            linux_boot::TimeToConsoleLine {
                name: "qemu-microvm".into(),
                argv: linux_boot::qemu_argv(kernel, initrd),
                timeout,
                stops_itself: false,
            },
        )
        .note(&format!(
            "{note}; `qemu-system-x86_64 -M microvm -cpu host,-arch-capabilities,-cx16 -m 256`, \
             killed after the line (outside the timing)"
        ))
        .samples_cap(cap),
    };
    vec![isolab, qemu]
}

/// crun, runc, bwrap, unshare and podman running busybox `true` from the same rootfs.
fn peer_plans<'a>(shared: &'a Shared, q: Question, w: &str, unit: Unit) -> Vec<Plan<'a>> {
    let mut plans = Vec::new();
    let missing = |name: &str, reason: String| {
        Plan::new(
            q,
            w,
            unit,
            Unavailable {
                name: name.into(),
                reason,
            },
        )
    };
    let Some(fx) = shared.fixture.as_ref() else {
        for name in ["crun", "runc", "bwrap", "unshare", "podman"] {
            plans.push(Plan::new(q, w, unit, shared.unavailable(name)));
        }
        return plans;
    };
    let bundle = path_str(&fx.bundle());
    let rootfs = path_str(&fx.rootfs());
    for runtime in ["crun", "runc"] {
        if fixture::which(runtime).is_none() {
            plans.push(missing(runtime, format!("{runtime} not installed")));
            continue;
        }
        let via = if runtime == "crun" {
            match shared.crun_via() {
                Ok(t) => Some(t),
                Err(e) => {
                    plans.push(missing(runtime, e.0));
                    continue;
                }
            }
        } else {
            None
        };
        let bundle = bundle.clone();
        plans.push(Plan::new(
            q,
            w,
            unit,
            PeerCommand {
                name: runtime.into(),
                argv: Box::new(move |i| {
                    let id = format!("isolab-bench-{}-{i}", std::process::id());
                    fixture::peers::oci_run(runtime, &bundle, &id)
                }),
                via,
                envs: Vec::new(),
            },
        ));
    }
    match fixture::which("bwrap") {
        None => plans.push(missing("bwrap", "bwrap (bubblewrap) not installed".into())),
        Some(_) => {
            let rootfs = rootfs.clone();
            plans.push(Plan::new(
                q,
                w,
                unit,
                PeerCommand {
                    name: "bwrap".into(),
                    argv: Box::new(move |_| fixture::peers::bwrap(&rootfs)),
                    via: None,
                    envs: Vec::new(),
                },
            ))
        }
    }
    match fixture::which("unshare") {
        None => plans.push(missing(
            "unshare",
            "unshare (util-linux) not installed".into(),
        )),
        Some(_) => {
            let rootfs = rootfs.clone();
            plans.push(
                Plan::new(
                    q,
                    w,
                    unit,
                    PeerCommand {
                        name: "unshare".into(),
                        argv: Box::new(move |_| fixture::peers::unshare(&rootfs)),
                        via: None,
                        envs: Vec::new(),
                    },
                )
                .note("unshare -fpmuin --root ROOTFS: namespaces + chroot, no cgroup"),
            )
        }
    }
    plans.push(match fixture::which("podman") {
        None => missing(
            "podman",
            "podman not installed: apt-get install podman".into(),
        ),
        Some(_) => match shared.crun_via() {
            Err(e) => missing("podman", e.0),
            Ok(via) => Plan::new(
                q,
                w,
                unit,
                Podman {
                    rootfs: fx.rootfs(),
                    tar: fx.scratch().join("rootfs.tar"),
                    image: format!("isolab-bench-{}", std::process::id()),
                    via,
                    imported: false,
                },
            )
            .note(
                "podman run --rm --network none of the same rootfs (podman import), with \
                 --cgroup-manager cgroupfs and nofile/nproc ulimits, from the thread that hides \
                 the cgroup2 mount (podman's crun refuses a hybrid layout otherwise)",
            ),
        },
    });
    plans
}

/// podman, the docker-compatible CLI, running the same rootfs as an imported image.
///
/// No registry: `podman import` turns a tar of the bench rootfs into an image (outside the
/// timing). On a hybrid cgroup host without systemd podman needs `--cgroup-manager cgroupfs`,
/// explicit `nofile`/`nproc` ulimits (it refuses to copy the host's), and — since it runs
/// crun — the cgroup2 mount hidden, so it is started from [`HiddenCgroup2Thread`].
struct Podman<'a> {
    rootfs: PathBuf,
    tar: PathBuf,
    image: String,
    via: &'a HiddenCgroup2Thread,
    imported: bool,
}

impl Environment for Podman<'_> {
    fn name(&self) -> String {
        "podman".into()
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        env::time_command(
            std::process::Command::new("tar")
                .arg("-C")
                .arg(&self.rootfs)
                .arg("-cf")
                .arg(&self.tar)
                .arg("."),
        )?;
        let mut argv = os(&["podman", "import"]);
        argv.push(self.tar.clone().into());
        argv.push(self.image.clone().into());
        self.via.run(argv)?;
        self.imported = true;
        Ok(())
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let argv = os(&[
            "podman",
            "--cgroup-manager",
            "cgroupfs",
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            &self.image,
            "/bin/true",
        ]);
        self.via.run(argv).map(|c| Sample::value(c.wall_us))
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        if self.imported {
            let _ = self.via.run(os(&["podman", "rmi", "--force", &self.image]));
        }
        let _ = std::fs::remove_file(&self.tar);
    }
}
