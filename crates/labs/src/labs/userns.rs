//! Lab 6: the user namespace — is root in a container root on the host?

use super::path_str;
use crate::{Lab, LabError, Session};
use std::time::Duration;

pub const LAB: Lab = Lab {
    number: 6,
    name: "user-namespace",
    summary: "root inside is an unprivileged uid outside; without it, root writes a host root file",
    claims: &["C6"],
    needs_root: true,
    background: "\
Without a user namespace, uid 0 in a container is uid 0 on the host: the same user the kernel
checks file permissions against. Everything keeping such a container in is namespaces,
capabilities and seccomp; whatever host file it can reach (a bind mount, a leaked file
descriptor) it can write as root. A user namespace maps ids: with --userns container uid 0 is
host uid 100000 (`/proc/self/uid_map` says `0 100000 65536`). Root inside has capabilities
only over what its namespace owns; towards host files it is an unprivileged stranger.

What to look for: through a bind mount, container root appends to a root-owned 0644 host file
the lab made; with --userns the same write is refused, the file is unchanged, and the host
sees the container's processes run as uid 100000.",
    run,
};

const WRITE: &str = "id; echo 'written by container root' >> /host-file && echo write succeeded";

fn run(s: &mut Session) -> Result<(), LabError> {
    let file = s.dir().join("host-owned-file");
    std::fs::write(&file, "owned by host root, mode 0644\n").map_err(LabError::prepare(&file))?;
    let file_arg = path_str(&file);
    s.host("ls", &["-ln", &file_arg])?;
    let volume = format!("{file_arg}:/host-file");
    let after_plain = write_as_host_root(s, &file_arg, &volume)?;
    let map_line = write_as_mapped_root(s, &file_arg, &volume, &after_plain)?;
    s.say("Seen from the host, whose is the container's PID 1?");
    let host_uid = pid1_host_uid(s)?;
    let first_host_uid = map_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string();
    s.check(
        "root-inside-is-unprivileged-outside",
        host_uid.as_deref() == Some(first_host_uid.as_str()) && first_host_uid != "0",
        format!(
            "uid_map {:?}; the host sees the container's PID 1 as uid {}",
            map_line.trim(),
            host_uid.as_deref().unwrap_or("?")
        ),
    );
    Ok(())
}

/// Without a user namespace container root appends to the host file; returns its new text.
fn write_as_host_root(s: &mut Session, file: &str, volume: &str) -> Result<String, LabError> {
    let plain = s.isolab(&[
        "container",
        "run",
        "--rm",
        "-v",
        volume,
        "--",
        "sh",
        "-c",
        WRITE,
    ])?;
    let after = s.cat(file)?;
    s.check(
        "root-writes-host-file",
        plain.stdout.contains("write succeeded") && after.contains("written by container root"),
        "without a user namespace, container root appended to the host's root-owned file",
    );
    Ok(after)
}

/// With `--userns` the same write is refused and the file stays as `before`; returns the
/// container's first `uid_map` line.
fn write_as_mapped_root(
    s: &mut Session,
    file: &str,
    volume: &str,
    before: &str,
) -> Result<String, LabError> {
    let mapped = format!("cat /proc/self/uid_map; {WRITE}");
    let ns = s.isolab(&[
        "container",
        "run",
        "--rm",
        "--userns",
        "-v",
        volume,
        "--",
        "sh",
        "-c",
        &mapped,
    ])?;
    let after = s.cat(file)?;
    let unchanged = after == before;
    s.check(
        "userns-root-refused",
        !ns.stdout.contains("write succeeded") && unchanged,
        format!(
            "with --userns: {}; the file is {}",
            ns.stderr.lines().last().unwrap_or("no error").trim(),
            if unchanged { "unchanged" } else { "CHANGED" }
        ),
    );
    let map_line = ns.stdout.lines().find(|l| l.trim().starts_with('0'));
    Ok(map_line.unwrap_or("").to_string())
}

/// Starts a `--userns` container that waits, and reads the uid its PID 1 has on the host.
fn pid1_host_uid(s: &mut Session) -> Result<Option<String>, LabError> {
    let shared = s.shared_volume();
    let bg = s.isolab_background(&[
        "container",
        "run",
        "--rm",
        "--userns",
        "--name",
        "lab6-userns",
        "-v",
        &shared,
        "--",
        "sh",
        "-c",
        "touch /lab/ready; while [ ! -e /lab/stop ]; do sleep 0.1; done",
    ])?;
    let ready = s.shared().join("ready");
    s.wait_until(Duration::from_secs(20), || ready.exists())?;
    let ls = s.isolab(&["container", "ls", "--json"])?;
    let host_uid = match container_pid(&ls.stdout, "lab6-userns") {
        Some(pid) => {
            let status = s.host("grep", &["Uid:", &format!("/proc/{pid}/status")])?;
            status.stdout.split_whitespace().nth(1).map(str::to_string)
        }
        None => None,
    };
    std::fs::write(s.shared().join("stop"), b"").map_err(LabError::prepare(s.shared()))?;
    s.wait_background(bg)?;
    Ok(host_uid)
}

/// The host PID of a running container's PID 1, from `container ls --json`.
fn container_pid(json: &str, name: &str) -> Option<i64> {
    let list: serde_json::Value = serde_json::from_str(json).ok()?;
    list.as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))?["state"]["pid"]
        .as_i64()
}
