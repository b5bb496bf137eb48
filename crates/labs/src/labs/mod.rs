//! The labs, in ladder order, and the small helpers they share.

mod cgroups;
mod chroot;
mod filesystem;
mod hardening;
mod kernels;
mod namespaces;
mod network;
mod race;
mod userns;

use crate::{Lab, LabError, Session};
use std::path::Path;

/// Every lab, in ladder order: process → chroot → namespaces → cgroups → user namespace →
/// capabilities and seccomp → another kernel.
pub static ALL: &[Lab] = &[
    chroot::LAB,
    namespaces::PID,
    namespaces::UTS_IPC,
    filesystem::LAB,
    network::LAB,
    userns::LAB,
    hardening::CAPS_SECCOMP,
    hardening::ESCAPE_SURFACE,
    cgroups::MEMORY,
    cgroups::CPU,
    cgroups::PIDS,
    cgroups::FREEZER,
    kernels::LAB,
    race::LAB,
];

/// Reads the JSON a step wrote with `--json FILE`.
fn read_json(path: &Path) -> Result<serde_json::Value, LabError> {
    let text = std::fs::read_to_string(path).map_err(LabError::prepare(path))?;
    serde_json::from_str(&text).map_err(|e| LabError::Output {
        command: format!("--json {}", path.display()),
        detail: e.to_string(),
    })
}

/// A path as a `&str` for a command line (the lab's own paths are always UTF-8).
fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A short random token, so markers written by one run cannot be mistaken for another's.
fn token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    bytes[0] ^= nanos as u8;
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host's kernel release, as `uname -r` prints it.
fn host_release(s: &mut Session) -> Result<String, LabError> {
    Ok(s.host("uname", &["-r"])?.stdout.trim().to_string())
}
