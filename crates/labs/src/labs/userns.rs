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

fn run(s: &mut Session) -> Result<(), LabError> {
    let file = s.dir().join("host-owned-file");
    std::fs::write(&file, "owned by host root, mode 0644\n").map_err(LabError::prepare(&file))?;
    let file_arg = path_str(&file);
    s.host("ls", &["-ln", &file_arg])?;
    let volume = format!("{file_arg}:/host-file");
    let write = "id; echo 'written by container root' >> /host-file && echo write succeeded";

    let plain = s.isolab(&[
        "container",
        "run",
        "--rm",
        "-v",
        &volume,
        "--",
        "sh",
        "-c",
        write,
    ])?;
    let after_plain = s.cat(&file_arg)?;
    s.check(
        "root-writes-host-file",
        plain.stdout.contains("write succeeded")
            && after_plain.contains("written by container root"),
        "without a user namespace, container root appended to the host's root-owned file",
    );

    let mapped = format!("cat /proc/self/uid_map; {write}");
    let ns = s.isolab(&[
        "container",
        "run",
        "--rm",
        "--userns",
        "-v",
        &volume,
        "--",
        "sh",
        "-c",
        &mapped,
    ])?;
    let after_ns = s.cat(&file_arg)?;
    let refused = !ns.stdout.contains("write succeeded") && after_ns == after_plain;
    s.check(
        "userns-root-refused",
        refused,
        format!(
            "with --userns: {}; the file is {}",
            ns.stderr.lines().last().unwrap_or("no error").trim(),
            if after_ns == after_plain {
                "unchanged"
            } else {
                "CHANGED"
            }
        ),
    );
    let map_line = ns
        .stdout
        .lines()
        .find(|l| l.trim().starts_with('0'))
        .unwrap_or("");
    s.say("Seen from the host, whose is the container's PID 1?");
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
    let pid = container_pid(&ls.stdout, "lab6-userns");
    let host_uid = match pid {
        Some(pid) => {
            let status = s.host("grep", &["Uid:", &format!("/proc/{pid}/status")])?;
            status.stdout.split_whitespace().nth(1).map(str::to_string)
        }
        None => None,
    };
    std::fs::write(s.shared().join("stop"), b"").map_err(LabError::prepare(s.shared()))?;
    s.wait_background(bg)?;
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

/// The host PID of a running container's PID 1, from `container ls --json`.
fn container_pid(json: &str, name: &str) -> Option<i64> {
    let list: serde_json::Value = serde_json::from_str(json).ok()?;
    list.as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))?["state"]["pid"]
        .as_i64()
}
