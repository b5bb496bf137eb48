//! Builds the labs' helper program (helper/lab-helper.c) as a static executable that the labs
//! embed and bind-mount into busybox containers, which have no C library to link against.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let source = manifest.join("helper/lab-helper.c");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let exe = out_dir.join("lab-helper");
    println!("cargo:rerun-if-changed={}", source.display());
    let status = Command::new(env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&source)
        .status()
        .expect("running cc to build helper/lab-helper.c (install gcc and libc6-dev)");
    assert!(
        status.success(),
        "building helper/lab-helper.c failed (a static build needs libc6-dev)"
    );
}
