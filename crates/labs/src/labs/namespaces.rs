//! Labs 2 and 3: the PID, UTS and IPC namespaces — the same kernel, a different view.

use super::path_str;
use crate::{Lab, LabError, Session};

pub const PID: Lab = Lab {
    number: 2,
    name: "pid-namespace",
    summary: "PID 1 inside, host PIDs invisible, and why PID 1 ignores signals",
    claims: &["C7"],
    needs_root: false,
    background: "\
A PID namespace gives its first process PID 1 and shows it only the processes of its own
namespace (once /proc is mounted for it). The host still sees every one of them under its own,
different PID. PID 1 is special: the kernel delivers to a namespace's init only the signals it
installed a handler for — so a shell or `sleep` that is PID 1 shrugs off SIGTERM, even from
itself. `--init` puts a tiny init in front (it forwards signals), making the command PID 2.

What to look for: `$$` is 1; the container sees a handful of processes while the host sees
hundreds; `kill -TERM $$` does nothing as PID 1 and kills the shell behind --init.",
    run: run_pid,
};

pub const UTS_IPC: Lab = Lab {
    number: 3,
    name: "uts-ipc",
    summary: "own hostname; a SysV shared memory segment invisible across containers",
    claims: &["C7"],
    needs_root: false,
    background: "\
The UTS namespace holds the hostname (and NIS domain name): a container can set its own without
touching the host's. The IPC namespace holds System V IPC objects — shared memory segments,
semaphores, message queues — which are found by a numeric key, not a path: without it two
unrelated programs using the same key would share memory.

What to look for: the container's hostname is the one given, the host's is unchanged; a shared
memory segment created in one container is found there, and not in a second container nor on
the host. It disappears with its IPC namespace.",
    run: run_uts_ipc,
};

const LOOP_SH: &str =
    "echo \"my PID: $$\"; echo \"processes I can see: $(ls /proc | grep -c '^[0-9]')\"";
const SELF_KILL: &str = "kill -TERM $$; echo still alive after SIGTERM";

fn run_pid(s: &mut Session) -> Result<(), LabError> {
    let host = s.host("sh", &["-c", "ls /proc | grep -c '^[0-9]'"])?;
    let host_count: usize = host.stdout.trim().parse().unwrap_or(0);
    let inside = s.container(&["--rm", "--", "sh", "-c", LOOP_SH])?;
    let pid_one = inside.stdout.contains("my PID: 1\n");
    s.check(
        "pid-1-inside",
        pid_one,
        format!("the shell reports {:?}", first_line(&inside.stdout)),
    );
    let seen: usize = inside
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("processes I can see: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    s.check(
        "host-pids-invisible",
        seen <= 4 && seen < host_count,
        format!("{seen} processes visible inside, {host_count} on the host"),
    );

    s.say("PID 1 ignores a signal it has no handler for, even one it sends itself:");
    let plain = s.container(&["--rm", "--", "sh", "-c", SELF_KILL])?;
    s.check(
        "pid-1-ignores-sigterm",
        plain.stdout.contains("still alive"),
        format!("as PID 1 the shell printed {:?}", plain.stdout.trim()),
    );
    s.say("With --init the shell is PID 2, an ordinary process: SIGTERM kills it.");
    let init = s.container(&["--rm", "--init", "--", "sh", "-c", SELF_KILL])?;
    let killed = !init.stdout.contains("still alive") && init.exit_code == Some(128 + 15);
    s.check(
        "init-forwards",
        killed,
        format!(
            "behind --init the shell exited {:?} and printed {:?}",
            init.exit_code,
            init.stdout.trim()
        ),
    );
    Ok(())
}

fn run_uts_ipc(s: &mut Session) -> Result<(), LabError> {
    let before = s.host("hostname", &[])?.stdout.trim().to_string();
    let name = format!("lab3-{}", super::token());
    let inside = s.container(&["--rm", "--hostname", &name, "--", "hostname"])?;
    let after = s.host("hostname", &[])?.stdout.trim().to_string();
    s.check(
        "own-hostname",
        inside.stdout.trim() == name && before == after,
        format!(
            "inside: {:?}; host before and after: {before:?} / {after:?}",
            inside.stdout.trim()
        ),
    );

    let key = super::token();
    let helper = s.helper_volume();
    let create = format!("/lab-helper shm-create {key} && /lab-helper shm-find {key}");
    let a = s.container(&["--rm", "-v", &helper, "--", "sh", "-c", &create])?;
    s.check(
        "segment-visible-in-its-namespace",
        a.exit_code == Some(0) && a.stdout.contains("found segment"),
        format!("container A: {}", a.stdout.trim().replace('\n', "; ")),
    );
    let b = s.container(&["--rm", "-v", &helper, "--", "/lab-helper", "shm-find", &key])?;
    let host_helper = path_str(&s.helper());
    let h = s.host(&host_helper, &["shm-find", &key])?;
    s.check(
        "segment-invisible-elsewhere",
        b.exit_code == Some(1) && h.exit_code == Some(1),
        format!(
            "container B: {}; host: {}",
            b.stdout.trim(),
            h.stdout.trim()
        ),
    );
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
