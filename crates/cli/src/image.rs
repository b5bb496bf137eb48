//! `isolab image …`: manage images, i.e. ordered stacks of read-only layers.
//!
//! A layer is a directory of files that changed relative to the layers below it; an image lists
//! its layers bottom first, and a container sees them merged by overlayfs, with its own writable
//! layer on top. The store itself (and how overlayfs works) is documented in
//! `isolab_container::image`.

use anyhow::Result;
use clap::Subcommand;
use isolab_container::image::{Image, Store};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import a root filesystem as a new one-layer image
    ///
    /// SRC is a directory (copied with owners, modes, links, device nodes and xattrs) or a tar
    /// archive, plain or gzip, such as `docker export CONTAINER > rootfs.tar` writes.
    ///
    /// Example:
    ///   isolab image import ./rootfs.tar alpine
    #[command(verbatim_doc_comment)]
    Import {
        /// Directory or .tar / .tar.gz file.
        src: PathBuf,
        /// Name of the new image: a-z 0-9 _ . - (up to 64 characters).
        name: String,
    },
    /// List images: name, number of layers, size, age.
    #[command(alias = "list")]
    Ls {
        /// Print JSON (with every layer's path) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one image as JSON: its layers (bottom first), parent and origin.
    Inspect {
        /// Image name.
        name: String,
    },
    /// Remove an image, and every layer of it no other image or container uses.
    ///
    /// Refused while a container created from it exists (remove those first).
    Rm {
        /// Image name.
        name: String,
    },
    /// Save a stopped container's changes as a new image ("docker commit ≈ git commit")
    ///
    /// The container's writable overlay layer (its upper dir: new and changed files, plus
    /// whiteouts for deleted ones) is frozen into a read-only layer; the new image is the
    /// container's image plus that layer, so it shares every lower layer on disk.
    ///
    /// Example:
    ///   isolab container run --name build -- sh -c 'echo hi > /greeting'
    ///   isolab image commit build greeter -m "add /greeting"
    #[command(verbatim_doc_comment)]
    Commit {
        /// Container id, id prefix or name.
        container: String,
        /// Name of the new image.
        new_image: String,
        /// What changed (shown as CREATED BY in `isolab image inspect`).
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Build (or rebuild) the default image `busybox` from the host's static /bin/busybox.
    ///
    /// One layer: busybox, a symlink per applet (sh, ls, ...), and a minimal /etc. `isolab
    /// container run` builds it on first use; run this after upgrading busybox-static.
    Default,
}

pub fn run(cmd: ImageCommand) -> Result<u8> {
    let store = Store::open(&Store::default_home())?;
    match cmd {
        ImageCommand::Import { src, name } => {
            let image = store.import(&src, &name)?;
            println!(
                "{} ({}, layer {})",
                image.name,
                human_size(image.size_bytes),
                top(&image)
            );
        }
        ImageCommand::Ls { json } => {
            let images = store.list_images()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                print_table(&images);
            }
        }
        ImageCommand::Inspect { name } => {
            println!("{}", serde_json::to_string_pretty(&store.image(&name)?)?);
        }
        ImageCommand::Rm { name } => {
            store.remove_image(&name)?;
            println!("{name}");
        }
        ImageCommand::Commit {
            container,
            new_image,
            message,
        } => {
            let image = store.commit(&container, &new_image, message.as_deref())?;
            println!(
                "{} ({} layers, new layer {})",
                image.name,
                image.layers.len(),
                top(&image)
            );
        }
        ImageCommand::Default => {
            let image = store.rebuild_default_image()?;
            println!(
                "{} ({}, layer {})",
                image.name,
                human_size(image.size_bytes),
                top(&image)
            );
        }
    }
    Ok(0)
}

fn top(image: &Image) -> &str {
    image.layer_ids.last().map(String::as_str).unwrap_or("-")
}

fn print_table(images: &[Image]) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("{:<24} {:>6} {:>10}  CREATED", "NAME", "LAYERS", "SIZE");
    for image in images {
        println!(
            "{:<24} {:>6} {:>10}  {}",
            image.name,
            image.layers.len(),
            human_size(image.size_bytes),
            age(now.saturating_sub(image.created_unix_s))
        );
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn age(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} seconds ago"),
        60..=3599 => format!("{} minutes ago", seconds / 60),
        3600..=86_399 => format!("{} hours ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_like_docker() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1_982_256), "1.9 MiB");
        assert_eq!(age(5), "5 seconds ago");
        assert_eq!(age(7200), "2 hours ago");
    }
}
