//! Reading the repository's state: role status, bins summary, and the refresh of what expires.

use super::*;
use packman_tuf::layout;

/// What `bins_summary` reads of a bin: its expiry and how many targets it lists.
#[derive(Deserialize)]
pub(super) struct BinHead {
    pub(super) signed: BinHeadSigned,
}

#[derive(Deserialize)]
pub(super) struct BinHeadSigned {
    pub(super) expires: Expires,
    pub(super) targets: EntryCount,
}

/// The number of entries of a JSON object, read without building them.
pub(super) struct EntryCount(usize);

impl<'de> Deserialize<'de> for EntryCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EntryCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<EntryCount, A::Error> {
                let mut n = 0;
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(EntryCount(n))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone)]
pub struct RoleStatus {
    pub role: String,
    pub version: u64,
    pub expires: Expires,
    pub valid_signatures: usize,
    pub threshold: u64,
}

impl Repository {
    /// Re-signs what expires within `margin`: the timestamp (and snapshot, targets and bins
    /// when due). Returns the roles re-signed; nothing is written when nothing is due.
    pub fn refresh(&mut self, margin: time::Duration, pass: Passphrase) -> Result<Vec<String>, Error> {
        let horizon = self.now + margin;
        let due = |e: &Expires| e.0 <= horizon;
        let mut names: Vec<String> = Vec::new();
        // Bins all expire together unless changed since; check each (read lazily).
        for b in 0..self.bin_count() {
            if due(&self.bin(b)?.expires()) {
                self.bin_mut(b)?;
                names.push(self.bin_name(b));
            } else {
                self.bins.remove(&b);
            }
        }
        if due(&self.targets.expires) {
            self.targets_dirty = true;
            names.push("targets".into());
        }
        if self.has_changes() || due(&self.snapshot.expires()) {
            names.push("snapshot".into());
            names.push("timestamp".into());
            self.publish(pass)?;
        } else if due(&self.timestamp.expires) {
            let signers = self.role_signers("timestamp", pass)?;
            self.write_timestamp(&signers)?;
            names.push("timestamp".into());
        }
        Ok(names)
    }

    /// Role status lines: version, expiry, signatures on the published file against threshold.
    pub fn status(&mut self) -> Result<Vec<RoleStatus>, Error> {
        let md = self.dir.join(layout::METADATA_DIR);
        let mut out = Vec::new();
        let keys = &self.root.keys;
        let check = |file: &Path,
                     role: &str,
                     keyids: &[String],
                     threshold: u64,
                     keys: &BTreeMap<String, packman_tuf::Key>,
                     expires: Expires,
                     version: u64|
         -> Result<RoleStatus, Error> {
            let bytes = std::fs::read(file).map_err(|e| io(file, e))?;
            let canon = packman_tuf::canonical::canonical_signed(&bytes)
                .map_err(|e| Error::Corrupt { path: file.into(), reason: e.to_string() })?;
            let env: Envelope<serde_json::Value> = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt { path: file.into(), reason: e.to_string() })?;
            // Counted as every client counts it: distinct keys, not keyids.
            let valid = packman_tuf::count_signers(&canon, &env.signatures, keys, keyids);
            Ok(RoleStatus { role: role.into(), version, expires, valid_signatures: valid, threshold })
        };
        let roles = [
            ("root", layout::ROOT_FILE.to_string(), self.root.expires, self.root.version),
            (
                "targets",
                layout::metadata_file("targets", Some(self.targets.version)),
                self.targets.expires,
                self.targets.version,
            ),
            (
                "snapshot",
                format!("{}.snapshot.json", self.snapshot.version()),
                self.snapshot.expires(),
                self.snapshot.version(),
            ),
            ("timestamp", layout::TIMESTAMP_FILE.to_string(), self.timestamp.expires, self.timestamp.version),
        ];
        for (role, file, expires, version) in roles {
            let r = &self.root.roles[role];
            out.push(check(&md.join(file), role, &r.keyids, r.threshold, keys, expires, version)?);
        }
        Ok(out)
    }

    /// A root change waiting for signatures, if any: (version, path).
    pub fn staged_root(&self) -> Option<(u64, PathBuf)> {
        let p = self.dir.join("staged/root.json");
        let env: Envelope<Root> = read_json(&p).ok()?;
        Some((env.signed.version, p))
    }

    /// Bin count, earliest expiry among the bins and number of targets. Reads every bin,
    /// but only its expiry and the number of its targets, on two threads: a full parse of
    /// every bin of a PyPI-sized repository takes seconds.
    pub fn bins_summary(&mut self) -> Result<(u64, Option<Expires>, usize), Error> {
        let succinct = self.succinct().clone();
        let md = self.dir.join(layout::METADATA_DIR);
        // (earliest expiry, targets) of the bins in memory, then of those read from disk.
        let mut parts = vec![(None, 0)];
        let mut files = Vec::new();
        for b in 0..succinct.bin_count() {
            let name = succinct.bin_name(b);
            if let Some(t) = self.bins.get_mut(&b) {
                t.settle();
                parts[0] = (parts[0].0.into_iter().chain([t.expires()]).min(), parts[0].1 + t.len());
                continue;
            }
            let v = self.snapshot.meta_version(&layout::meta_key(&name)).ok_or(Error::NoRole(name.clone()))?;
            files.push(md.join(layout::metadata_file(&name, Some(v))));
        }
        parts.extend(on_two_threads("reading bins", &files, |paths| {
            let (mut earliest, mut targets) = (None, 0);
            for p in paths {
                let bytes = std::fs::read(p).map_err(|e| io(p, e))?;
                let head: BinHead = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupt { path: p.clone(), reason: e.to_string() })?;
                targets += head.signed.targets.0;
                earliest = earliest.into_iter().chain([head.signed.expires]).min();
            }
            Ok((earliest, targets))
        })?);
        let earliest = parts.iter().filter_map(|p| p.0).min();
        Ok((succinct.bin_count(), earliest, parts.iter().map(|p| p.1).sum()))
    }
}
