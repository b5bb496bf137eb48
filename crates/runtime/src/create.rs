//! `create`: build the container and stop its process one step before `execve`.
//!
//! In order:
//! 1. claim the id (`mkdir <root>/<id>`: atomic, so a second `create` of one id fails);
//! 2. read the bundle (isolab's conversion of config.json, plus its hooks and annotations);
//! 3. write the state as `creating` *before* anything exists, so a runtime killed half-way
//!    leaves a record that `delete --force` can clean up from;
//! 4. make `exec.fifo`, the gate `start` opens;
//! 5. run the engine's spawn path in its *created* mode: cgroup, namespaces, the prestart,
//!    createRuntime and createContainer hooks while the child waits, root filesystem,
//!    credentials, seccomp; then the child blocks opening the FIFO and this process returns;
//! 6. write `--pid-file` and the state as `created`, and exit. The container's process is
//!    re-parented to our caller's subreaper (podman's conmon).

use crate::cli::CreateArgs;
use crate::error::RuntimeError;
use crate::log::Log;
use crate::state::{CgroupPlace, Private, Root, State, Status};
use isolab_container::join::Namespaces;
use isolab_container::oci;
use isolab_container::spawn::{self, RunContext};
use isolab_container::stdio::StdioMode;
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

/// A created container, as `run` needs it to go on.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    /// The init's host pid: our child until this process exits.
    pub pid: i32,
}

/// Removes the half-made container (state, cgroup) unless [`Claim::keep`] is called.
struct Claim<'a> {
    root: &'a Root,
    id: &'a str,
    keep: bool,
}

impl Claim<'_> {
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.root.remove(self.id);
        }
    }
}

/// The parts of config.json the engine's conversion does not carry: the runtime uses them.
struct RuntimeConfig {
    oci_version: String,
    cgroups_path: Option<String>,
    hooks: Option<oci_spec::runtime::Hooks>,
    annotations: std::collections::BTreeMap<String, String>,
}

pub fn create(root: &Root, args: &CreateArgs, log: &Log) -> Result<Created, RuntimeError> {
    let dir = root.claim(&args.id)?;
    let claim = Claim {
        root,
        id: &args.id,
        keep: false,
    };
    let bundle_dir = std::path::absolute(&args.bundle)
        .map_err(|e| RuntimeError::io("resolving the bundle path", &args.bundle, e))?;
    let bundle = oci::load(&bundle_dir)?;
    let config = runtime_config(&bundle.config)?;
    let ignored: Vec<&str> = bundle
        .ignored
        .iter()
        .copied()
        .filter(|f| !f.starts_with("hooks"))
        .collect();
    if !ignored.is_empty() {
        log.warn(&format!(
            "{}: not applied by isolab: {}",
            bundle_dir.join("config.json").display(),
            ignored.join(", ")
        ));
    }
    let spec = bundle.spec;
    let mut state = initial_state(&args.id, &bundle_dir, &spec, config);
    root.save(&state)?;
    let fifo = make_fifo(&root.fifo_path(&args.id))?;
    let stdio = match (spec.tty, &args.console_socket) {
        (true, Some(socket)) => StdioMode::ConsoleSocket(socket.clone()),
        (true, None) => {
            return Err(RuntimeError::Usage(
                "config.json asks for a terminal (process.terminal): pass --console-socket".into(),
            ))
        }
        (false, _) => StdioMode::Inherit,
    };
    let place = state.isolab.cgroup.clone();
    let cgroups = match &place {
        Some(p) => Some(isolab_cgroups::CgroupRoot::detect_with_group(&p.group)?),
        None => None,
    };
    // The engine names the cgroup after the context's id.
    let mut ctx = RunContext::new(place.map_or_else(|| args.id.clone(), |p| p.name));
    ctx.cgroups = cgroups.as_ref();
    ctx.stdio = stdio;
    ctx.preserve_fds = args.preserve_fds;
    let hook_state = state.clone();
    ctx.before_start = Some(Box::new(move |pid: i32| {
        run_create_hooks(&hook_state, pid).map_err(|e| Box::new(e) as spawn::HookError)
    }));
    let pid = spawn::create(&spec, ctx, &fifo)?.pid;
    let (start_ticks, _) = crate::state::proc_start(pid).unwrap_or((0, 'R'));
    state.pid = pid;
    state.status = Status::Created;
    state.isolab.start_ticks = start_ticks;
    if let Some(path) = &args.pid_file {
        crate::exec::write_pid_file(path, pid)?;
    }
    root.save(&state)?;
    claim.keep();
    let _ = dir;
    Ok(Created {
        id: args.id.clone(),
        pid,
    })
}

fn initial_state(
    id: &str,
    bundle: &Path,
    spec: &isolab_container::ContainerSpec,
    config: RuntimeConfig,
) -> State {
    let rootfs = match &spec.rootfs {
        isolab_container::RootfsSource::Dir(p) => p.clone(),
        other => PathBuf::from(format!("{other:?}")),
    };
    State {
        oci_version: config.oci_version,
        id: id.to_owned(),
        status: Status::Creating,
        pid: 0,
        bundle: bundle.to_path_buf(),
        annotations: config.annotations,
        isolab: Private {
            created: crate::state::now_rfc3339(),
            start_ticks: 0,
            cgroup: spec
                .use_cgroup
                .then(|| CgroupPlace::from_cgroups_path(id, config.cgroups_path.as_deref())),
            rootfs,
            hooks: config.hooks,
            seccomp: spec.seccomp == isolab_container::SeccompMode::Default,
            capabilities: spec.capabilities.0,
            owner: nix::unistd::Uid::effective().as_raw(),
        },
    }
}

/// What the runtime itself needs from config.json, once its `ociVersion` is one it runs.
fn runtime_config(spec: &Spec) -> Result<RuntimeConfig, RuntimeError> {
    let version = spec.version().clone();
    check_version(&version)?;
    Ok(RuntimeConfig {
        oci_version: version,
        cgroups_path: spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        hooks: spec.hooks().clone(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// Accepts runtime-spec 1.0.0 up to the 1.x this runtime implements (and `-dev`/`-rc`
/// suffixes, which podman writes); refuses other majors and later minors it cannot know.
pub fn check_version(version: &str) -> Result<(), RuntimeError> {
    let bad = || RuntimeError::UnsupportedVersion(version.to_owned());
    let core = version.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.').map(|p| p.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (max_major, max_minor) = (1, 2);
    if major != max_major || minor > max_minor {
        return Err(bad());
    }
    Ok(())
}

/// `mkfifo exec.fifo`, and its directory opened (`O_PATH`) for the child, which opens the
/// FIFO through it for writing once it is ready, and blocks there until `start`.
fn make_fifo(path: &Path) -> Result<spawn::ExecFifo, RuntimeError> {
    // World-writable: the child may already run as the bundle's non-root user when it opens it.
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| RuntimeError::io("creating", path, e.into()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dir_fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("opening", dir, e.into()))?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .as_encoded_bytes()
        .to_vec();
    Ok(spawn::ExecFifo {
        dir: dir_fd,
        name: std::ffi::CString::new(name).expect("a file name has no NUL"),
    })
}

/// prestart and createRuntime in our namespaces, then createContainer in the container's,
/// while the container's process waits for the go-ahead.
fn run_create_hooks(state: &State, pid: i32) -> Result<(), RuntimeError> {
    let Some(hooks) = &state.isolab.hooks else {
        return Ok(());
    };
    let mut st = state.clone();
    st.pid = pid;
    // The namespaces exist and the process waits: crun (and the validation suite) call that
    // `created` on these hooks' stdin.
    let doc = serde_json::to_vec(&st.spec_state(Status::Created)).expect("state serializes");
    crate::hooks::run_all("prestart", hooks.prestart().as_ref(), &doc, None)?;
    crate::hooks::run_all("createRuntime", hooks.create_runtime().as_ref(), &doc, None)?;
    if hooks
        .create_container()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        let ns = Namespaces::of_process(pid)?;
        crate::hooks::run_all(
            "createContainer",
            hooks.create_container().as_ref(),
            &doc,
            Some(&ns),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_one_zero_to_one_two_are_accepted() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1", "1.0.0-rc5"] {
            check_version(ok).unwrap();
        }
        for bad in ["0.9.0", "2.0.0", "1.3.0", "", "one", "1"] {
            let err = check_version(bad).unwrap_err().to_string();
            assert!(err.contains("runtime-spec 1.0.0 to"), "{bad}: {err}");
        }
    }
}
