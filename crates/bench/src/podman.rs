//! podman as a start-up peer: the docker-compatible CLI, daemonless, on the same rootfs.

use crate::environment::{self as env, Environment, HiddenCgroup2Thread, NotMeasured, Sample};
use crate::fixture::Fixture;
use crate::shared::os;
use std::path::PathBuf;

/// podman, the docker-compatible CLI, running the same rootfs as an imported image.
///
/// No registry: `podman import` turns a tar of the bench rootfs into an image (outside the
/// timing). On a hybrid cgroup host without systemd podman needs `--cgroup-manager cgroupfs`,
/// explicit `nofile`/`nproc` ulimits (it refuses to copy the host's), and — since it runs
/// crun — the cgroup2 mount hidden, so it is started from [`HiddenCgroup2Thread`].
pub(crate) struct Podman<'a> {
    /// `--runtime` for podman (None: its default, crun).
    runtime: Option<PathBuf>,
    rootfs: PathBuf,
    tar: PathBuf,
    image: String,
    via: &'a HiddenCgroup2Thread,
    imported: bool,
}

impl<'a> Podman<'a> {
    /// podman on the bench rootfs, launched from `via`; nothing happens until `prepare`.
    pub(crate) fn new(fx: &Fixture, via: &'a HiddenCgroup2Thread) -> Self {
        Podman {
            runtime: None,
            rootfs: fx.rootfs(),
            tar: fx.scratch().join("rootfs.tar"),
            image: format!("isolab-bench-{}", std::process::id()),
            via,
            imported: false,
        }
    }
}

impl Podman<'_> {
    /// The same, with podman driving `runtime` (an OCI runtime binary) instead of crun: the
    /// whole stack a podman user sees, only the runtime swapped.
    pub(crate) fn with_runtime(mut self, runtime: PathBuf) -> Self {
        self.image = format!("{}-{}", self.image, "rt");
        self.tar = self.tar.with_file_name("rootfs-rt.tar");
        self.runtime = Some(runtime);
        self
    }
}

impl Environment for Podman<'_> {
    fn name(&self) -> String {
        match &self.runtime {
            None => "podman".into(),
            Some(_) => "podman-isolab-runtime".into(),
        }
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
        let mut argv = os(&["podman"]);
        if let Some(runtime) = &self.runtime {
            argv.push("--runtime".into());
            argv.push(runtime.clone().into());
        }
        argv.extend(os(&[
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
        ]));
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
