//! `features`: what this runtime can apply, as runtime-spec's features document, so a caller
//! (containerd, podman) can check before asking for something isolab would refuse.

use crate::error::RuntimeError;
use isolab_container::Namespace;
use serde_json::json;

/// Mount options isolab's mount code understands in config.json.
const MOUNT_OPTIONS: [&str; 22] = [
    "bind",
    "rbind",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "relatime",
    "norelatime",
    "strictatime",
    "noatime",
    "nodiratime",
    "tmpcopyup",
];

/// The document, built from the engine's own tables where it has them.
pub fn document() -> serde_json::Value {
    let namespaces: Vec<&str> = isolab_container::NamespaceSet::all()
        .iter()
        .map(Namespace::name)
        .collect();
    let capabilities: Vec<String> = isolab_container::capabilities::NAMES
        .iter()
        .map(|n| format!("CAP_{n}"))
        .collect();
    json!({
        "ociVersionMin": crate::OCI_VERSION_MIN,
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": namespaces,
            "capabilities": capabilities,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": { "enabled": true, "actions": [], "operators": [], "archs": ["SCMP_ARCH_X86_64"],
                          "knownFlags": [], "supportedFlags": [] },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } }
        },
        "annotations": {
            "io.github.isolab.runtime.version": env!("CARGO_PKG_VERSION"),
            "io.github.isolab.runtime.seccomp": "config.json's linux.seccomp selects isolab's own docker-equivalent default filter; its rules are not interpreted"
        }
    })
}

pub fn print() -> Result<(), RuntimeError> {
    println!(
        "{}",
        serde_json::to_string_pretty(&document()).expect("a JSON value serializes")
    );
    Ok(())
}
