//! Creating a repository: keys for every role, root v1, targets delegating to hashed bins, and the first publish.

use super::*;
use packman_tuf::layout;

impl Repository {
    /// Creates a new repository in `dir` (which must not already hold one): keys for every
    /// role, root v1 signed by all root keys, targets delegating everything to `bins`
    /// hashed bins (in the shape `opts.bin_style` names), and the first snapshot and timestamp.
    pub fn init(dir: &Path, opts: &InitOptions, now: OffsetDateTime) -> Result<Repository, Error> {
        Repository::init_with(dir, opts, now, |_| Ok(()))
    }

    /// As [`Repository::init`], with `fill` listing targets before the first publish: a bulk
    /// import writes each bin once instead of an empty version first.
    pub fn init_with(
        dir: &Path,
        opts: &InitOptions,
        now: OffsetDateTime,
        fill: impl FnOnce(&mut Repository) -> Result<(), Error>,
    ) -> Result<Repository, Error> {
        if !opts.bins.is_power_of_two() || opts.bins < 2 || opts.bins > 1 << 32 {
            return Err(Error::BinCount { bins: opts.bins });
        }
        if opts.root_threshold < 1 || opts.root_threshold as usize > opts.root_keys {
            return Err(Error::RootThreshold { threshold: opts.root_threshold, keys: opts.root_keys });
        }
        // Refused before any key is made: the size depends on the count, not on the key.
        let probe = SuccinctRoles {
            keyids: vec!["0".repeat(64)],
            threshold: 1,
            bit_length: opts.bins.trailing_zeros(),
            name_prefix: "bins".into(),
            extra: Extra::new(),
        };
        crate::bin_style::checked_delegation(&probe, BTreeMap::new(), opts.bin_style)?;
        if dir.join("packman-repo.json").exists() || dir.join(layout::METADATA_DIR).exists() {
            return Err(Error::AlreadyARepository { dir: dir.to_path_buf() });
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock = lock(dir)?;
        let mut settings = Settings::default();
        if let Some(k) = &opts.keys {
            settings.keys = std::path::absolute(k).map_err(|e| io(k, e))?;
        }
        let keydir = KeyDir::new(resolve(dir, &settings.keys));
        let pass = opts.passphrase.as_deref();
        let gen = |role: &str, n: usize| -> Result<Vec<Signer>, Error> {
            (0..n).map(|_| keydir.generate(role, pass)).collect()
        };
        let root_signers = gen("root", opts.root_keys)?;
        let mut role_signers = BTreeMap::new();
        for role in ["targets", "snapshot", "timestamp", "bins"] {
            role_signers.insert(role, gen(role, 1)?);
        }
        let mut keys = BTreeMap::new();
        for s in root_signers.iter().chain(role_signers.values().flatten()) {
            keys.insert(s.keyid().to_string(), s.public_key().clone());
        }
        let ids = |v: &[Signer]| v.iter().map(|s| s.keyid().to_string()).collect::<Vec<_>>();
        let mut roles = BTreeMap::new();
        roles.insert(
            "root".into(),
            RoleKeys { keyids: ids(&root_signers), threshold: opts.root_threshold, extra: Extra::new() },
        );
        for role in ["targets", "snapshot", "timestamp"] {
            roles.insert(role.into(), RoleKeys { keyids: ids(&role_signers[role]), threshold: 1, extra: Extra::new() });
        }
        keys.retain(|k, _| !role_signers["bins"].iter().any(|s| s.keyid() == k));
        let root = Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: expiry(now, settings.expiry_days.root),
            consistent_snapshot: Some(true),
            keys,
            roles,
            extra: Extra::new(),
        };
        let bins_signer = &role_signers["bins"][0];
        let bins_layout = SuccinctRoles {
            keyids: vec![bins_signer.keyid().to_string()],
            threshold: 1,
            bit_length: opts.bins.trailing_zeros(),
            name_prefix: "bins".into(),
            extra: Extra::new(),
        };
        let bins_keys = BTreeMap::from([(bins_signer.keyid().to_string(), bins_signer.public_key().clone())]);
        settings.bin_style = opts.bin_style;
        let targets = Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: expiry(now, settings.expiry_days.targets),
            targets: BTreeMap::new(),
            delegations: Some(crate::bin_style::checked_delegation(&bins_layout, bins_keys, opts.bin_style)?),
            extra: Extra::new(),
        };
        let md = dir.join(layout::METADATA_DIR);
        std::fs::create_dir_all(&md).map_err(|e| io(&md, e))?;
        std::fs::create_dir_all(dir.join(layout::TARGETS_DIR)).map_err(|e| io(dir, e))?;
        if opts.durability == Durability::PerFile {
            // syncfs would make the new directories' entries durable with the first publish.
            sync_dir(dir)?;
        }
        let root_bytes = sign_metadata(&root, &root_signers.iter().collect::<Vec<_>>())?;
        write_atomic(&md.join(layout::metadata_file("root", Some(1))), &root_bytes)?;
        write_atomic(&md.join(layout::ROOT_FILE), &root_bytes)?;
        let snapshot = Snapshot {
            type_: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: expiry(now, settings.expiry_days.snapshot),
            meta: Default::default(),
            extra: Extra::new(),
        };
        let timestamp = Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: 0,
            expires: expiry(now, settings.expiry_days.timestamp),
            meta: [(layout::meta_key("snapshot"), MetaFile::new(1))].into_iter().collect(),
            extra: Extra::new(),
        };
        let settings_bytes = serde_json::to_vec_pretty(&settings)
            .map_err(|e| Error::Settings { path: dir.join("packman-repo.json"), reason: e.to_string() })?;
        let mut repo = Repository {
            dir: dir.to_path_buf(),
            settings,
            extra_keys: None,
            signer_cache: BTreeMap::new(),
            _lock: lock,
            durability: opts.durability,
            root,
            timestamp,
            snapshot: Snap::Parsed(snapshot),
            targets,
            bins_layout,
            bin_style: opts.bin_style,
            bins: HashMap::default(),
            targets_dirty: false,
            new_targets: Vec::new(),
            pending_root: None,
            retired: Vec::new(),
            retired_changed: false,
            now,
        };
        // Every bin exists from the start (empty), so clients can tell "not here" from
        // "missing".
        let mut empty = Bin::from_targets(repo.empty_bin(0));
        empty.changed = true;
        for b in 0..repo.succinct().bin_count() {
            repo.bins.insert(b, empty.clone());
        }
        repo.targets.version = 0;
        repo.targets_dirty = true;
        fill(&mut repo)?;
        let mut no_pass = |k: &KeyFile| -> Result<String, Error> {
            pass.map(str::to_string).ok_or_else(|| Error::NoPassphrase { path: k.path.clone() })
        };
        repo.publish(&mut no_pass)?;
        write_atomic(&dir.join("packman-repo.json"), &settings_bytes)?;
        Ok(repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::testkit::*;

    /// A bulk import (targets listed before the first publish, prepared apart) publishes the
    /// same targets as adding them one by one to an initialised repository, and a client
    /// verifies both; a later one-file publish on the imported repository keeps them all.
    #[test]
    fn bulk_import_lists_what_incremental_adds_list() {
        for mode in modes() {
            bulk_import_in(mode, BinStyle::Succinct);
        }
        bulk_import_in(Durability::detect(), BinStyle::Prefixes);
    }

    fn bulk_import_in(mode: Durability, bin_style: BinStyle) {
        let now = OffsetDateTime::now_utc();
        let model: BTreeMap<String, TargetFile> = entries().into_iter().collect();
        let opts = InitOptions { bins: 16, durability: mode, bin_style, ..InitOptions::default() };

        let bulk = tempfile::tempdir().unwrap();
        Repository::init_with(bulk.path(), &opts, now, |repo| {
            let prepared: Vec<PreparedTarget> =
                entries().into_iter().map(|(p, tf)| Repository::prepare_target(&p, tf)).collect::<Result<_, _>>()?;
            for p in prepared {
                repo.add_prepared(p)?;
            }
            Ok(())
        })
        .unwrap();
        let one_by_one = tempfile::tempdir().unwrap();
        let mut repo = Repository::init(one_by_one.path(), &opts, now).unwrap();
        for (p, tf) in entries() {
            repo.add_target_info(&p, tf).unwrap();
        }
        repo.publish(&mut no_pass).unwrap();
        drop(repo);

        // Hash lists compare in file order; the files list them sorted.
        let canon = |m: &BTreeMap<String, TargetFile>| packman_tuf::canonical::to_canonical(m).unwrap();
        assert_eq!(canon(&verified_targets(bulk.path(), now)), canon(&model));
        assert_eq!(canon(&verified_targets(one_by_one.path(), now)), canon(&model));
        // Bulk: each bin written once (version 1); one by one: empty at init, then version 2.
        assert!(bulk.path().join("metadata/1.bins-0.json").exists());
        assert!(!bulk.path().join("metadata/2.bins-0.json").exists());
        assert!(one_by_one.path().join("metadata/2.bins-0.json").exists());

        let mut repo = Repository::open(bulk.path(), None, now).unwrap();
        assert_eq!((repo.bin_style(), repo.settings().bin_style), (bin_style, bin_style));
        let on_disk: Settings = read_json(&bulk.path().join("packman-repo.json")).unwrap();
        assert_eq!(on_disk.bin_style, bin_style);
        let d = repo.targets.delegations.as_ref().unwrap();
        assert_eq!(
            (d.roles.is_some(), d.succinct_roles.is_some()),
            (bin_style == BinStyle::Prefixes, bin_style == BinStyle::Succinct)
        );
        repo.set_durability(mode);
        let extra = packman_tuf::target::describe(b"one more");
        repo.add_target_info("late/one-more.txt", extra.clone()).unwrap();
        let report = repo.publish(&mut no_pass).unwrap();
        assert_eq!(report.metadata_written.len(), 3, "{:?}", report.metadata_written);
        drop(repo);
        let mut expected = model;
        expected.insert("late/one-more.txt".into(), extra);
        assert_eq!(canon(&verified_targets(bulk.path(), now)), canon(&expected));
    }
}
