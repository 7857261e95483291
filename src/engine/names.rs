//! Images' names: what a user types to name an image resolved to one (its id, a unique id prefix, a name
//! in full or short form, an import's directory), a name moved between images (a pull, a commit or a tag
//! takes it from the image that had it, as Docker does) or taken away (untag), the names of records older
//! than names, and the queries of the `images/by-name/` tree.
//!
//! A name is a reference in Docker's normalised form (`docker.io/library/alpine:latest`, see
//! [`crate::registry::normalize`]); an image may carry many, a name belongs to one image at most.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::records::ImageRecord;
use super::state::{Image, State};
use super::{Changed, Engine};
use crate::error::Error;
use crate::json;
use crate::registry::normalize;

/// What `changing_images` says of an image whose names are being rewritten.
pub(super) const NAMING: &str = "being renamed";

impl State {
    /// The image `reference` names: an id, a name (any form Docker takes: `alpine`, `library/alpine`,
    /// `docker.io/library/alpine:latest`), a unique prefix of an id (`img_3f`; an ambiguous one is refused),
    /// or the directory an image was imported from (bocker's `init DIR`; the newest such).
    pub(super) fn resolve_image(&self, reference: &str) -> Result<&Arc<Image>, Error> {
        if let Some(image) = self.images.get(reference) {
            return Ok(image);
        }
        if let Some(image) = normalize(reference).ok().and_then(|name| self.named(&name)) {
            return Ok(image);
        }
        if reference.len() > "img_".len() && reference.starts_with("img_") {
            let found: Vec<&Arc<Image>> = self
                .images
                .range(reference.to_string()..)
                .take_while(|(id, _)| id.starts_with(reference))
                .map(|(_, i)| i)
                .collect();
            match found.as_slice() {
                [] => {}
                [one] => return Ok(one),
                many => {
                    let ids = many.iter().map(|i| i.record.id.clone()).collect();
                    return Err(Error::Ambiguous { prefix: reference.to_string(), ids });
                }
            }
        }
        if reference.starts_with('/') {
            let newest = self
                .images
                .values()
                .filter(|i| i.record.source == reference)
                .max_by(|a, b| a.record.created.cmp(&b.record.created));
            if let Some(image) = newest {
                return Ok(image);
            }
        }
        Err(Error::NoSuchImage(reference.to_string()))
    }

    /// The image holding normalised `name`: the newest, should a crash have left it on two.
    pub(super) fn named(&self, name: &str) -> Option<&Arc<Image>> {
        self.images
            .values()
            .filter(|i| i.record.names.iter().any(|n| n == name))
            .max_by(|a, b| a.record.created.cmp(&b.record.created))
    }

    /// Every name with the id of the image holding it.
    pub(super) fn names(&self) -> BTreeMap<&str, &str> {
        let mut names = BTreeMap::new();
        for i in self.images.values() {
            for n in &i.record.names {
                if self.named(n).is_some_and(|holder| holder.record.id == i.record.id) {
                    names.insert(n.as_str(), i.record.id.as_str());
                }
            }
        }
        names
    }
}

/// Names for images loaded from records: one written before names were (`legacy`, ids whose record has no
/// `names`) is named by its `source` when that is a reference (an import's directory stays a source);
/// a name on two images (two old records of one source, or a move a crash cut short) stays on the newest.
pub(super) fn migrate(images: &mut BTreeMap<String, Arc<Image>>, legacy: &[String]) {
    for id in legacy {
        let Some(image) = images.get_mut(id) else { continue };
        let source = &image.record.source;
        if source.starts_with('/') {
            continue;
        }
        if let Ok(name) = normalize(source) {
            image_mut(image).record.names = vec![name];
        }
    }
    let mut holder: BTreeMap<String, (String, String)> = BTreeMap::new();
    for i in images.values() {
        for n in &i.record.names {
            let newer = holder.get(n).is_none_or(|(created, _)| i.record.created > *created);
            if newer {
                holder.insert(n.clone(), (i.record.created.clone(), i.record.id.clone()));
            }
        }
    }
    for (id, image) in images.iter_mut() {
        if image.record.names.iter().any(|n| holder.get(n).is_some_and(|(_, h)| h != id)) {
            image_mut(image).record.names.retain(|n| holder.get(n).is_some_and(|(_, h)| h == id));
        }
    }
}

/// `Arc::make_mut` for an image, which is not `Clone` as a whole.
fn image_mut(this: &mut Arc<Image>) -> &mut Image {
    if Arc::get_mut(this).is_none() {
        *this = Arc::new(this.with_record(this.record.clone()));
    }
    Arc::get_mut(this).expect("an image just copied has one owner")
}

impl Image {
    /// This image with another record (its names changed).
    pub(super) fn with_record(&self, record: ImageRecord) -> Image {
        Image { record, config: self.config.clone(), config_raw: self.config_raw.clone() }
    }
}

impl Engine {
    /// Gives `names` (normalised) to the image `to` names, each taken from the image that had it; with `to`
    /// `None`, takes them from whichever image has them (ENOENT if none has any). The images whose names
    /// change are marked meanwhile; their records are written before memory shows the change, and a failed
    /// write puts back those already written.
    pub(super) fn move_names(&self, to: Option<&str>, names: &[String]) -> Result<(), Error> {
        let planned: Vec<(Arc<Image>, ImageRecord)> = {
            let mut st = self.lock();
            let to = match to {
                Some(reference) => Some(st.usable_image(reference)?.record.id.clone()),
                None => None,
            };
            let mut planned = Vec::new();
            for image in st.images.values() {
                let ours = to.as_deref() == Some(image.record.id.as_str());
                let mut now = image.record.names.clone();
                now.retain(|n| ours || !names.contains(n));
                if ours {
                    now.extend(names.iter().filter(|n| !image.record.names.contains(n)).cloned());
                }
                if now != image.record.names {
                    if let Some(doing) = st.changing_images.get(&image.record.id) {
                        return Err(Error::Changing { what: format!("image '{}'", image.record.id), doing });
                    }
                    planned.push((Arc::clone(image), ImageRecord { names: now, ..image.record.clone() }));
                }
            }
            if to.is_none() && planned.is_empty() {
                return Err(Error::NoSuchImage(names.join(" ")));
            }
            for (image, _) in &planned {
                st.changing_images.insert(image.record.id.clone(), NAMING);
            }
            planned
        };
        let mut written = 0;
        let mut failed = None;
        for (_, new) in &planned {
            match json::write_json(&self.image_dir(&new.id).join("record.json"), new) {
                Ok(()) => written += 1,
                Err(e) => {
                    failed = Some(Error::record(format!("the record of image '{}'", new.id))(e));
                    break;
                }
            }
        }
        if failed.is_some() {
            for (old, _) in &planned[..written] {
                let _ = json::write_json(&self.image_dir(&old.record.id).join("record.json"), &old.record);
            }
        }
        let mut st = self.lock();
        for (old, new) in planned {
            st.changing_images.remove(&new.id);
            if failed.is_none() {
                let id = new.id.clone();
                st.images.insert(id, Arc::new(old.with_record(new)));
            }
            st.notify(Changed::Image(old.record.id.clone()));
        }
        failed.map_or(Ok(()), Err)
    }

    /// `images/tag`: `name` (normalised) moves to the image `image` names.
    pub(super) fn tag(&self, image: &str, name: &str) -> Result<(), Error> {
        self.move_names(Some(image), &[name.to_string()])?;
        tracing::info!(image, name, "tagged");
        if let Some(id) = self.image_of_name(name) {
            self.event(super::EventType::Image, &id, "tag", &[("name", name)]);
        }
        Ok(())
    }

    /// `images/untag`: `name` (normalised) is taken from its image; the image stays.
    pub(super) fn untag(&self, name: &str) -> Result<(), Error> {
        let had = self.image_of_name(name);
        self.move_names(None, &[name.to_string()])?;
        tracing::info!(name, "untagged");
        if let Some(id) = had {
            self.event(super::EventType::Image, &id, "untag", &[("name", name)]);
        }
        Ok(())
    }
}

impl Engine {
    /// The names of image `id`, as its `names` file lists them.
    pub fn image_names(&self, id: &str) -> Option<Vec<String>> {
        self.view().images.get(id).map(|i| i.record.names.clone())
    }

    /// The image a name (normalised) is on.
    pub fn image_of_name(&self, name: &str) -> Option<String> {
        self.view().named(name).map(|i| i.record.id.clone())
    }

    /// What the directory `dir` of the names' tree holds (`""` is its top; a name's `/`-separated parts
    /// are directories but its last, `REPO:TAG` or `REPO@DIGEST`, a link): each entry's name and whether it
    /// is a name (else a directory). `None` when no name lies under `dir`.
    pub fn name_entries(&self, dir: &str) -> Option<Vec<(String, bool)>> {
        let st = self.view();
        let mut entries: BTreeMap<String, bool> = BTreeMap::new();
        for name in st.names().keys() {
            let rest =
                if dir.is_empty() { Some(*name) } else { name.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) };
            let Some(rest) = rest else { continue };
            match rest.split_once('/') {
                Some((sub, _)) => entries.insert(sub.to_string(), false),
                None => entries.insert(rest.to_string(), true),
            };
        }
        (dir.is_empty() || !entries.is_empty()).then(|| entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, created: &str, source: &str, names: &[&str]) -> Arc<Image> {
        let config_raw = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
        let record = ImageRecord {
            id: id.into(),
            source: source.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            created: created.into(),
            size: 0,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
            steps: Vec::new(),
        };
        let config = oci_spec::image::ImageConfiguration::from_reader(config_raw.as_slice()).unwrap();
        Arc::new(Image { record, config, config_raw })
    }

    fn state(images: Vec<Arc<Image>>) -> State {
        State { images: images.into_iter().map(|i| (i.record.id.clone(), i)).collect(), ..State::default() }
    }

    fn resolved(st: &State, r: &str) -> Result<String, i32> {
        st.resolve_image(r).map(|i| i.record.id.clone()).map_err(|e| e.errno())
    }

    #[test]
    fn an_image_by_id_prefix_name_or_directory() {
        let st = state(vec![
            image("img_aaaa00000001", "2026-01-01T00:00:01Z", "alpine", &["docker.io/library/alpine:latest"]),
            image("img_aaaa00000002", "2026-01-01T00:00:02Z", "/srv/root", &[]),
            image("img_bbbb00000003", "2026-01-01T00:00:03Z", "x", &["localhost:5000/team/app:v1"]),
        ]);
        for r in ["alpine", "alpine:latest", "library/alpine", "docker.io/library/alpine", "img_aaaa00000001"] {
            assert_eq!(resolved(&st, r), Ok("img_aaaa00000001".into()), "{r}");
        }
        assert_eq!(resolved(&st, "localhost:5000/team/app:v1"), Ok("img_bbbb00000003".into()));
        assert_eq!(resolved(&st, "img_b"), Ok("img_bbbb00000003".into()));
        assert_eq!(resolved(&st, "img_aaaa"), Err(libc::EINVAL), "ambiguous");
        let e = st.resolve_image("img_aaaa").err().unwrap().to_string();
        assert!(e.contains("img_aaaa00000001") && e.contains("img_aaaa00000002"), "{e}");
        assert_eq!(resolved(&st, "/srv/root"), Ok("img_aaaa00000002".into()));
        for r in ["alpine:3", "localhost:5000/team/app", "img_c", "img_", "x", "/srv", "UPPER", ""] {
            assert_eq!(resolved(&st, r), Err(libc::ENOENT), "{r}");
        }
    }

    #[test]
    fn old_records_are_named_by_their_source_and_a_name_stays_on_the_newest() {
        let mut images = state(vec![
            image("img_1", "2026-01-01T00:00:01Z", "alpine", &[]),
            image("img_2", "2026-01-01T00:00:02Z", "alpine:latest", &[]),
            image("img_3", "2026-01-01T00:00:03Z", "/srv/root", &[]),
            image("img_4", "2026-01-01T00:00:04Z", "busybox", &[]),
            image("img_5", "2026-01-01T00:00:05Z", "x", &["docker.io/library/a:1", "docker.io/library/b:1"]),
            image("img_6", "2026-01-01T00:00:06Z", "x", &["docker.io/library/a:1"]),
        ])
        .images;
        migrate(&mut images, &["img_1".into(), "img_2".into(), "img_3".into()]);
        let names = |id: &str| images[id].record.names.clone();
        assert_eq!(names("img_1"), Vec::<String>::new());
        assert_eq!(names("img_2"), vec!["docker.io/library/alpine:latest"]);
        assert_eq!(names("img_3"), Vec::<String>::new(), "a directory is a source, not a name");
        assert_eq!(names("img_4"), Vec::<String>::new(), "a new record's names are as written");
        assert_eq!(names("img_5"), vec!["docker.io/library/b:1"]);
        assert_eq!(names("img_6"), vec!["docker.io/library/a:1"]);
    }
}
