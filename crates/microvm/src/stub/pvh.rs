//! The stub guest with a PVH entry: one image that both isolab and QEMU boot, to compare the
//! two VMMs on the same guest.
//!
//! guests/stub/pvh.S is entered the way every PVH kernel is (32-bit protected mode, paging
//! off), switches itself to long mode, runs `true` and writes 0 to the `isa-debug-exit` port.
//! Whatever the VMM, the path is the same: process start → VM → first guest instruction → the
//! guest's own mode switch → exit → process exit.
//!
//! Under QEMU (a write of V makes QEMU exit with status `(V << 1) | 1`, so success is 1):
//!
//! ```text
//! isolab vm stub-image --out stub-pvh.elf
//! qemu-system-x86_64 -M microvm -accel kvm -cpu host,-arch-capabilities,-cx16 -m 64M \
//!     -nodefaults -no-user-config -nographic -display none \
//!     -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel stub-pvh.elf        # exit status 1
//! ```
//!
//! (`-cpu host` alone makes QEMU abort on hosts whose KVM refuses MSR 0x10a, kvm_pvm among
//! them.) Under isolab, through the same PVH path a Linux vmlinux takes:
//!
//! ```text
//! isolab vm run --kernel stub-pvh.elf --debug-exit --memory 64M                # exit status 0
//! ```

use std::ffi::OsString;
use std::path::Path;

/// What QEMU exits with when the guest wrote 0 (success) to `isa-debug-exit`.
pub const QEMU_SUCCESS_STATUS: i32 = 1;

static PVH_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/isolab-stub-pvh.elf"));

/// The PVH stub guest image (an ELF with a `XEN_ELFNOTE_PHYS32_ENTRY` note), to write to a file
/// and give to `qemu-system-x86_64 -kernel` or `isolab vm run --kernel ... --debug-exit`.
pub fn pvh_elf() -> &'static [u8] {
    PVH_ELF
}

/// The QEMU command line that boots `image` (written from [`pvh_elf`]) with `memory_mib` of
/// RAM; the process exits with [`QEMU_SUCCESS_STATUS`] when the guest succeeded.
pub fn qemu_argv(image: &Path, memory_mib: u64) -> Vec<OsString> {
    let mut argv: Vec<OsString> = [
        "qemu-system-x86_64",
        "-M",
        "microvm",
        "-accel",
        "kvm",
        "-cpu",
        "host,-arch-capabilities,-cx16",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-display",
        "none",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-m",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    argv.push(format!("{memory_mib}M").into());
    argv.push("-kernel".into());
    argv.push(image.into());
    argv
}

/// The arguments of `isolab` (after the program name) that boot the same image, with the same
/// memory, through isolab's PVH path; it exits with 0 when the guest succeeded.
pub fn isolab_args(image: &Path, memory_mib: u64) -> Vec<OsString> {
    let mut argv: Vec<OsString> = ["vm", "run", "--debug-exit", "--memory"]
        .iter()
        .map(OsString::from)
        .collect();
    argv.push(format!("{memory_mib}M").into());
    argv.push("--kernel".into());
    argv.push(image.into());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_an_elf_with_a_pvh_note() {
        let elf = pvh_elf();
        assert_eq!(&elf[..4], b"\x7fELF");
        // The note: namesz 4, descsz 8, type 18 (XEN_ELFNOTE_PHYS32_ENTRY), "Xen\0".
        let mut note = Vec::new();
        for word in [4u32, 8, 18] {
            note.extend_from_slice(&word.to_le_bytes());
        }
        note.extend_from_slice(b"Xen\0");
        assert!(elf.windows(note.len()).any(|w| w == note.as_slice()));
    }

    #[test]
    fn both_command_lines_name_the_image_and_memory() {
        let image = Path::new("/tmp/stub-pvh.elf");
        let qemu = qemu_argv(image, 64);
        assert!(qemu
            .iter()
            .any(|a| a == "isa-debug-exit,iobase=0xf4,iosize=4"));
        let tail: Vec<OsString> = vec!["64M".into(), "-kernel".into(), image.into()];
        assert_eq!(qemu[qemu.len() - 3..], tail[..]);
        let isolab = isolab_args(image, 64);
        let head: Vec<OsString> = vec!["vm".into(), "run".into(), "--debug-exit".into()];
        assert_eq!(isolab[..3], head[..]);
        assert_eq!(isolab.last().unwrap(), image.as_os_str());
    }
}
