//! Builds isolab's stub guest (guests/stub/stub.S) into a static ELF that the VMM embeds, so the
//! VMM and the guest it drives are always built from the same tree. Only the host toolchain is
//! needed: `cc` assembles and links with our own linker script (no libc, no dynamic loader).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let stub_dir = manifest.join("../../guests/stub");
    let source = stub_dir.join("stub.S");
    let script = stub_dir.join("stub.ld");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let elf = out_dir.join("isolab-stub.elf");
    assemble(&source, &script, &elf);
    // The PVH image of the stub: what QEMU and isolab both boot (stub/pvh.rs).
    assemble(
        &stub_dir.join("pvh.S"),
        &stub_dir.join("pvh.ld"),
        &out_dir.join("isolab-stub-pvh.elf"),
    );

    // The VMM needs the syscall entry point for MSR_LSTAR: take it from the symbol table.
    let nm = Command::new("nm")
        .arg(&elf)
        .output()
        .expect("running nm on the stub guest");
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let wanted = "syscall_entry";
    let addr = symbols
        .lines()
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            let (addr, _kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            (name == wanted).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("symbol {wanted} missing from the stub guest"));
    let consts = format!(
        "/// Guest address of `{wanted}` in the stub guest (MSR_LSTAR).\npub const SYSCALL_ENTRY: u64 = {addr:#x};\n"
    );
    std::fs::write(out_dir.join("stub_symbols.rs"), consts).expect("writing stub_symbols.rs");
}

/// Assembles and links `source` with the linker script `script` into a static ELF at `elf`.
fn assemble(source: &Path, script: &Path, elf: &Path) {
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed={}", script.display());
    let status = Command::new(env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none"])
        .arg(format!("-Wl,-T,{}", script.display()))
        .arg("-o")
        .arg(elf)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("running cc to assemble {}: {e}", source.display()));
    assert!(status.success(), "assembling {} failed", source.display());
}
