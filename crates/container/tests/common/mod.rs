//! Shared fixtures: a busybox layer built once per test binary, and a per-test sandbox.
#![allow(dead_code)]

use isolab_container::rootfs::OverlayDirs;
use isolab_container::spawn::{self, RunContext, RunOutcome};
use isolab_container::{BindMount, ContainerSpec, RootfsSource};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Returns false (and says why) when the test cannot run here.
pub fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (namespaces, cgroups, mounts)");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (run scripts/setup.sh)");
        return false;
    }
    true
}

static LAYER: OnceLock<PathBuf> = OnceLock::new();

/// Removes the shared layer when the test binary exits (a static is never dropped).
extern "C" fn remove_busybox_layer() {
    if let Some(dir) = LAYER.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A read-only layer with a static busybox and its applets, shared by every test of this
/// binary and removed when it exits.
pub fn busybox_layer() -> &'static Path {
    LAYER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("isolab-test-layer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "out"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
            }
        }
        std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        // SAFETY: registers a function without captured state, run once by exit(3) after
        // every test has finished.
        unsafe { libc::atexit(remove_busybox_layer) };
        dir
    })
}

/// A temp dir holding one container's overlay dirs and an `out` dir bind-mounted at /out.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        for d in ["upper", "work", "merged", "out"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        Sandbox { tmp }
    }

    pub fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    pub fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }

    pub fn overlay(&self) -> OverlayDirs {
        OverlayDirs::on_disk(
            self.tmp.path().join("upper"),
            self.tmp.path().join("work"),
            self.tmp.path().join("merged"),
        )
    }

    /// A spec running `sh -c script` on the busybox layer with /out bound to [`Self::out`].
    pub fn spec(&self, script: &str) -> ContainerSpec {
        let mut spec = ContainerSpec::new(
            RootfsSource::Layers(vec![busybox_layer().to_path_buf()]),
            vec!["sh".into(), "-c".into(), script.into()],
        );
        spec.mounts.push(BindMount {
            source: self.out(),
            destination: "/out".into(),
            readonly: false,
            filesystem: None,
        });
        spec
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out().join(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

pub fn unique_id(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `spec` in `sandbox` with a real cgroup from the host's hierarchy.
pub fn run_in(sandbox: &Sandbox, spec: &ContainerSpec, tag: &str) -> RunOutcome {
    try_run_in(sandbox, spec, tag).expect("container run failed")
}

pub fn try_run_in(
    sandbox: &Sandbox,
    spec: &ContainerSpec,
    tag: &str,
) -> Result<RunOutcome, spawn::SpawnError> {
    let cgroups = isolab_cgroups::CgroupRoot::detect().expect("detecting cgroups");
    let mut ctx = RunContext::new(unique_id(tag));
    ctx.cgroups = Some(&cgroups);
    ctx.overlay = Some(sandbox.overlay());
    spawn::run(spec, ctx)
}
