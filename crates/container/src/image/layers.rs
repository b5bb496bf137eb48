//! Layers are written once and shared: built aside and renamed into place, referenced by image
//! manifests and container configs, and deleted only when nothing references them any more.

use super::files::{now_unix_s, random_hex, write_json_atomic, RemoveOnDrop};
use super::{copy, Image, ImageError, ImageManifest, LayerInfo, Store};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

impl Store {
    /// Builds a layer in `layers/.tmp-<id>` with `fill`, then renames it into place, so a layer
    /// directory either is complete or does not exist. Call with the store lock held.
    pub(super) fn new_layer(
        &self,
        created_by: &str,
        fill: impl FnOnce(&Path) -> Result<u64, ImageError>,
    ) -> Result<LayerInfo, ImageError> {
        let id = random_hex(8);
        let tmp = self.layers.join(format!(".tmp-{id}"));
        fs::create_dir(&tmp).map_err(ImageError::io("create", &tmp))?;
        let guard = RemoveOnDrop::new(tmp.clone());
        // The layer's root becomes the container's `/`: 0755 whatever the umask (a directory
        // import then copies the source's own mode over it).
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(ImageError::io("chmod", &tmp))?;
        let size_bytes = fill(&tmp)?;
        let info = LayerInfo {
            id: id.clone(),
            size_bytes,
            created_unix_s: now_unix_s(),
            created_by: created_by.to_string(),
        };
        write_json_atomic(&self.layers.join(format!("{id}.json")), &info, true)?;
        let dst = self.layer_dir(&id);
        fs::rename(&tmp, &dst).map_err(ImageError::io("rename into", &dst))?;
        guard.disarm();
        Ok(info)
    }

    /// Writes `images/<name>.json` for `layer_ids`; refuses to overwrite unless `replace`.
    pub(super) fn write_image(
        &self,
        name: &str,
        layer_ids: Vec<String>,
        parent: Option<String>,
        created_by: String,
        replace: bool,
    ) -> Result<Image, ImageError> {
        let mut size_bytes = 0;
        for id in &layer_ids {
            size_bytes += self.layer_info(id)?.size_bytes;
        }
        let manifest = ImageManifest {
            name: name.to_string(),
            layers: layer_ids,
            created_unix_s: now_unix_s(),
            size_bytes,
            parent,
            created_by,
        };
        if !write_json_atomic(&self.image_path(name), &manifest, replace)? {
            return Err(ImageError::ImageExists(name.to_string()));
        }
        Ok(self.image_from_manifest(manifest))
    }

    /// Deletes image `name` and every layer of it no other image or container uses. Refuses
    /// while a container created from it exists.
    pub fn remove_image(&self, name: &str) -> Result<(), ImageError> {
        let image = self.image(name)?;
        let _lock = self.lock()?;
        // Hide the image first: a concurrent create_container now fails, and one that read the
        // manifest before the rename notices the change (see create_container) after writing its
        // config, which the scan below then sees.
        let path = self.image_path(name);
        let hidden = self
            .images
            .join(format!(".removing-{name}-{}.json", random_hex(4)));
        fs::rename(&path, &hidden).map_err(|e| match e.kind() {
            ErrorKind::NotFound => ImageError::NoSuchImage(name.to_string()),
            _ => ImageError::io("rename", &path)(e),
        })?;
        let users: Vec<String> = match self.list_containers() {
            Ok(list) => list
                .into_iter()
                .filter(|c| c.config.image == name)
                .map(|c| c.dirs.id)
                .collect(),
            Err(e) => {
                let _ = fs::rename(&hidden, &path);
                return Err(e);
            }
        };
        if !users.is_empty() {
            fs::rename(&hidden, &path).map_err(ImageError::io("restore", &path))?;
            return Err(ImageError::ImageInUse {
                image: name.to_string(),
                containers: users.join(", "),
            });
        }
        fs::remove_file(&hidden).map_err(ImageError::io("remove", &hidden))?;
        self.collect_layers(&image.layer_ids)
    }

    /// Deletes those of `candidates` that no image and no container references. Call with the
    /// lock held.
    pub(super) fn collect_layers(&self, candidates: &[String]) -> Result<(), ImageError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let mut used = std::collections::HashSet::new();
        for image in self.list_images()? {
            used.extend(image.layer_ids);
        }
        for container in self.list_containers()? {
            used.extend(container.config.layer_ids);
        }
        let unused: Vec<String> = candidates
            .iter()
            .filter(|id| !used.contains(*id))
            .cloned()
            .collect();
        self.delete_layers(&unused);
        Ok(())
    }

    /// Renames each layer out of sight, then deletes it: a half-deleted layer is never visible
    /// under its id. Best effort (leftovers are `.trash-*` dirs, harmless).
    pub(super) fn delete_layers(&self, ids: &[String]) {
        for id in ids {
            let dir = self.layer_dir(id);
            let trash = self.layers.join(format!(".trash-{id}"));
            if fs::rename(&dir, &trash).is_ok() {
                let _ = copy::remove_tree(&trash);
            }
            let _ = fs::remove_file(self.layers.join(format!("{id}.json")));
        }
    }

    /// Deletes what removals and failed imports left behind: trashed containers, and layers
    /// being deleted or half-built by an isolab that died. Takes the store lock (a live import
    /// holds it while it builds its `.tmp-` layer).
    pub fn empty_trash(&self) -> Result<(), ImageError> {
        let _lock = self.lock()?;
        for (dir, prefixes) in [
            (&self.containers, &[".rm-"][..]),
            (&self.layers, &[".trash-", ".tmp-"][..]),
        ] {
            let entries = fs::read_dir(dir).map_err(ImageError::io("list", dir))?;
            for entry in entries {
                let entry = entry.map_err(ImageError::io("list", dir))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if prefixes.iter().any(|p| name.starts_with(p)) {
                    copy::ensure_nothing_mounted_under(&entry.path())?;
                    copy::remove_tree(&entry.path())?;
                }
            }
        }
        Ok(())
    }
}
