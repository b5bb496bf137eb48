//! Fixtures shared by the benches: the same rootfs and OCI bundle for isolab and its peers.
//!
//! Heavy setup happens here, outside any timing: building a busybox rootfs, writing an OCI
//! bundle with `crun spec`, and (as root on a hybrid cgroup host) entering a private mount
//! namespace where the near-empty cgroup2 mount is hidden, because crun refuses to run with it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Returns why the container benches cannot run here, if they cannot.
pub fn container_skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root: namespaces, cgroups and mounts need root".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing: run scripts/setup.sh".into());
    }
    None
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Hides /sys/fs/cgroup/unified in a private mount namespace for this process and its children.
///
/// On a hybrid host crun refuses to start containers while that mount exists; hiding it for
/// the whole bench process (instead of wrapping every crun call in `unshare -m sh -c umount`)
/// keeps that work out of crun's timings. isolab sees the same v1 hierarchies either way.
pub fn hide_cgroup2_mount_for_crun() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.exists() {
        return;
    }
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
        return;
    }
    let _ = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    );
    let _ = umount2(unified, MntFlags::MNT_DETACH);
}

/// A busybox rootfs plus an OCI bundle pointing at it.
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> std::io::Result<Fixture> {
        let dir = tempfile::Builder::new().prefix("isolab-bench-").tempdir()?;
        let rootfs = dir.path().join("bundle/rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
        let list = Command::new("/bin/busybox").arg("--list").output()?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        let f = Fixture { dir };
        f.write_bundle_config()?;
        Ok(f)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    /// A scratch dir for per-iteration overlay dirs.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// `crun spec` (or runc's) with args = ["/bin/true"] and no terminal; a minimal hand-written
    /// spec when neither is installed.
    fn write_bundle_config(&self) -> std::io::Result<()> {
        let bundle = self.bundle();
        let generator = ["crun", "runc"].into_iter().find(|p| which(p).is_some());
        let mut config: serde_json::Value = match generator {
            Some(tool) => {
                let status = Command::new(tool)
                    .arg("spec")
                    .current_dir(&bundle)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?;
                if !status.success() {
                    return Err(std::io::Error::other(format!("{tool} spec failed")));
                }
                let text = std::fs::read_to_string(bundle.join("config.json"))?;
                serde_json::from_str(&text).map_err(std::io::Error::other)?
            }
            None => serde_json::json!({
                "ociVersion": "1.0.2",
                "process": {"cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
                "root": {"path": "rootfs"},
                "linux": {"namespaces": [
                    {"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                    {"type": "ipc"}, {"type": "network"}]}
            }),
        };
        config["process"]["args"] = serde_json::json!(["/bin/true"]);
        config["process"]["terminal"] = serde_json::json!(false);
        config["root"]["readonly"] = serde_json::json!(false);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).map_err(std::io::Error::other)?,
        )
    }
}

/// Runs a command with all stdio closed, panicking with its stderr if it fails.
pub fn run_quiet(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawning a peer");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
