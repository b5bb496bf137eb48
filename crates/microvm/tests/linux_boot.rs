//! Real Linux kernels through the VMM: they must print "Linux version" and our exact command
//! line on the serial console. On a host whose guest kernel mode is emulated (kvm_pvm) that is
//! as far as Linux gets in reasonable time; where CPL0 is native we also require init.

use isolab_microvm::{ConsoleSpec, GuestSpec, Platform, VmConfig, VmError};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{cache_dir, kvm_or_skip, project_kernel};

fn debian_bzimage() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Boots `kernel` and checks the console; returns the captured console.
fn boot_and_check(kernel: &Path, initrd: Option<PathBuf>, timeout: Duration) -> String {
    let native = Platform::detect().cpl0_native().unwrap_or(false);
    // A unique token proves the kernel read *our* command line.
    let token = format!("isolab.test={}", std::process::id());
    // earlyprintk: the banner goes out as soon as it is printed, not when the console driver
    // registers (seconds later when guest kernel mode is emulated).
    let cmdline =
        format!("console=ttyS0 earlyprintk=ttyS0 reboot=k panic=-1 pci=off nomodule {token}");
    let config = VmConfig {
        guest: GuestSpec::Linux {
            kernel: kernel.to_path_buf(),
            initrd,
            cmdline: cmdline.clone(),
        },
        vcpus: 1,
        memory_bytes: 256 << 20,
        timeout,
        console: ConsoleSpec::Capture,
        debug_exit: false,
    };
    // Stop as soon as the banner and command line are out (on PVM nothing better follows).
    let wanted = token.clone();
    let (console, result) = isolab_microvm::vmm::run_until_console(&config, move |text| {
        !native && text.contains("Linux version") && text.contains(&wanted)
    });
    eprintln!(
        "--- console of {} ({} bytes) ---",
        kernel.display(),
        console.len()
    );
    eprintln!(
        "{}",
        console.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    eprintln!("--- result: {result:?}");
    assert!(
        console.contains("Linux version"),
        "no banner from {}",
        kernel.display()
    );
    assert!(
        console.contains(&cmdline),
        "command line not echoed by {}",
        kernel.display()
    );
    if native {
        assert!(
            console.contains("Run /init") || console.contains("Freeing unused kernel"),
            "kernel did not reach init on a host with native guest CPL0"
        );
    }
    console
}

#[test]
fn project_kernel_vmlinux_pvh_prints_banner_and_cmdline() {
    if !kvm_or_skip() {
        return;
    }
    let Some(kernel) = project_kernel("vmlinux") else {
        eprintln!(
            "skipping: no {}/vmlinux (build it with guests/kernel)",
            cache_dir().display()
        );
        return;
    };
    let initrd = project_kernel("initramfs.cpio");
    boot_and_check(&kernel, initrd, Duration::from_secs(120));
}

#[test]
fn project_kernel_bzimage_prints_banner_and_cmdline() {
    if !kvm_or_skip() {
        return;
    }
    let Some(kernel) = project_kernel("bzImage") else {
        eprintln!(
            "skipping: no {}/bzImage (build it with guests/kernel)",
            cache_dir().display()
        );
        return;
    };
    boot_and_check(&kernel, None, Duration::from_secs(240));
}

/// Debian ships only a bzImage; its compressed payload decompresses in guest kernel mode,
/// which is emulated on kvm_pvm (minutes). Like QEMU's PVH boot, take the ELF vmlinux out of
/// it (what scripts/extract-vmlinux does) and boot that.
fn extract_vmlinux(bzimage: &Path, dir: &Path) -> Result<PathBuf, String> {
    let data = std::fs::read(bzimage).map_err(|e| e.to_string())?;
    let formats: [(&[u8], &str, &[&str]); 4] = [
        (b"\x02\x21\x4c\x18", "lz4", &["-dc"]),
        (b"\x28\xb5\x2f\xfd", "zstd", &["-dcq"]),
        (b"\xfd7zXZ\x00", "xz", &["-dcq"]),
        (b"\x1f\x8b\x08", "gzip", &["-dcq"]),
    ];
    let out = dir.join("vmlinux");
    for (magic, tool, args) in formats {
        let Some(offset) = data.windows(magic.len()).position(|w| w == magic) else {
            continue;
        };
        let payload = dir.join("payload");
        std::fs::write(&payload, &data[offset..]).map_err(|e| e.to_string())?;
        let file = std::fs::File::create(&out).map_err(|e| e.to_string())?;
        let status = std::process::Command::new(tool)
            .args(args)
            .arg(&payload)
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_err() {
            return Err(format!("{tool} is not installed (apt-get install {tool})"));
        }
        // Decompressors complain about the bytes after the payload; the ELF is what counts.
        let head = std::fs::read(&out).map_err(|e| e.to_string())?;
        if head.starts_with(b"\x7fELF") {
            return Ok(out);
        }
    }
    Err("no known compressed payload found".into())
}

#[test]
fn debian_cloud_kernel_prints_banner_and_cmdline() {
    if !kvm_or_skip() {
        return;
    }
    let Some(bzimage) = debian_bzimage() else {
        eprintln!(
            "skipping: no /boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = match extract_vmlinux(&bzimage, dir.path()) {
        Ok(kernel) => kernel,
        Err(reason) => {
            eprintln!(
                "skipping: cannot extract vmlinux from {}: {reason}",
                bzimage.display()
            );
            return;
        }
    };
    boot_and_check(&kernel, None, Duration::from_secs(300));
}

#[test]
fn bad_kernels_are_clean_errors() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |path: &Path| {
        let mut config = VmConfig::linux(path);
        config.console = ConsoleSpec::Discard;
        config.timeout = Duration::from_secs(5);
        isolab_microvm::run(&config).unwrap_err()
    };
    let missing = run(&dir.path().join("nope"));
    assert!(matches!(missing, VmError::ReadFile { .. }), "{missing}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let err = run(&empty);
    assert!(
        matches!(err, VmError::BadKernel { .. }) && err.to_string().contains("empty"),
        "{err}"
    );

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    assert!(matches!(run(&garbage), VmError::BadKernel { .. }));

    // A truncated ELF: the header promises program headers that are not there.
    if let Some(kernel) = project_kernel("vmlinux") {
        let bytes = std::fs::read(&kernel).unwrap();
        let truncated = dir.path().join("truncated-vmlinux");
        std::fs::write(&truncated, &bytes[..100]).unwrap();
        let err = run(&truncated);
        assert!(matches!(err, VmError::BadKernel { .. }), "{err}");
    }
    // A truncated bzImage: header present, kernel body cut short.
    if let Some(kernel) = debian_bzimage() {
        let bytes = std::fs::read(&kernel).unwrap();
        let truncated = dir.path().join("truncated-bzImage");
        std::fs::write(&truncated, &bytes[..0x300]).unwrap();
        let err = run(&truncated);
        assert!(matches!(err, VmError::BadKernel { .. }), "{err}");
    }
}
