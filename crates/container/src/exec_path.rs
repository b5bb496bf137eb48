//! Which file `execve` should run for a command, searched in the *container's* `$PATH`.
//!
//! `execvp` would search the caller's own `PATH` and filesystem; a container's command must be
//! found in the container's, after it pivoted into its root. So the candidates are computed
//! before the fork as full paths and the child tries them in order, as `execvp` would.

/// The default `PATH` when the environment has none (docker's and runc's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `PATH=` of `env`, or [`DEFAULT_PATH`].
pub fn search_path(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// `cmd` itself if it contains a slash, else each `$PATH` directory joined with it.
pub fn candidates(cmd: &str, env: &[String]) -> Vec<String> {
    if cmd.contains('/') {
        return vec![cmd.to_owned()];
    }
    search_path(env)
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{cmd}", d.trim_end_matches('/')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_path_is_searched_in_order() {
        let env = vec!["PATH=/a:/b/".to_string()];
        assert_eq!(candidates("sh", &env), ["/a/sh", "/b/sh"]);
        assert_eq!(candidates("./x", &env), ["./x"]);
        assert_eq!(search_path(&[]), DEFAULT_PATH);
    }
}
