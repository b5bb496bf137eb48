//! The thread crun is launched from: its own mount namespace, without the cgroup2 mount.

use super::{run_command, CommandCost, NotMeasured};
use std::ffi::OsString;
use std::process::Command;
use std::sync::mpsc;

/// Work for the thread: a closure run there (it answers through a channel it captured).
type Job = Box<dyn FnOnce() + Send>;

/// A thread in its own mount namespace where `/sys/fs/cgroup/unified` is unmounted.
///
/// A mount namespace belongs to a *task*, and Linux lets one thread of a process `unshare`
/// its mount namespace alone (`CLONE_NEWNS` implies only `CLONE_FS`, which a thread may drop).
/// Children forked from that thread inherit its view. So crun, which refuses to start on a
/// hybrid cgroup host while the near-empty cgroup2 mount is visible, is launched from here,
/// while isolab's own containers and network namespaces stay in the host's mount namespace —
/// and no `unshare -m sh -c umount …` wrapper inflates crun's timings.
#[derive(Debug)]
pub struct HiddenCgroup2Thread {
    jobs: Option<mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl HiddenCgroup2Thread {
    /// Starts the thread; fails when the mount namespace cannot be made.
    pub fn start() -> Result<HiddenCgroup2Thread, NotMeasured> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), NotMeasured>>();
        let handle = std::thread::Builder::new()
            .name("bench-crun".into())
            .spawn(move || {
                let ready = hide_cgroup2_mount();
                let ok = ready.is_ok();
                let _ = ready_tx.send(ready);
                if !ok {
                    return;
                }
                for job in jobs_rx {
                    job();
                }
            })
            .map_err(NotMeasured::io("cannot start the crun launcher thread"))?;
        let ready = ready_rx.recv().unwrap_or(Err(NotMeasured::LauncherGone));
        let thread = HiddenCgroup2Thread {
            jobs: Some(jobs_tx),
            handle: Some(handle),
        };
        ready.map(|()| thread)
    }

    /// Runs `argv` on the thread and measures it there.
    pub fn run(&self, argv: Vec<OsString>) -> Result<CommandCost, NotMeasured> {
        self.call(move || {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            run_command(&mut cmd)
        })?
    }

    /// Runs `work` on the thread (so every process it starts sees the thread's mount
    /// namespace) and returns its result.
    pub fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NotMeasured> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs
            .as_ref()
            .ok_or(NotMeasured::LauncherGone)?
            .send(job)
            .map_err(|_| NotMeasured::LauncherGone)?;
        rx.recv().map_err(|_| NotMeasured::LauncherGone)
    }
}

impl Drop for HiddenCgroup2Thread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Unshares this thread's mount namespace and unmounts `/sys/fs/cgroup/unified` in it (see
/// [`HiddenCgroup2Thread`]); children forked from this thread inherit the view.
pub fn hide_cgroup2_mount() -> Result<(), NotMeasured> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|source| {
        NotMeasured::HideCgroup2 {
            step: "unshare(CLONE_NEWNS)".into(),
            source,
        }
    })?;
    // Stop our umount from propagating back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|source| NotMeasured::HideCgroup2 {
        step: "making / a slave mount".into(),
        source,
    })?;
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    if unified.exists() {
        umount2(unified, MntFlags::MNT_DETACH).map_err(|source| NotMeasured::HideCgroup2 {
            step: format!("hiding {}", unified.display()),
            source,
        })?;
    }
    Ok(())
}
