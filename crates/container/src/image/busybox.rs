//! The default image: one static busybox and the links that make it a whole userland.
//!
//! busybox is a single executable containing ~300 small tools ("applets"). It picks the applet
//! from the name it was called by (`argv[0]`), so `bin/sh -> busybox` and `bin/ls -> busybox`
//! make one 2 MB file act as a shell and coreutils. It must be **statically linked**: the layer
//! holds no `/lib`, so a dynamically linked binary would fail inside the container with a
//! confusing "No such file or directory" (the missing file being its ELF interpreter,
//! `/lib64/ld-linux-x86-64.so.2`). We check that by reading the ELF program headers: a dynamic
//! executable has a `PT_INTERP` entry naming that interpreter; a static one has none.

use super::ImageError;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

/// ELF program header type of the interpreter path.
const PT_INTERP: u32 = 3;

fn not_usable(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::NoBusybox {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Fails unless `path` is a 64-bit little-endian ELF executable without an interpreter.
pub(crate) fn check_static(path: &Path) -> Result<(), ImageError> {
    let mut file = fs::File::open(path).map_err(|e| not_usable(path, e.to_string()))?;
    let mut elf = Vec::new();
    // Program headers sit near the start; 64 KiB is far more than any real header table.
    file.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut elf)
        .map_err(|e| not_usable(path, e.to_string()))?;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    // e_ident: magic, class 2 (64-bit), data 1 (little-endian).
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(not_usable(
            path,
            "not a 64-bit little-endian ELF executable",
        ));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err(not_usable(path, "truncated ELF header"));
    };
    for i in 0..usize::from(phnum) {
        let offset = usize::try_from(phoff)
            .unwrap_or(usize::MAX)
            .saturating_add(i * usize::from(phentsize));
        match u32_at(offset) {
            Some(PT_INTERP) => {
                return Err(not_usable(
                    path,
                    "it is dynamically linked (has an ELF interpreter) and the image has no /lib",
                ))
            }
            Some(_) => {}
            None => return Err(not_usable(path, "ELF program headers out of range")),
        }
    }
    Ok(())
}

/// The applets' install paths, relative (`bin/sh`, `usr/bin/awk`, ...), as busybox reports them.
fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let run = |flag: &str| Command::new(busybox).arg(flag).output();
    let out = run("--list-full").map_err(|e| not_usable(busybox, e.to_string()))?;
    let list = if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        // Builds without install paths only know the names; put those in bin/.
        let out = run("--list").map_err(|e| not_usable(busybox, e.to_string()))?;
        if !out.status.success() {
            return Err(not_usable(busybox, "`busybox --list` failed"));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|name| format!("bin/{name}\n"))
            .collect()
    };
    let applets: Vec<String> = list
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.split('/').any(|part| part == ".." || part.is_empty()))
        .collect();
    if !applets.iter().any(|a| a == "bin/sh") {
        return Err(not_usable(busybox, "it has no `sh` applet"));
    }
    Ok(applets)
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost\n";

/// Fills `dst` with busybox, its applet links and the few files a shell expects. Returns the
/// apparent size in bytes.
pub(crate) fn build_layer(busybox: &Path, dst: &Path) -> Result<u64, ImageError> {
    let applets = applets(busybox)?;
    let dirs: [(&str, u32); 11] = [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
    ];
    for (dir, mode) in dirs {
        let path = dst.join(dir);
        fs::create_dir(&path).map_err(ImageError::io("create", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(ImageError::io("chmod", &path))?;
    }
    let target = dst.join("bin/busybox");
    fs::copy(busybox, &target).map_err(ImageError::io("copy", busybox))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
        .map_err(ImageError::io("chmod", &target))?;
    let mut size_bytes = fs::metadata(&target)
        .map_err(ImageError::io("stat", &target))?
        .len();

    for applet in &applets {
        if applet == "bin/busybox" {
            continue;
        }
        let link = dst.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(ImageError::io("create", parent))?;
        }
        // Relative, so the link also resolves when the layer is inspected from the host:
        // bin/sh -> busybox, usr/bin/awk -> ../../bin/busybox.
        let depth = applet.matches('/').count();
        let relative = if applet.starts_with("bin/") && depth == 1 {
            "busybox".to_string()
        } else {
            format!("{}bin/busybox", "../".repeat(depth))
        };
        match symlink(&relative, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ImageError::io("create symlink", &link)(e)),
        }
    }

    for (file, content) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/hostname", "isolab\n"),
        ("etc/hosts", HOSTS),
    ] {
        let path = dst.join(file);
        fs::write(&path, content).map_err(ImageError::io("write", &path))?;
        size_bytes += content.len() as u64;
    }
    Ok(size_bytes)
}
