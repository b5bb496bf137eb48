//! Where images come from: a directory or tar archive imported as one layer, and the default
//! `busybox` image built from the host's static busybox.

use super::{busybox, copy, tarball, validate_name, Image, ImageError, Store};
use super::{DEFAULT_IMAGE, HOST_BUSYBOX};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

impl Store {
    /// Imports a directory (copied with modes, owners, links, device nodes and xattrs) or a tar
    /// archive (`.tar`, `.tar.gz`, e.g. `docker export` output) as a new one-layer image.
    pub fn import(&self, src: &Path, name: &str) -> Result<Image, ImageError> {
        validate_name("image", name)?;
        // Resolved, so a symlink to a rootfs imports the rootfs (and its metadata), not the link.
        let src = &fs::canonicalize(src).map_err(|e| match e.kind() {
            ErrorKind::NotFound => ImageError::NoSource(src.to_path_buf()),
            _ => ImageError::io("resolve", src)(e),
        })?;
        let meta = fs::metadata(src).map_err(ImageError::io("stat", src))?;
        if meta.is_dir() {
            let layers = fs::canonicalize(&self.layers).unwrap_or_else(|_| self.layers.clone());
            if layers.starts_with(src) {
                return Err(ImageError::UnsupportedSource {
                    path: src.to_path_buf(),
                    reason: "it contains isolab's own store, so the copy would copy itself"
                        .to_string(),
                });
            }
        }
        let _lock = self.lock()?;
        if self.image_path(name).exists() {
            return Err(ImageError::ImageExists(name.to_string()));
        }
        let created_by = format!("isolab image import {}", src.display());
        let layer = if meta.is_dir() {
            self.new_layer(&created_by, |dst| {
                copy::copy_tree(src, dst, copy::CopyMode::Import)
            })?
        } else if meta.is_file() {
            self.new_layer(&created_by, |dst| tarball::unpack(src, dst))?
        } else {
            return Err(ImageError::UnsupportedSource {
                path: src.to_path_buf(),
                reason: "a special file".to_string(),
            });
        };
        let id = layer.id.clone();
        self.write_image(name, vec![id.clone()], None, created_by, false)
            .inspect_err(|_| self.delete_layers(&[id]))
    }

    /// The `busybox` image, built from the host's static busybox the first time it is needed.
    pub fn ensure_default_image(&self) -> Result<Image, ImageError> {
        match self.image(DEFAULT_IMAGE) {
            Err(ImageError::NoSuchImage(_)) => {}
            other => return other,
        }
        let _lock = self.lock()?;
        // Another isolab may have built it while we waited for the lock.
        match self.image(DEFAULT_IMAGE) {
            Err(ImageError::NoSuchImage(_)) => {}
            other => return other,
        }
        self.build_default_image(Path::new(HOST_BUSYBOX))
    }

    /// Rebuilds the `busybox` image from the host's busybox (after a busybox upgrade). The old
    /// layer is deleted unless a container or another image still uses it.
    pub fn rebuild_default_image(&self) -> Result<Image, ImageError> {
        let _lock = self.lock()?;
        self.build_default_image(Path::new(HOST_BUSYBOX))
    }

    /// Call with the lock held.
    pub(super) fn build_default_image(&self, busybox: &Path) -> Result<Image, ImageError> {
        busybox::check_static(busybox)?;
        let old = match self.image(DEFAULT_IMAGE) {
            Ok(image) => image.layer_ids,
            Err(ImageError::NoSuchImage(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let created_by = format!("isolab image default (from {})", busybox.display());
        let layer = self.new_layer(&created_by, |dst| busybox::build_layer(busybox, dst))?;
        let image = self.write_image(DEFAULT_IMAGE, vec![layer.id], None, created_by, true)?;
        self.collect_layers(&old)?;
        Ok(image)
    }
}
