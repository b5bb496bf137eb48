//! The PVH stub image boots under QEMU and under isolab, and ends the same way in both: the
//! guest switches itself to long mode and writes 0 to the isa-debug-exit port.

mod common;
use common::kvm_or_skip;
use isolab_microvm::stub::pvh;
use isolab_microvm::{ConsoleSpec, GuestExit, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn write_image(dir: &Path) -> PathBuf {
    let image = dir.join("stub-pvh.elf");
    std::fs::write(&image, pvh::pvh_elf()).unwrap();
    image
}

#[test]
fn pvh_stub_boots_under_isolab_and_exits_through_the_debug_port() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let mut config = VmConfig::linux(&image);
    config.memory_bytes = 64 << 20;
    config.console = ConsoleSpec::Discard;
    config.timeout = Duration::from_secs(10);
    config.debug_exit = true;
    let report = isolab_microvm::run(&config).unwrap();
    assert_eq!(report.exit, GuestExit::ExitPort(0));
    assert!(report.pvh_entry, "the image must be entered through PVH");

    // Without the device the write is ignored and the guest halts: the watchdog stops it,
    // which shows the exit above came from the debug port.
    config.debug_exit = false;
    config.timeout = Duration::from_millis(300);
    let err = isolab_microvm::run(&config).unwrap_err();
    assert!(err.to_string().contains("watchdog"), "{err}");
}

#[test]
fn pvh_stub_boots_under_qemu_microvm() {
    if !kvm_or_skip() {
        return;
    }
    let qemu_present = Command::new("qemu-system-x86_64")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !qemu_present {
        eprintln!("skipped: qemu-system-x86_64 is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = write_image(dir.path());
    let argv = pvh::qemu_argv(&image, 64);
    let output = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(pvh::QEMU_SUCCESS_STATUS),
        "QEMU: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
