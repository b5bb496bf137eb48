//! C6, root in a container is root on the host: without a user namespace, uid 0 inside is
//! uid 0 outside, so a file the host's root owns is writable through a bind mount. With
//! `--userns`, container root is an unprivileged uid outside and the same write fails.

use super::{conclude, observation, write_file, Target};
use crate::environment::NotMeasured;
use crate::schema::{ClaimId, Observation};

/// C6: container root appends to a root-owned, mode 0644 host file through a bind mount.
pub fn root_writes_host_file(target: Result<&Target, NotMeasured>, userns: bool) -> Observation {
    let env = if userns {
        "isolab-cli-container-userns"
    } else {
        "isolab-cli-container"
    };
    let o = observation(
        ClaimId::C6,
        "root-writes-host-file-through-bind-mount",
        env,
        "root in the container appends to a root-owned 0644 host file bind-mounted into it",
    );
    conclude(
        o,
        target.and_then(|t| {
            let dir = t.scratch.join(format!("observe-c6-{}", u8::from(userns)));
            let file = dir.join("owned-by-host-root");
            write_file(&file, "written by the host\n", 0o644)?;
            let volume = format!("{}:/host", dir.display());
            let mut flags = vec!["-v", &volume];
            if userns {
                flags.push("--userns");
            }
            let c = t.container(
                &flags,
                &[
                    "sh",
                    "-c",
                    "echo from-container >> /host/owned-by-host-root",
                ],
            );
            let after = std::fs::read_to_string(&file).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            let c = c?;
            Ok((
                after.contains("from-container"),
                format!("{}\nhost file afterwards: {:?}", c.evidence, after),
            ))
        }),
    )
}
