//! Bundles written by hand and by `crun spec` / `runc spec`, converted and refused.

use super::*;
use crate::namespaces::{Namespace, NamespaceSet};
use crate::spec::{BindMount, IdMapping, NetworkMode, RootfsSource, SeccompMode};
use isolab_cgroups::{CpuQuota, Resources};
use std::process::Command;

/// A bundle directory with `rootfs/` and the given config.json text.
fn bundle(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

/// A minimal valid config with `linux` replaced by the given JSON object.
fn config_with_linux(linux: &str, mounts: &str) -> String {
    format!(
        r#"{{"ociVersion": "1.0.2",
            "root": {{"path": "rootfs"}},
            "process": {{"args": ["/bin/echo", "hi"], "cwd": "/work", "user": {{"uid": 1000, "gid": 100}}}},
            "mounts": {mounts},
            "linux": {linux}}}"#
    )
}

/// Runs `<tool> spec [extra]` in a fresh directory like a user would, or says why not.
fn generated_bundle(tool: &str, extra: &[&str]) -> Option<(tempfile::TempDir, serde_json::Value)> {
    let dir = tempfile::tempdir().unwrap();
    let out = match Command::new(tool)
        .arg("spec")
        .args(extra)
        .current_dir(dir.path())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: cannot run `{tool} spec`: {e}");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "{tool} spec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    let raw = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    Some((dir, serde_json::from_str(&raw).unwrap()))
}

fn namespaces_in(raw: &serde_json::Value) -> NamespaceSet {
    raw["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["type"].as_str().unwrap().parse::<Namespace>().unwrap())
        .collect()
}

#[test]
fn default_bundles_from_crun_and_runc() {
    for tool in ["crun", "runc"] {
        let Some((dir, raw)) = generated_bundle(tool, &[]) else {
            continue;
        };
        let spec = load_bundle(dir.path()).unwrap();
        let abs = std::path::absolute(dir.path()).unwrap();
        assert_eq!(spec.rootfs, RootfsSource::Dir(abs.join("rootfs")), "{tool}");
        assert_eq!(spec.args, vec!["sh".to_string()], "{tool}");
        assert!(
            spec.env.iter().any(|e| e.starts_with("PATH=")),
            "{tool}: {:?}",
            spec.env
        );
        assert!(spec.env.contains(&"TERM=xterm".to_string()), "{tool}");
        assert_eq!(spec.workdir, "/");
        assert!(spec.tty, "{tool}: terminal true");
        assert_eq!(spec.user, (0, 0));
        assert!(spec.readonly_rootfs, "{tool}: root.readonly");
        assert_eq!(spec.hostname.as_deref(), raw["hostname"].as_str(), "{tool}");
        // Exactly the namespaces the tool wrote (crun 1.8 / runc 1.1: pid, network, ipc,
        // uts, mount), whichever version is installed.
        let expected = namespaces_in(&raw);
        assert_eq!(spec.namespaces, expected, "{tool}");
        for ns in [
            Namespace::Pid,
            Namespace::Net,
            Namespace::Ipc,
            Namespace::Uts,
            Namespace::Mount,
        ] {
            assert!(spec.namespaces.contains(ns), "{tool}: {ns:?}");
        }
        assert!(!spec.namespaces.contains(Namespace::User));
        assert_eq!(spec.network, NetworkMode::None);
        assert_eq!(spec.id_mapping, None);
        assert!(
            spec.mounts.is_empty(),
            "{tool}: standard mounts are isolab's own: {:?}",
            spec.mounts
        );
        assert_eq!(spec.resources, Resources::default());
        assert_eq!(spec.seccomp, SeccompMode::Unconfined);
    }
}

/// `runc spec --rootless` as an ordinary user (uid 65534 here) writes a one-id mapping of
/// that user and binds the host's /sys; `crun spec --rootless` (1.8) writes a user namespace
/// with no mapping at all, which isolab refuses like runc does.
#[test]
fn rootless_bundle_from_crun_maps_ids() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let as_nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "runc",
            "spec",
            "--rootless",
        ])
        .current_dir(dir.path())
        .output();
    match as_nobody {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!("skipping: cannot run `runc spec --rootless` as uid 65534: {other:?}");
            return;
        }
    }
    std::fs::create_dir(dir.path().join("rootfs")).unwrap();
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let spec = load_bundle(dir.path()).unwrap();
    assert!(spec.namespaces.contains(Namespace::User));
    let m = &raw["linux"]["uidMappings"][0];
    assert_eq!(
        spec.id_mapping,
        Some(IdMapping {
            host_base: m["hostID"].as_u64().unwrap() as u32,
            count: m["size"].as_u64().unwrap() as u32,
        })
    );
    assert_eq!(spec.id_mapping.map(|m| m.host_base), Some(65534));
    assert!(
        spec.mounts.is_empty(),
        "the /sys rbind is a standard mount: {:?}",
        spec.mounts
    );

    // The same command run as root: user namespace, no mapping → refused, saying why.
    let Some((dir, _)) = generated_bundle("crun", &["--rootless"]) else {
        return;
    };
    let msg = error_of(dir.path());
    assert!(
        msg.contains("linux.uidMappings = 0 range(s): a user namespace needs"),
        "{msg}"
    );
}

#[test]
fn resources_and_bind_mounts() {
    let host = tempfile::tempdir().unwrap();
    let host_dir = host.path().display().to_string();
    let linux = r#"{
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "time"}],
        "resources": {
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0", "mems": "0"},
            "pids": {"limit": 64},
            "blockIO": {"weight": 300}
        },
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}
    }"#;
    let mounts = format!(
        r#"[{{"destination": "/proc", "type": "proc", "source": "proc"}},
            {{"destination": "/data", "type": "bind", "source": "{host_dir}", "options": ["rbind", "ro"]}},
            {{"destination": "/scratch", "type": "none", "source": "{host_dir}", "options": ["rbind", "rw"]}},
            {{"destination": "/etc/hosts", "source": "rel-hosts", "options": ["bind"]}}]"#
    );
    let dir = bundle(&config_with_linux(linux, &mounts));
    std::fs::write(dir.path().join("rel-hosts"), "127.0.0.1 localhost\n").unwrap();
    let spec = load_bundle(dir.path()).unwrap();

    assert_eq!(spec.args, vec!["/bin/echo".to_string(), "hi".to_string()]);
    assert_eq!(spec.workdir, "/work");
    assert_eq!(spec.user, (1000, 100));
    assert!(!spec.tty && !spec.readonly_rootfs);
    assert_eq!(
        spec.namespaces,
        [Namespace::Pid, Namespace::Mount, Namespace::Time]
            .into_iter()
            .collect()
    );
    assert_eq!(
        spec.network,
        NetworkMode::Host,
        "no network namespace → host network"
    );
    // `..default()` keeps this test compiling when Resources grows a field.
    #[allow(clippy::needless_update)]
    let expected = Resources {
        memory_limit_bytes: Some(64 << 20),
        memory_swap_limit_bytes: Some(128 << 20),
        cpu_quota: Some(CpuQuota {
            quota_us: 50_000,
            period_us: 100_000,
        }),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".to_string()),
        cpuset_mems: Some("0".to_string()),
        pids_limit: Some(64),
        io_weight: Some(300),
        ..Resources::default()
    };
    assert_eq!(spec.resources, expected);
    assert_eq!(spec.seccomp, SeccompMode::Default);
    let abs = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        spec.mounts,
        vec![
            BindMount {
                source: host.path().to_path_buf(),
                destination: "/data".into(),
                readonly: true,
                filesystem: None,
            },
            BindMount {
                source: host.path().to_path_buf(),
                destination: "/scratch".into(),
                readonly: false,
                filesystem: None,
            },
            BindMount {
                source: abs.join("rel-hosts"),
                destination: "/etc/hosts".into(),
                readonly: false,
                filesystem: None,
            },
        ]
    );
}

#[test]
fn unlimited_values_mean_no_limit() {
    let linux = r#"{"resources": {"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "cpus": ""}, "pids": {"limit": 0}}}"#;
    let dir = bundle(&config_with_linux(linux, "[]"));
    let spec = load_bundle(dir.path()).unwrap();
    assert_eq!(
        spec.resources,
        Resources {
            memory_swap_limit_bytes: Some(-1),
            ..Resources::default()
        }
    );
    assert!(spec.namespaces.is_empty());
}

#[test]
fn namespaces_with_a_path_are_joined_and_no_mount_namespace_means_chroot() {
    let dir = bundle(&config_with_linux(
        r#"{"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"}]}"#,
        "[]",
    ));
    let spec = load_bundle(dir.path()).unwrap();
    assert_eq!(
        spec.joined_namespaces,
        [(
            Namespace::Net,
            std::path::PathBuf::from("/proc/self/ns/net")
        )]
    );
    assert!(!spec.namespaces.contains(Namespace::Net));
    assert_eq!(spec.root_mode, crate::RootMode::Chroot);
}

#[test]
fn new_filesystems_keep_their_flags_and_options() {
    let dir = bundle(&config_with_linux(
        "{}",
        r#"[{"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755", "size=64m", "rprivate"]}]"#,
    ));
    let spec = load_bundle(dir.path()).unwrap();
    let m = spec.mounts.last().unwrap();
    assert_eq!(m.destination, std::path::PathBuf::from("/run"));
    let fs = m.filesystem.as_ref().unwrap();
    assert_eq!(fs.fstype, "tmpfs");
    assert_eq!(fs.flags, libc::MS_NOSUID | libc::MS_NODEV);
    assert_eq!(fs.data, "mode=755,size=64m");
}

/// The error as the CLI would print it.
fn error_of(dir: &Path) -> String {
    let msg = load_bundle(dir).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn invalid_json_names_file_line_and_column() {
    let dir = bundle("{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\"args\": [\"sh\"]\n");
    let msg = error_of(dir.path());
    let path = std::path::absolute(dir.path()).unwrap().join("config.json");
    assert!(
        msg.starts_with(&format!(
            "bundle {} is not valid OCI runtime JSON: ",
            path.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("line 4"), "{msg}");

    // Well-formed JSON with a wrong type is reported the same way.
    let dir = bundle(r#"{"ociVersion": "1.0.2", "process": {"args": "sh"}}"#);
    let msg = error_of(dir.path());
    assert!(
        msg.contains("not valid OCI runtime JSON") && msg.contains("line 1 column"),
        "{msg}"
    );

    let dir = bundle(&config_with_linux(
        r#"{"namespaces": [{"type": "bogus"}]}"#,
        "[]",
    ));
    assert!(error_of(dir.path()).contains("not valid OCI runtime JSON"));
}

#[test]
fn missing_config_rootfs_and_bundle() {
    let empty = tempfile::tempdir().unwrap();
    let msg = error_of(empty.path());
    assert!(
        msg.contains("no config.json") && msg.contains("crun spec"),
        "{msg}"
    );

    let msg = error_of(&empty.path().join("nope"));
    assert!(
        msg.contains("does not exist or is not a directory"),
        "{msg}"
    );

    let dir = bundle(&config_with_linux("{}", "[]"));
    std::fs::remove_dir(dir.path().join("rootfs")).unwrap();
    let msg = error_of(dir.path());
    assert!(
        msg.starts_with("root filesystem ") && msg.contains("does not exist"),
        "{msg}"
    );

    let dir = bundle(r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}"#);
    assert!(error_of(dir.path()).contains("process is missing"));
    let dir = bundle(
        r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}"#,
    );
    assert!(error_of(dir.path()).contains("root.path is missing"));
    // Required fields inside an object are serde's to report.
    let dir = bundle(
        r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}}"#,
    );
    let msg = error_of(dir.path());
    assert!(
        msg.contains("not valid OCI runtime JSON: missing field `user`"),
        "{msg}"
    );
}

#[test]
fn unsupported_features_are_refused_clearly() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"namespaces": [{"type": "network", "path": "/var/run/netns/foo"}]}"#,
            "[]",
            "linux.namespaces[network].path = /var/run/netns/foo: does not exist",
        ),
        (
            r#"{"namespaces": [{"type": "user", "path": "/proc/self/ns/user"}], "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}], "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}"#,
            "[]",
            "joining an existing user namespace (/proc/self/ns/user) is not supported",
        ),
        (
            r#"{"namespaces": [{"type": "user"}]}"#,
            "[]",
            "a user namespace needs one mapping range",
        ),
        (
            r#"{"namespaces": [{"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}, {"containerID": 1, "hostID": 100000, "size": 65535}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}"#,
            "[]",
            "linux.uidMappings = 2 range(s)",
        ),
        (
            r#"{"namespaces": [{"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}"#,
            "[]",
            "make it equal to uidMappings",
        ),
        (
            r#"{"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}"#,
            "[]",
            "mappings need a \"user\" entry",
        ),
        (
            "{}",
            r#"[{"destination": "/tmp", "source": "tmpfs"}]"#,
            "mount at /tmp (type none) is not supported",
        ),
        (
            "{}",
            r#"[{"destination": "/data", "type": "bind", "source": "/nonexistent-isolab-src"}]"#,
            "does not exist on the host",
        ),
        (
            r#"{"resources": {"cpu": {"quota": 10}}}"#,
            "[]",
            "linux.resources.cpu.quota = 10",
        ),
        (
            r#"{"resources": {"memory": {"limit": 1048576, "swap": 4096}}}"#,
            "[]",
            "must be >= memory.limit",
        ),
        (
            r#"{"resources": {"cpu": {"shares": 1}}}"#,
            "[]",
            "linux.resources.cpu.shares = 1",
        ),
    ];
    for (linux, mounts, expected) in cases {
        let dir = bundle(&config_with_linux(linux, mounts));
        let msg = error_of(dir.path());
        assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
    }

    let dir = bundle(
        r#"{"root": {"path": "rootfs"}, "hostname": "h", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}"#,
    );
    assert!(error_of(dir.path()).contains("needs a \"uts\" entry"));
    let dir = bundle(
        r#"{"root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "relative", "user": {"uid": 0, "gid": 0}}}"#,
    );
    assert!(error_of(dir.path()).contains("must be an absolute path"));
}
