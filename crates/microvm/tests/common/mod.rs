//! Helpers shared by the Linux boot test binaries.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn kvm_or_skip() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: /dev/kvm unavailable ({e})");
            false
        }
    }
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("ISOLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/isolab"))
        .join("guest")
}

pub fn project_kernel(name: &str) -> Option<PathBuf> {
    let path = cache_dir().join(name);
    path.exists().then_some(path)
}
