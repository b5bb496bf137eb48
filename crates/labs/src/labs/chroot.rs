//! Lab 1: chroot gives a process its own root directory — and the classic escape walks out.

use super::path_str;
use crate::{Lab, LabError, Session};

pub const LAB: Lab = Lab {
    number: 1,
    name: "chroot",
    summary: "a process with its own root; the chroot escape works, pivot_root stops it",
    claims: &["C10"],
    needs_root: false,
    background: "\
chroot(2) changes one thing: where \"/\" resolves for the calling process. It does not move the
current directory, and the old root is still mounted in the same mount namespace. A process
with CAP_SYS_CHROOT can therefore chroot into a subdirectory, walk \"..\" upwards (its cwd is
now outside its root, so nothing stops it) and chroot(\".\") at the real root: the classic
escape. Container runtimes use pivot_root(2) instead: in a private mount namespace the
container's root becomes the root mount and the old root is unmounted, so there is nothing
above \"/\" left to walk to.

What to look for: a marker file the lab writes on the host is read by the escape under
--chroot, and is not reachable under the default pivot_root.",
    run,
};

fn run(s: &mut Session) -> Result<(), LabError> {
    let marker = s.dir().join("host-marker");
    let secret = format!("host secret {}", super::token());
    std::fs::write(&marker, format!("{secret}\n")).map_err(LabError::prepare(&marker))?;
    let marker = path_str(&marker);
    let helper = s.helper_volume();

    s.say("A chroot'ed container has its own root directory:");
    let ls = s.container(&["--rm", "--chroot", "--", "ls", "/"])?;
    let own_root = ls.exit_code == Some(0) && ls.stdout.lines().any(|l| l.trim() == "bin");
    s.check(
        "own-root",
        own_root,
        format!(
            "`ls /` inside lists the image's directories ({})",
            ls.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    );

    s.say("Now the escape (lab-helper.c: mkdir, chroot, chdir .. 256 times, chroot .):");
    let esc = s.container(&[
        "--rm",
        "--chroot",
        "-v",
        &helper,
        "--",
        "/lab-helper",
        "escape",
        &marker,
    ])?;
    let escaped = esc.exit_code == Some(0) && esc.stdout.contains(&secret);
    s.check(
        "chroot-escape-works",
        escaped,
        if escaped {
            format!("under --chroot the escape read the host's {marker}")
        } else {
            format!(
                "expected the escape to read the host's marker; it printed {:?}",
                esc.stdout.trim()
            )
        },
    );

    s.say("The same escape with the default pivot_root:");
    let pin = s.container(&[
        "--rm",
        "-v",
        &helper,
        "--",
        "/lab-helper",
        "escape",
        &marker,
    ])?;
    let stopped = pin.exit_code == Some(1) && pin.stdout.contains("still inside");
    s.check(
        "pivot-root-stops-it",
        stopped,
        if stopped {
            "after pivot_root the walk up ends at the container's own root: the marker is not there"
                .to_string()
        } else {
            format!(
                "expected \"still inside\"; got exit {:?}: {}",
                pin.exit_code,
                pin.stdout.trim()
            )
        },
    );
    Ok(())
}
