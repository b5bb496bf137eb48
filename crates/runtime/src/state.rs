//! What one runtime command leaves for the next: `--root/<id>/state.json`.
//!
//! Each runtime command is a separate process (podman runs `create`, exits, runs `start`
//! later, `kill` and `delete` later still), so everything `start`, `kill` and `delete` need is
//! written here by `create`: the runtime-spec *state* (ociVersion, id, status, pid, bundle,
//! annotations) plus isolab's own bookkeeping under the `isolab` key — the cgroup's name, the
//! hooks still to run, when the init process started.
//!
//! The status is never trusted from the file alone: a container "running" an hour ago may have
//! exited since (its reaper is podman's conmon, not us). [`State::status`] asks the kernel:
//!
//! * the process's start time (field 22 of `/proc/<pid>/stat`) must still match, or the pid
//!   was reused by another process and the container is `stopped`;
//! * a zombie counts as stopped (it has exited; its parent just has not reaped it yet);
//! * while `exec.fifo` exists the process is blocked before `execve`: `created`;
//! * a frozen cgroup means `paused`; otherwise `running`.

use crate::error::RuntimeError;
use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where state lives when `--root` is not given (runc uses `/run/runc`).
pub const DEFAULT_ROOT: &str = "/run/isolab-runtime";
const STATE_FILE: &str = "state.json";
const FIFO: &str = "exec.fifo";

/// A container's status as runtime-spec names it (plus runc's `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is still building it (or was killed while doing so).
    Creating,
    /// Built and blocked before `execve`, waiting for `start`.
    Created,
    Running,
    /// Its cgroup is frozen (`pause`).
    Paused,
    /// Its process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// isolab's own part of the state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Private {
    /// RFC 3339 creation time (`list` and `state` show it, as runc does).
    pub created: String,
    /// The init process's start time in clock ticks since boot: tells it apart from a later
    /// process that got the same pid.
    pub start_ticks: u64,
    /// Where the container's cgroup is (None: no cgroup).
    pub cgroup: Option<CgroupPlace>,
    /// The container's root filesystem, absolute.
    pub rootfs: PathBuf,
    /// The hooks from config.json; `start` and `delete` run theirs even if the bundle is gone.
    pub hooks: Option<Hooks>,
    /// Whether processes started by `exec` get the container's seccomp filter.
    pub seccomp: bool,
    /// The container's bounding capability set, for `exec`'s filter and defaults.
    pub capabilities: u64,
    /// The uid that created it (`list` shows the owner).
    pub owner: u32,
}

/// A cgroup's place in every hierarchy: `<hierarchy root>/<group>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlace {
    pub group: PathBuf,
    pub name: String,
}

impl CgroupPlace {
    /// From config.json's `linux.cgroupsPath`: `/a/b/c` is group `a/b`, name `c`. Without one,
    /// `isolab/<id>`. A relative path is placed the same way (this runtime's own cgroup counts
    /// as the root: every command finds it, whichever cgroup it runs in).
    pub fn from_cgroups_path(id: &str, path: Option<&str>) -> CgroupPlace {
        let Some(path) = path.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) else {
            return CgroupPlace {
                group: PathBuf::from("isolab"),
                name: id.to_owned(),
            };
        };
        let (group, name) = path.rsplit_once('/').unwrap_or(("", path));
        CgroupPlace {
            group: PathBuf::from(group),
            name: name.to_owned(),
        }
    }

    /// The cgroup, if it exists.
    pub fn open(&self) -> Option<isolab_cgroups::Cgroup> {
        isolab_cgroups::CgroupRoot::detect_with_group(&self.group)
            .ok()?
            .open(&self.name)
            .ok()
    }
}

/// `state.json`: the runtime-spec fields first, isolab's under `isolab`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// What the last writer saw; readers call [`State::status`] instead.
    pub status: Status,
    /// The init process's pid in the host's pid namespace; 0 until it exists.
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub isolab: Private,
}

/// The runtime-spec state document, as `state` prints it and hooks read it on stdin.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
    /// runc's extras, which tools that parse runc's output expect.
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: String,
}

/// The `--root` directory: one subdirectory per container.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

/// Checks a container id the way runc does: it names a directory, so no `/`, no `..`.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let bad = |reason| RuntimeError::InvalidId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.len() > 1024 {
        return Err(bad("it is longer than 1024 characters"));
    }
    if id == "." || id == ".." {
        return Err(bad("'.' and '..' are not ids"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return Err(bad(
            "use only letters, digits and '_', '+', '-', '.' (it names a directory)",
        ));
    }
    Ok(())
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of container `id` (which may not exist).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn fifo_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(FIFO)
    }

    /// Claims `id`: `mkdir` is the atomic test, so two concurrent `create`s of one id cannot
    /// both succeed.
    pub fn claim(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| RuntimeError::io("creating the state root", &self.dir, e))?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(RuntimeError::AlreadyExists(id.to_owned()))
            }
            Err(e) => Err(RuntimeError::io("creating the state directory", dir, e)),
        }
    }

    /// Reads container `id`'s state.
    pub fn load(&self, id: &str) -> Result<State, RuntimeError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(if dir.is_dir() {
                    // A directory without a state file: a create killed before its first write.
                    RuntimeError::CorruptState {
                        id: id.to_owned(),
                        path,
                        source: serde::de::Error::custom("state.json is missing"),
                    }
                } else {
                    RuntimeError::NotFound(id.to_owned())
                });
            }
            Err(e) => return Err(RuntimeError::io("reading", path, e)),
        };
        serde_json::from_str(&text).map_err(|source| RuntimeError::CorruptState {
            id: id.to_owned(),
            path,
            source,
        })
    }

    /// Writes `state` atomically (a reader sees the old or the new file, never half of one).
    pub fn save(&self, state: &State) -> Result<(), RuntimeError> {
        let dir = self.container_dir(&state.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join(STATE_FILE);
        let json = serde_json::to_vec(state).expect("State always serializes");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&json))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| RuntimeError::io("writing", path, e))
    }

    /// Ids of every container under this root, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Removes container `id`'s directory and everything in it.
    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("removing the state directory", dir, e)),
        }
    }
}

impl State {
    /// The status, asked of the kernel (see the module documentation).
    pub fn status(&self, root: &Root) -> Status {
        if self.pid <= 0 {
            return match self.status {
                Status::Creating => Status::Creating,
                _ => Status::Stopped,
            };
        }
        if !process_alive(self.pid, self.isolab.start_ticks) {
            return Status::Stopped;
        }
        if self.status == Status::Creating {
            return Status::Creating;
        }
        if root.fifo_path(&self.id).exists() {
            return Status::Created;
        }
        if self.frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    fn frozen(&self) -> bool {
        self.isolab
            .cgroup
            .as_ref()
            .and_then(CgroupPlace::open)
            .and_then(|cg| cg.is_frozen().ok())
            .unwrap_or(false)
    }

    /// The document `state` prints and hooks read on stdin, with `status` as given.
    pub fn spec_state(&self, status: Status) -> SpecState<'_> {
        SpecState {
            oci_version: &self.oci_version,
            id: &self.id,
            status,
            pid: (self.pid > 0 && status != Status::Stopped).then_some(self.pid),
            bundle: &self.bundle,
            annotations: &self.annotations,
            rootfs: &self.isolab.rootfs,
            created: &self.isolab.created,
            owner: owner_name(self.isolab.owner),
        }
    }
}

/// The user name of `uid` from /etc/passwd, or the number (what runc's `list` shows).
fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// Field 22 of `/proc/<pid>/stat` (start time, clock ticks since boot) and field 3 (state).
pub fn proc_start(pid: i32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    let after = &text[text.rfind(')')? + 2..];
    let mut fields = after.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// Whether `pid` is still the process that started at `start_ticks`, and not a zombie.
pub fn process_alive(pid: i32, start_ticks: u64) -> bool {
    match proc_start(pid) {
        Some((start, state)) => start == start_ticks && state != 'Z' && state != 'X',
        None => false,
    }
}

/// Now as RFC 3339 in UTC with nanoseconds (the format runc writes).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let t = isolab_container::utc::UtcDateTime::from_unix_s(now.as_secs());
    let date = t.rfc3339();
    format!("{}.{:09}Z", date.trim_end_matches('Z'), now.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_root_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "web-1", "x.y_z+1", &"f".repeat(64)] {
            validate_id(good).unwrap();
        }
    }

    #[test]
    fn a_second_claim_of_one_id_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path().join("root"));
        root.claim("c1").unwrap();
        assert!(matches!(
            root.claim("c1"),
            Err(RuntimeError::AlreadyExists(id)) if id == "c1"
        ));
    }

    #[test]
    fn a_corrupt_state_file_is_named_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path());
        let dir = root.claim("c1").unwrap();
        std::fs::write(dir.join(STATE_FILE), "{not json").unwrap();
        let err = root.load("c1").unwrap_err().to_string();
        assert!(
            err.contains("corrupt") && err.contains("delete --force c1"),
            "{err}"
        );
        assert!(matches!(root.load("nope"), Err(RuntimeError::NotFound(_))));
    }

    #[test]
    fn cgroups_path_splits_into_group_and_name() {
        let place = |p| CgroupPlace::from_cgroups_path("id1", p);
        assert_eq!(place(None).group, PathBuf::from("isolab"));
        assert_eq!(place(None).name, "id1");
        let p = place(Some("/libpod_parent/libpod-abc"));
        assert_eq!(
            (p.group, p.name),
            (PathBuf::from("libpod_parent"), "libpod-abc".into())
        );
        let p = place(Some("/cgrouptest"));
        assert_eq!((p.group, p.name), (PathBuf::new(), "cgrouptest".into()));
        let p = place(Some("testdir/cgrouptest"));
        assert_eq!(
            (p.group, p.name),
            (PathBuf::from("testdir"), "cgrouptest".into())
        );
    }

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let (start, _) = proc_start(me).unwrap();
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(i32::MAX, start));
    }
}
