//! The one root filesystem every environment runs: a busybox rootfs plus an OCI bundle.
//!
//! A fair comparison runs the *same bytes* everywhere. So the host row executes the rootfs's
//! own busybox, isolab's containers use the rootfs directory (or stack it as an overlay lower
//! layer), and crun, runc and bubblewrap get the OCI bundle that wraps the very same directory.
//! Building it (copying busybox, writing `config.json` with `crun spec`) is heavy and happens
//! once, outside any timing. The [`crate::probes`] programs are written into `/probes/` of the
//! rootfs, so host and container exec the identical file.

use crate::not_measured::NotMeasured;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the container rows cannot run here, if they cannot.
pub fn container_refusal() -> Option<NotMeasured> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some(NotMeasured::NeedsRoot);
    }
    if !Path::new("/bin/busybox").exists() {
        return Some(NotMeasured::ToolMissing {
            tool: "busybox (/bin/busybox)",
            fix: "apt-get install busybox-static (scripts/setup.sh)",
        });
    }
    None
}

/// [`container_refusal`] as text, for front ends that only print it.
pub fn container_skip_reason() -> Option<String> {
    container_refusal().map(|r| r.to_string())
}

/// `program` on PATH, or [`NotMeasured::ToolMissing`] naming `tool` with the `fix`.
pub fn require(
    program: &str,
    tool: &'static str,
    fix: &'static str,
) -> Result<PathBuf, NotMeasured> {
    which(program).ok_or(NotMeasured::ToolMissing { tool, fix })
}

/// QEMU, for the rows that boot the same image in it.
pub fn require_qemu() -> Result<PathBuf, NotMeasured> {
    require(
        "qemu-system-x86_64",
        "qemu-system-x86_64",
        "apt-get install qemu-system-x86",
    )
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A busybox rootfs plus an OCI bundle pointing at it; removed when dropped.
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Builds the rootfs and bundle in a fresh temporary directory.
    pub fn new() -> std::io::Result<Fixture> {
        let dir = tempfile::Builder::new().prefix("isolab-bench-").tempdir()?;
        let f = Fixture { dir };
        let rootfs = f.rootfs();
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "probes"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::create_dir_all(f.scratch())?;
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
        let list = Command::new("/bin/busybox").arg("--list").output()?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        f.write_bundle_config()?;
        Ok(f)
    }

    /// The temporary directory holding everything.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs directory (the bundle's `root.path`).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    /// The OCI bundle directory.
    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    /// Scratch space for per-start overlay dirs and state.
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

/// The peers' command lines, defined once so `isolab bench` and `cargo bench` run exactly the
/// same thing against the same rootfs and bundle.
pub mod peers {
    use std::ffi::OsString;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// `crun run` / `runc run`: create, start, wait for and delete container `id`.
    pub fn oci_run(runtime: &str, bundle: &str, id: &str) -> Vec<OsString> {
        os(&[runtime, "run", "--bundle", bundle, id])
    }

    /// bubblewrap on the rootfs: every namespace, a fresh /proc and /dev.
    pub fn bwrap(rootfs: &str) -> Vec<OsString> {
        os(&[
            "bwrap",
            "--unshare-all",
            "--bind",
            rootfs,
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "/bin/true",
        ])
    }

    /// `isolab container run --rm` on the rootfs directory (no overlay, like the bundle the
    /// OCI runtimes get), as a user would type it.
    pub fn isolab_container(isolab: &str, rootfs: &str) -> Vec<OsString> {
        os(&[
            isolab,
            "container",
            "run",
            "--rm",
            "--rootfs",
            rootfs,
            "--",
            "/bin/true",
        ])
    }

    /// `isolab vm run` of the stub guest with `workload`, in the stub's default 64 MiB.
    pub fn isolab_vm_stub(isolab: &str, workload: &str) -> Vec<OsString> {
        os(&[
            isolab,
            "vm",
            "run",
            "--guest",
            &format!("stub:{workload}"),
            "--memory",
            "64M",
        ])
    }

    /// util-linux unshare: the namespaces and a chroot into the rootfs, no cgroup.
    pub fn unshare(rootfs: &str) -> Vec<OsString> {
        os(&["unshare", "-fpmuin", "--root", rootfs, "/bin/true"])
    }
}
