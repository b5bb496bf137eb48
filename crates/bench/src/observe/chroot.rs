//! C10, chroot vs pivot_root: `chroot` only moves a process's idea of `/`, and root inside
//! can walk back out of it; `pivot_root` moves the mount tree itself, so there is nothing
//! outside left to walk to.

use super::{conclude, observation, write_file, Target};
use crate::environment::NotMeasured;
use crate::probes::Probe;
use crate::schema::{ClaimId, Observation};

/// C10: the classic chroot escape reads a host file from a container entered with `--chroot`,
/// and does not from one entered with `pivot_root` (isolab's default).
pub fn chroot_escape(target: Result<&Target, NotMeasured>, chroot: bool) -> Observation {
    let env = if chroot {
        "isolab-cli-container-chroot"
    } else {
        "isolab-cli-container"
    };
    let o = observation(
        ClaimId::C10,
        "chroot-escape-reads-host-file",
        env,
        "a root process inside escapes its root (mkdir, chroot, chdir .. ×64, chroot .) and \
         reads a host file",
    );
    conclude(
        o,
        target.and_then(|t| {
            let dir = t.scratch.join(format!("observe-c10-{}", u8::from(chroot)));
            let marker = dir.join("host-marker");
            let secret = format!("host-only-{}", std::process::id());
            write_file(&marker, &secret, 0o644)?;
            let escape = t.rootfs.join("probes/chroot-escape");
            Probe::ChrootEscape
                .write_to(&escape)
                .map_err(NotMeasured::io(format!("writing {}", escape.display())))?;
            let marker_s = marker.to_string_lossy().into_owned();
            let flags: &[&str] = if chroot { &["--chroot"] } else { &[] };
            let c = t.container(flags, &["/probes/chroot-escape", "/bin/cat", &marker_s]);
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&escape);
            let c = c?;
            Ok((c.stdout.contains(&secret), c.evidence))
        }),
    )
}
