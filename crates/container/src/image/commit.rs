//! `commit`: a stopped container's upper dir frozen as a new layer on top of its image's layers
//! (see the module header of `image` for why that is all a commit is).

use super::{copy, validate_name, Image, ImageError, Store, NO_IMAGE};

impl Store {
    /// Freezes a stopped container's changes (its overlay upper dir) as a new layer and writes
    /// image `new_image` = the container's layers + that layer.
    pub fn commit(
        &self,
        container: &str,
        new_image: &str,
        message: Option<&str>,
    ) -> Result<Image, ImageError> {
        validate_name("image", new_image)?;
        let record = self.container(container)?;
        if let Some(pid) = record.state.live_pid() {
            return Err(ImageError::ContainerRunning { id: record.id, pid });
        }
        if record.config.image == NO_IMAGE {
            return Err(ImageError::NotFromImage(record.id));
        }
        let _lock = self.lock()?;
        if self.image_path(new_image).exists() {
            return Err(ImageError::ImageExists(new_image.to_string()));
        }
        let created_by = message.map(str::to_string).unwrap_or_else(|| {
            format!(
                "isolab commit {} (from image {})",
                record.dirs.id, record.config.image
            )
        });
        // A user-namespace container wrote its upper dir with host ids (container root =
        // host_base); the layer must hold the ids the container saw. Rootless, the copy keeps
        // the caller's own ids instead: that store's layers hold container root as the caller.
        let id_shift = record
            .config
            .spec
            .as_ref()
            .filter(|spec| spec.namespaces.contains(crate::Namespace::User))
            .map(|spec| {
                let map = spec.id_mapping.unwrap_or_default();
                (map.host_base, map.count)
            });
        let upper = record.dirs.upper.clone();
        let layer = self.new_layer(&created_by, |dst| {
            copy::copy_tree_shifted(&upper, dst, copy::CopyMode::Commit, id_shift)
        })?;
        let mut layer_ids = record.config.layer_ids.clone();
        layer_ids.push(layer.id.clone());
        self.write_image(
            new_image,
            layer_ids,
            Some(record.config.image.clone()),
            created_by,
            false,
        )
        .inspect_err(|_| self.delete_layers(&[layer.id]))
    }
}
