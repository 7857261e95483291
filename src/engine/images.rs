//! Images: import of a directory, pull and push through the registry, commit of a container's rootfs,
//! removal, and collecting the layer subvolumes no image stands on.

use std::path::Path;
use std::sync::Arc;

use oci_spec::image::ImageConfiguration;
use tracing::{info, warn};

use super::oci_config::{commit_config, import_config};
use super::records::ImageRecord;
use super::state::Image;
use super::{Changed, Engine, EventType};
use crate::caller::Caller;
use crate::error::Error;
use crate::model::{ContainerStatus, Op};
use crate::registry::{normal_form, normalize, PullSpec, PushSource, PushSpec};
use crate::request::ConfigChange;
use crate::{ids, json, times};

impl Engine {
    /// Makes an image of directory `dir`, read as `caller` (the store opens, checks and copies it).
    pub(super) fn import(&self, dir: &Path, changes: &[ConfigChange], caller: &Caller) -> Result<String, Error> {
        let id = ids::new_id("img_");
        let size = self.store.import_dir(&id, dir, caller)?;
        let record = ImageRecord {
            id: id.clone(),
            source: dir.display().to_string(),
            names: Vec::new(),
            created: times::now_rfc3339(),
            size,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
            steps: Vec::new(),
        };
        let config_raw = import_config(&record.created, changes);
        self.add_image(record, config_raw)?;
        info!(image = %id, source = %dir.display(), size, uid = caller.uid, "imported image");
        self.event(EventType::Image, &id, "import", &[("source", &dir.display().to_string())]);
        Ok(id)
    }

    /// Records an image whose subvolume is complete and makes it visible; on failure, deletes it.
    pub(super) fn add_image(&self, record: ImageRecord, config_raw: Vec<u8>) -> Result<(), Error> {
        let id = record.id.clone();
        let written = ImageConfiguration::from_reader(config_raw.as_slice())
            .map_err(|e| Error::Invalid(format!("image config: {e}")))
            .and_then(|config| {
                self.write_image_records(&record, &config_raw).map(|()| Image { record, config, config_raw })
            });
        match written {
            Ok(image) => {
                let mut st = self.lock();
                st.images.insert(id.clone(), Arc::new(image));
                st.notify(Changed::Image(id));
                Ok(())
            }
            Err(e) => {
                let _ = self.store.delete_image(&id);
                let _ = std::fs::remove_dir_all(self.image_dir(&id));
                Err(e)
            }
        }
    }

    /// Writes an image's `config.json` and `record.json` (each atomically) into its state directory.
    pub(super) fn write_image_records(&self, record: &ImageRecord, config_raw: &[u8]) -> Result<(), Error> {
        let d = self.image_dir(&record.id);
        std::fs::create_dir_all(&d)
            .and_then(|()| json::write_atomic(&d.join("config.json"), config_raw))
            .and_then(|()| json::write_json(&d.join("record.json"), record))
            .map_err(Error::record(format!("the record of image '{}'", record.id)))
    }

    pub(super) fn pull(&self, spec: &PullSpec) -> Result<String, Error> {
        // One pull per reference at a time; the second finds the image the first made.
        let key = spec.reference.whole();
        {
            let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
            while pulling.contains(&key) {
                pulling = self.pulled.wait(pulling).unwrap_or_else(|e| e.into_inner());
            }
            pulling.push(key.clone());
        }
        let name = normal_form(&spec.reference);
        let result = self.registry.pull(spec, &self.store, &|id| self.has_image(id));
        let done = match result {
            Ok(p) if !p.fresh => {
                info!(image = %p.id, reference = %spec.source, "image is here already");
                // The name moves to it from the image that had it, if any.
                self.move_names(Some(&p.id), std::slice::from_ref(&name)).map(|()| p.id)
            }
            Ok(p) => {
                let record = ImageRecord {
                    id: p.id.clone(),
                    source: spec.source.clone(),
                    names: vec![name.clone()],
                    created: times::now_rfc3339(),
                    size: p.size,
                    digest: Some(p.digest.clone()),
                    layers: p.layers.clone(),
                    chain: p.chain.clone(),
                    steps: Vec::new(),
                };
                self.add_image(record, p.config_raw).map(|()| {
                    info!(image = %p.id, reference = %spec.source, digest = %p.digest, "pulled image");
                    self.take_name(&p.id, &name);
                    p.id
                })
            }
            Err(e) => Err(e.into()),
        };
        let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
        pulling.retain(|k| k != &key);
        let alone = pulling.is_empty();
        drop(pulling);
        self.pulled.notify_all();
        if done.is_err() && alone {
            // Layers this failed pull finished stand under no image: drop them.
            self.collect_layers();
        }
        if let Ok(id) = &done {
            self.event(EventType::Image, id, "pull", &[("ref", &name)]);
        }
        done
    }

    /// Takes `name` from every image but `id`, which its record already gives it: should that fail (another
    /// request changing the image that had it), both hold it until the next move, and the newer one, `id`,
    /// is the one it names meanwhile and after a restart.
    fn take_name(&self, id: &str, name: &str) {
        if let Err(e) = self.move_names(Some(id), &[name.to_string()]) {
            warn!(image = %id, name, error = %e, "the name stays on its previous image too for now");
        }
    }

    /// Deletes the layer subvolumes no image stands on. Only while no pull is under way: a pull may be
    /// standing on a layer it has not made an image of yet.
    pub(super) fn collect_layers(&self) {
        if !self.pulling.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return;
        }
        let used: std::collections::HashSet<String> =
            self.view().images.values().flat_map(|i| i.record.chain.clone()).collect();
        for chain in self.store.layers() {
            if !used.contains(&chain) {
                if let Err(e) = self.store.delete_layer(&chain) {
                    warn!(layer = %chain, error = %e, "cannot delete an unused layer");
                }
            }
        }
    }

    pub(super) fn push(&self, spec: &PushSpec) -> Result<String, Error> {
        let (id, source) = {
            let st = self.view();
            let image = st.usable_image(&spec.image)?;
            (
                image.record.id.clone(),
                PushSource {
                    rootfs: self.store.image_path(&image.record.id),
                    config_raw: image.config_raw.clone(),
                    scratch: self.store.dir().join("blobs"),
                },
            )
        };
        let digest = self.registry.push(spec, &source)?;
        info!(image = %spec.image, reference = %spec.reference.whole(), digest = %digest, "pushed image");
        self.event(EventType::Image, &id, "push", &[("ref", &spec.reference.whole()), ("digest", &digest)]);
        Ok(digest)
    }

    /// Makes an image of container `name`'s rootfs, running or not: a read-only snapshot, with the config of
    /// the container's image and the container's own command and environment laid over it. `target` is an
    /// existing image id (replaced, never missing meanwhile: see [`Store::place_commit`]) or the name of a
    /// new image. Returns the image id. The container is `committing` meanwhile, a replaced image marked
    /// as being replaced.
    pub(super) fn commit(&self, name: &str, target: &str) -> Result<String, Error> {
        let (config_raw, source_image, existing) = {
            let _held = self.writing(name)?;
            let mut st = self.lock();
            let c = st.container(name)?;
            c.gate(Op::Commit)?;
            let image_id = c.record.image.clone().ok_or_else(|| Error::NoImage(name.to_string()))?;
            // The image may be gone since: the container kept its config.
            let image = st.resolve_image(&image_id).ok();
            // An id or a unique prefix of one replaces that image (bocker's commit); a name makes a new one.
            let existing = match st.resolve_image(target) {
                Ok(i) if target.starts_with("img_") && i.record.id.starts_with(target) => Some(i.record.clone()),
                Err(e @ Error::Ambiguous { .. }) => return Err(e),
                _ if target.starts_with("img_") && target.len() == 16 => {
                    return Err(Error::NoSuchImage(target.to_string()))
                }
                _ => None,
            };
            if let (Some(old), Some(doing)) = (&existing, existing.as_ref().and_then(|o| st.changing_images.get(&o.id)))
            {
                return Err(Error::Changing { what: format!("image '{}'", old.id), doing });
            }
            let source = image.map_or_else(|| image_id.clone(), |i| i.record.source.clone());
            let planned = (commit_config(image.map(|i| i.config_raw.as_slice()), &c.record), source, existing);
            if let Some(old) = &planned.2 {
                st.changing_images.insert(old.id.clone(), REPLACING);
            }
            st.container_mut(name)?.transition = Some(ContainerStatus::Committing);
            st.notify(Changed::Container(name.to_string()));
            planned
        };
        let made = self.make_commit(name, target, config_raw, existing.as_ref());
        let mut st = self.lock();
        if let Ok(c) = st.container_mut(name) {
            if c.transition == Some(ContainerStatus::Committing) {
                c.transition = None;
            }
        }
        if let Some(old) = &existing {
            st.changing_images.remove(&old.id);
        }
        st.notify(Changed::Container(name.to_string()));
        let (id, image) = made?;
        st.images.insert(id.clone(), Arc::new(image));
        st.notify(Changed::Image(id.clone()));
        drop(st);
        info!(container = %name, image = %id, from = %source_image, replaced = existing.is_some(), "committed");
        self.event(EventType::Image, &id, "commit", &[("container", name)]);
        if existing.is_none() {
            self.take_name(&id, &normalize(target)?);
        }
        if existing.is_some() {
            // A replaced pulled image no longer stands on its layers.
            self.collect_layers();
        }
        Ok(id)
    }

    /// The steps of a commit outside the lock: the snapshot staged, the records written (the old ones kept
    /// to undo), then the subvolume placed: both versions are whole throughout.
    fn make_commit(
        &self,
        name: &str,
        target: &str,
        config_raw: Vec<u8>,
        existing: Option<&ImageRecord>,
    ) -> Result<(String, Image), Error> {
        let config = ImageConfiguration::from_reader(config_raw.as_slice())
            .map_err(|e| Error::Invalid(format!("image config: {e}")))?;
        let (staged, size) = self.store.stage_commit(name)?;
        let id = existing.map_or_else(|| ids::new_id("img_"), |r| r.id.clone());
        let names = match existing {
            Some(r) => r.names.clone(),
            None => vec![normalize(target)?],
        };
        let record = ImageRecord {
            id: id.clone(),
            source: existing.map_or_else(|| target.to_string(), |r| r.source.clone()),
            names,
            created: times::now_rfc3339(),
            size,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
            steps: Vec::new(),
        };
        let dir = self.image_dir(&id);
        let old_config = std::fs::read(dir.join("config.json")).ok();
        let placed = self
            .write_image_records(&record, &config_raw)
            .and_then(|()| self.store.place_commit(&staged, &id, existing.is_some()).map_err(Error::from));
        if let Err(e) = placed {
            self.store.discard(&staged);
            match (existing, old_config) {
                (Some(old), Some(cfg)) => {
                    let _ = self.write_image_records(old, &cfg);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            return Err(e);
        }
        Ok((id, Image { record, config, config_raw }))
    }

    /// Removes an image (containers made from it keep their rootfs and its config; only one whose rootfs is
    /// being made from it refuses it): marked as being removed (refusing its use) while its record and
    /// subvolume go.
    pub(super) fn remove_image(&self, id: &str) -> Result<(), Error> {
        let record = {
            let mut st = self.lock();
            let image = st.images.get(id).ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
            if let Some(doing) = st.changing_images.get(id) {
                return Err(Error::Changing { what: format!("image '{id}'"), doing });
            }
            let users = st.image_users(id);
            if !users.is_empty() {
                return Err(Error::InUse { what: format!("image '{id}'"), by: users });
            }
            let record = image.record.clone();
            st.changing_images.insert(id.to_string(), REMOVING);
            record
        };
        let dir = self.image_dir(id);
        let removed = std::fs::remove_file(dir.join("record.json"))
            .map_err(Error::record(format!("the record of '{id}'")))
            .and_then(|()| {
                self.store.delete_image(id).map_err(|e| {
                    let _ = json::write_json(&dir.join("record.json"), &record);
                    Error::from(e)
                })
            });
        let mut st = self.lock();
        st.changing_images.remove(id);
        if removed.is_ok() {
            st.images.remove(id);
            st.notify(Changed::Image(id.to_string()));
        }
        drop(st);
        removed?;
        let _ = std::fs::remove_dir_all(&dir);
        info!(image = %id, "removed image");
        self.event(EventType::Image, id, "remove", &[]);
        self.collect_layers();
        self.collect_steps();
        Ok(())
    }
}

/// What `changing_images` says of an image a request is changing.
pub(super) const REMOVING: &str = "being removed";
pub(super) const REPLACING: &str = "being replaced by a commit";
