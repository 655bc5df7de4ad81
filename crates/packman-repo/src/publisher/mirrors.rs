//! The repository's signed mirror list: the target [`layout::MIRRORS_TARGET`], read back from
//! the published tree and republished as a whole on each change (one publish per change, by
//! the ordinary pipeline).

use super::*;
use packman_tuf::mirrors::{MirrorEntry, MirrorList};

impl Repository {
    /// The mirror list as published (empty if the repository has none). The published bytes
    /// are checked against their signed length and hashes before they are believed.
    pub fn mirrors(&mut self) -> Result<MirrorList, Error> {
        let Some(tf) = self.target(layout::MIRRORS_TARGET)? else { return Ok(MirrorList::default()) };
        let paths = layout::RepoPaths::new(&self.dir);
        let path = match tf.name_hash() {
            Some(h) => paths.hashed_target(layout::MIRRORS_TARGET, h),
            None => paths.target(layout::MIRRORS_TARGET),
        };
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let corrupt = |reason: String| Error::Corrupt { path: path.clone(), reason };
        tf.verify(&bytes).map_err(|m| corrupt(m.to_string()))?;
        MirrorList::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// Adds a mirror at the end of the list (staged: [`Repository::publish`] publishes it).
    pub fn add_mirror(&mut self, entry: MirrorEntry) -> Result<(), Error> {
        let mut list = self.mirrors()?;
        if list.mirrors.iter().any(|m| m.name == entry.name) {
            return Err(Error::Mirrors { reason: format!("a mirror named {:?} is already listed", entry.name) });
        }
        list.mirrors.push(entry);
        self.stage_mirrors(&list)
    }

    /// Removes the mirror named `name` (staged). Returns whether it was listed.
    pub fn remove_mirror(&mut self, name: &str) -> Result<bool, Error> {
        let mut list = self.mirrors()?;
        let before = list.mirrors.len();
        list.mirrors.retain(|m| m.name != name);
        if list.mirrors.len() == before {
            return Ok(false);
        }
        self.stage_mirrors(&list)?;
        Ok(true)
    }

    fn stage_mirrors(&mut self, list: &MirrorList) -> Result<(), Error> {
        list.check().map_err(|e| Error::Mirrors { reason: e.to_string() })?;
        self.add_target_bytes(layout::MIRRORS_TARGET, list.to_bytes(), None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn entry(name: &str) -> MirrorEntry {
        MirrorEntry {
            name: name.into(),
            metadata_url: format!("https://{name}.example/metadata/"),
            targets_url: format!("https://{name}.example/targets/"),
        }
    }

    #[test]
    fn the_list_is_a_signed_target_read_back_verified() {
        let now = OffsetDateTime::now_utc();
        let d = tempfile::tempdir().unwrap();
        let opts = InitOptions { bins: 4, ..InitOptions::default() };
        let mut repo = Repository::init(d.path(), &opts, now).unwrap();
        assert!(repo.mirrors().unwrap().mirrors.is_empty());
        repo.add_mirror(entry("eu")).unwrap();
        repo.publish(&mut no_pass).unwrap();
        repo.add_mirror(entry("us")).unwrap();
        repo.publish(&mut no_pass).unwrap();
        assert!(matches!(repo.add_mirror(entry("eu")), Err(Error::Mirrors { .. })));
        let bad = MirrorEntry { metadata_url: "ftp://x/".into(), ..entry("ftp") };
        assert!(matches!(repo.add_mirror(bad), Err(Error::Mirrors { .. })));
        assert!(!repo.remove_mirror("nowhere").unwrap());
        drop(repo);

        // As a client sees it: a target signed by the metadata, in order.
        let listed = verified_targets(d.path(), now);
        let tf = &listed[layout::MIRRORS_TARGET];
        let path = layout::RepoPaths::new(d.path()).hashed_target(layout::MIRRORS_TARGET, tf.name_hash().unwrap());
        let list = MirrorList::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(list.mirrors, [entry("eu"), entry("us")]);

        let mut repo = Repository::open(d.path(), None, now).unwrap();
        assert!(repo.remove_mirror("eu").unwrap());
        repo.publish(&mut no_pass).unwrap();
        assert_eq!(repo.mirrors().unwrap().mirrors, [entry("us")]);
        // Published bytes that no longer match their signed hashes are not believed.
        let tf = repo.target(layout::MIRRORS_TARGET).unwrap().unwrap();
        let path = layout::RepoPaths::new(d.path()).hashed_target(layout::MIRRORS_TARGET, tf.name_hash().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] = b' ';
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(repo.mirrors(), Err(Error::Corrupt { .. })));
    }
}
