//! gVisor (`runsc`): a third isolation level between a container and a VM.
//!
//! A container's system calls go straight to the host kernel; a VM's go to its own kernel
//! behind hardware virtualisation. gVisor puts a kernel written in Go (the Sentry) in user
//! space between the two: on its `ptrace` platform every system call of the workload stops the
//! thread, the Sentry serves it, and only the Sentry's own narrow set of calls reaches the
//! host. So its start-up, its cost per system call and its CPU-bound speed are three different
//! stories — and its `uname -r` is gVisor's, not the host's.
//!
//! It runs the very OCI bundle crun runs (a copy with the workload's arguments swapped in),
//! with `--network=none` (the others' loopback-only network) and `--ignore-cgroups` (runsc's
//! cgroup set-up expects a layout this host does not have). Its state goes to a scratch
//! directory, never to `/var/run/runsc`. Its `kvm` platform is not used: it needs a KVM that
//! runs guest kernel mode natively.

use crate::environment::NotMeasured;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Whether runsc is installed, with the fix when it is not.
pub fn available() -> Result<PathBuf, NotMeasured> {
    crate::fixture::require(
        "runsc",
        "runsc (gVisor)",
        "apt-get install runsc (scripts/setup.sh)",
    )
}

/// `runsc … run -bundle BUNDLE ID`: create, start, wait for and delete sandbox `id`.
pub fn run_argv(state: &Path, bundle: &Path, id: &str) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "runsc".into(),
        "--root".into(),
        state.into(),
        "--network=none".into(),
        "--ignore-cgroups".into(),
        "--platform=ptrace".into(),
        "run".into(),
        "-bundle".into(),
    ];
    argv.push(bundle.into());
    argv.push(id.into());
    argv
}

/// A copy of the bench bundle's `config.json` in `dir`, running `args` on the same rootfs.
pub fn bundle_running(
    base: &Path,
    rootfs: &Path,
    dir: &Path,
    args: &[&str],
) -> Result<PathBuf, NotMeasured> {
    let text = std::fs::read_to_string(base.join("config.json"))
        .map_err(NotMeasured::io("reading the bench bundle's config.json"))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(NotMeasured::json("the bench bundle's config.json"))?;
    config["process"]["args"] = serde_json::json!(args);
    config["root"]["path"] = serde_json::json!(rootfs);
    std::fs::create_dir_all(dir).map_err(NotMeasured::io(format!("creating {}", dir.display())))?;
    let bytes = serde_json::to_vec_pretty(&config)
        .map_err(NotMeasured::json("the gVisor bundle's config.json"))?;
    std::fs::write(dir.join("config.json"), bytes)
        .map_err(NotMeasured::io(format!("writing {}", dir.display())))?;
    Ok(dir.to_path_buf())
}

/// A fresh sandbox id for launch `index` of row `what`.
pub fn sandbox_id(what: &str, index: usize) -> String {
    format!("isolab-bench-{what}-{}-{index}", std::process::id())
}
