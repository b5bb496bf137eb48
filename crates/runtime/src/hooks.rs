//! Lifecycle hooks: programs config.json asks the runtime to run at fixed points, with the
//! container's state JSON on their stdin (how podman's network setup and NVIDIA's GPU hook
//! work).
//!
//! | hook            | when                                   | where it runs            |
//! |-----------------|----------------------------------------|--------------------------|
//! | prestart        | `create`, namespaces made, before pivot | runtime namespace (deprecated alias of createRuntime) |
//! | createRuntime   | `create`, namespaces made, before pivot | runtime namespace        |
//! | createContainer | `create`, after createRuntime           | the container's namespaces |
//! | startContainer  | `start`, before the user's program runs | the container's namespaces |
//! | poststart       | `start`, after the program started      | runtime namespace        |
//! | poststop        | `delete`, after the container is gone   | runtime namespace        |
//!
//! A failing create/start hook fails the command (and the container is torn down); a failing
//! poststart or poststop hook is a warning, as the specification says.

use crate::error::RuntimeError;
use oci_spec::runtime::Hook;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs one hook with `state` on stdin; with `join`, inside the namespaces of that process.
///
/// The hook's environment is exactly its `env` (the specification's `execve` semantics), its
/// `args[0]` is its argv[0], and `timeout` seconds (when set) bound it: then it is killed.
pub fn run(
    kind: &'static str,
    hook: &Hook,
    state: &[u8],
    join: Option<&isolab_container::join::Namespaces>,
) -> Result<(), RuntimeError> {
    let failed = |failure: String| RuntimeError::Hook {
        kind,
        path: hook.path().clone(),
        failure,
    };
    let mut cmd = Command::new(hook.path());
    let args = hook.args().clone().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if let Some(ns) = join {
        let enter = ns.enter_fn();
        // SAFETY: the closure runs in the forked child before exec and only makes setns
        // system calls, on descriptors `ns` keeps open for the whole of this function.
        unsafe { cmd.pre_exec(enter) };
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("could not be started: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(failed(format!("failed: {status}"))),
            Ok(None) => {}
            Err(e) => return Err(failed(format!("could not be waited for: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "timed out after {} s and was killed",
                hook.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs every hook of one kind in order; the first failure stops the rest.
pub fn run_all(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state: &[u8],
    join: Option<&isolab_container::join::Namespaces>,
) -> Result<(), RuntimeError> {
    for hook in hooks.into_iter().flatten() {
        run(kind, hook, state, join)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_hook_reads_the_state_on_stdin_and_sees_only_its_env() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let h = hook(&format!(
            r#"{{"path": "/bin/sh", "args": ["sh", "-c", "cat > {0}; echo \"$FOO|$HOME\" >> {0}"], "env": ["FOO=bar"]}}"#,
            out.display()
        ));
        run("poststop", &h, br#"{"id":"c1"}"#, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c1\"}bar|\n"
        );
    }

    #[test]
    fn failures_and_timeouts_name_the_hook() {
        let h = hook(r#"{"path": "/bin/false"}"#);
        let err = run("createRuntime", &h, b"{}", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("createRuntime hook /bin/false failed"),
            "{err}"
        );
        let h = hook(r#"{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}"#);
        let t = Instant::now();
        let err = run("prestart", &h, b"{}", None).unwrap_err().to_string();
        assert!(err.contains("timed out after 1 s"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3));
        let h = hook(r#"{"path": "/nonexistent/hook"}"#);
        let err = run("poststart", &h, b"{}", None).unwrap_err().to_string();
        assert!(err.contains("could not be started"), "{err}");
    }
}
