//! Lab 4: the mount namespace and overlay copy-on-write — images are read-only layers, a
//! container is a writable layer on top, and commit turns that layer into a new image.

use super::path_str;
use crate::{Lab, LabError, Session};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

pub const LAB: Lab = Lab {
    number: 4,
    name: "overlay",
    summary:
        "writes land in the upper layer only; commit makes a new layer; the image is unchanged",
    claims: &["C9"],
    needs_root: true,
    background: "\
An image is a stack of read-only directories (layers). overlayfs shows them merged, with one
writable directory on top, the container's \"upper\" layer: a new or changed file is copied up
into it, and a deleted file leaves a \"whiteout\" there (a character device 0:0) that hides the
file below. The mount itself lives in the container's mount namespace, so the host never sees
the merged view. `isolab commit` turns the upper layer into a new read-only layer and an
image that lists it on top of the old ones.

What to look for: after writing /greeting and deleting /bin/ls, the upper directory on the host
holds exactly those two changes; the image's own layer still has /bin/ls and no /greeting; the
committed image shows the changes, the original image does not.",
    run,
};

fn run(s: &mut Session) -> Result<(), LabError> {
    let name = "lab4-cow";
    s.keep_container(name);
    s.container(&[
        "--name",
        name,
        "--",
        "sh",
        "-c",
        "echo hello from the upper layer > /greeting; rm /bin/ls",
    ])?;
    let ls = s.isolab(&["container", "ls", "--json"])?;
    let (upper, lower) = layers_of(&ls.stdout, name).ok_or_else(|| LabError::Output {
        command: "isolab container ls --json".into(),
        detail: format!("no container {name} with an upper and a lower layer"),
    })?;
    s.host("find", &[&path_str(&upper)])?;
    let greeting = std::fs::read_to_string(upper.join("greeting")).unwrap_or_default();
    let whiteout = std::fs::symlink_metadata(upper.join("bin/ls"))
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false);
    s.check(
        "writes-in-upper-layer",
        greeting.contains("hello from the upper layer") && whiteout,
        format!(
            "upper/greeting {}; upper/bin/ls {}",
            if greeting.is_empty() {
                "missing"
            } else {
                "holds the new text"
            },
            if whiteout {
                "is a whiteout (char device 0:0)"
            } else {
                "is not a whiteout"
            }
        ),
    );
    let lower_ls = lower.join("bin/ls");
    let lower_greeting = lower.join("greeting");
    s.host("ls", &["-l", &path_str(&lower_ls)])?;
    let untouched = std::fs::symlink_metadata(&lower_ls).is_ok() && !lower_greeting.exists();
    s.check(
        "image-layer-unchanged",
        untouched,
        format!(
            "the image's layer {} /bin/ls and {} /greeting",
            if lower_ls.exists() || lower_ls.is_symlink() {
                "still has"
            } else {
                "lost"
            },
            if lower_greeting.exists() {
                "has"
            } else {
                "has no"
            }
        ),
    );

    s.isolab(&["commit", name, "lab4-image"])?;
    s.isolab(&["image", "ls"])?;
    let probe =
        "cat /greeting 2>/dev/null || echo no greeting; ls /bin/ls 2>/dev/null || echo no ls";
    let new = s.container(&["--rm", "--image", "lab4-image", "--", "sh", "-c", probe])?;
    let old = s.container(&["--rm", "--", "sh", "-c", probe])?;
    let new_ok = new.stdout.contains("hello from the upper layer") && new.stdout.contains("no ls");
    let old_ok = old.stdout.contains("no greeting") && old.stdout.contains("/bin/ls");
    s.check(
        "commit-makes-a-layer",
        new_ok && old_ok,
        format!(
            "lab4-image: {}; busybox: {}",
            new.stdout.trim().replace('\n', ", "),
            old.stdout.trim().replace('\n', ", ")
        ),
    );
    Ok(())
}

/// The container's upper directory and its image's bottom layer, from `container ls --json`.
fn layers_of(json: &str, name: &str) -> Option<(PathBuf, PathBuf)> {
    let list: serde_json::Value = serde_json::from_str(json).ok()?;
    let c = list
        .as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))?;
    let upper = PathBuf::from(c["dirs"]["upper"].as_str()?);
    let lower = PathBuf::from(c["dirs"]["layers"].as_array()?.first()?.as_str()?);
    Some((upper, lower))
}
