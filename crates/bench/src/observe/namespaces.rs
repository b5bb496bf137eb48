//! C7, which namespaces: the kernel offers more namespace types than the six usually named,
//! and a default container gets its own instance of each one it unshares (the link in
//! `/proc/self/ns/NAME` names the instance, so inside and outside differ).

use super::{conclude, observation, Target};
use crate::environment::NotMeasured;
use crate::schema::{ClaimId, Observation};

/// The namespace types this kernel offers, from `/proc/self/ns` (`*_for_children` aside).
pub fn offered_namespaces() -> Result<Vec<String>, NotMeasured> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/ns")
        .map_err(NotMeasured::io("reading /proc/self/ns"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("_for_children"))
        .collect();
    names.sort();
    Ok(names)
}

/// C7: the kernel offers more than the six namespaces the claim names.
pub fn namespaces_offered() -> Observation {
    let mut o = observation(
        ClaimId::C7,
        "kernel-offers-more-than-six-namespaces",
        "host",
        "the kernel offers more namespace types than the six (uts, ipc, pid, net, mnt, user) \
         the claim lists",
    );
    let names = offered_namespaces();
    if let Ok(n) = &names {
        o.figures.insert("offered_count".into(), n.len() as f64);
    }
    conclude(
        o,
        names.map(|n| (n.len() > 6, format!("$ ls /proc/self/ns\n{}", n.join(" ")))),
    )
}

/// C7: for each namespace type, whether `isolab container run` (defaults) gets its own.
pub fn namespaces_used(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let names = offered_namespaces().unwrap_or_default();
    let inside = target.and_then(|t| {
        let script = "for n in /proc/self/ns/*; do echo ${n##*/} $(readlink $n); done";
        t.container(&[], &["sh", "-c", script])
    });
    names
        .iter()
        .map(|name| {
            let o = observation(
                ClaimId::C7,
                &format!("default-container-has-own-{name}-namespace"),
                "isolab-cli-container",
                &format!("a default isolab container gets its own {name} namespace"),
            );
            let result = inside.clone().and_then(|c| {
                let host = std::fs::read_link(format!("/proc/self/ns/{name}"))
                    .map_err(NotMeasured::io(format!("reading /proc/self/ns/{name}")))?;
                let theirs = c
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} ")))
                    .ok_or_else(|| {
                        NotMeasured::NoReading(format!("the container listed no {name} namespace"))
                    })?;
                Ok((
                    theirs.trim() != host.to_string_lossy(),
                    format!("{}\nhost: {name} {}", c.evidence, host.display()),
                ))
            });
            conclude(o, result)
        })
        .collect()
}
