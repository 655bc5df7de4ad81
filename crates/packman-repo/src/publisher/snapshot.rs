//! The snapshot as this process holds it ([`Snap`]), the job that signs it and the timestamp, and the bin-number hasher.

use packman_tuf::canonical::SignedForms;
use packman_tuf::layout;

use super::*;

/// The current snapshot: as the text of our own file (see [`SnapshotText`]), parsed (new
/// repositories, other layouts, or once a publish lists a new role), or the canonical text
/// just published, read again only if needed (the signed part: `[head, canonical, tail]`
/// was written).
pub(super) enum Snap {
    Text(SnapshotText),
    Parsed(Snapshot),
    Published { canonical: Vec<u8>, version: u64, expires: Expires },
}

impl Snap {
    pub(super) fn version(&self) -> u64 {
        match self {
            Snap::Text(t) => t.version,
            Snap::Parsed(s) => s.version,
            Snap::Published { version, .. } => *version,
        }
    }

    pub(super) fn expires(&self) -> Expires {
        match self {
            Snap::Text(t) => t.expires,
            Snap::Parsed(s) => s.expires,
            Snap::Published { expires, .. } => *expires,
        }
    }

    /// Reads a just-published snapshot again.
    pub(super) fn reread(&mut self) {
        if let Snap::Published { canonical, .. } = self {
            *self = match SnapshotText::parse(std::mem::take(canonical)) {
                Ok(t) => Snap::Text(t),
                Err(bytes) => {
                    Snap::Parsed(serde_json::from_slice(&bytes).expect("a snapshot this process serialised reads back"))
                }
            };
        }
    }

    pub(super) fn meta_version(&mut self, name: &str) -> Option<u64> {
        self.reread();
        match self {
            Snap::Text(t) => t.meta_version(name),
            Snap::Parsed(s) => s.meta.version(name),
            Snap::Published { .. } => unreachable!("reread"),
        }
    }

    pub(super) fn set_meta_version(&mut self, name: String, version: u64) {
        self.reread();
        if let Snap::Text(t) = self {
            if t.set_meta_version(&name, version) {
                return;
            }
        }
        self.parsed().meta.insert(name, MetaFile::new(version));
    }

    pub(super) fn set_head(&mut self, version: u64, expires: Expires) {
        self.reread();
        match self {
            Snap::Text(t) => (t.version, t.expires) = (version, expires),
            Snap::Parsed(s) => (s.version, s.expires) = (version, expires),
            Snap::Published { .. } => unreachable!("reread"),
        }
    }

    pub(super) fn parsed(&mut self) -> &mut Snapshot {
        self.reread();
        if let Snap::Text(t) = self {
            *self = Snap::Parsed(t.to_snapshot());
        }
        match self {
            Snap::Parsed(s) => s,
            _ => unreachable!("converted above"),
        }
    }
}

/// Hashes bin numbers with one multiplication (Fibonacci hashing): the default SipHash was
/// a visible share of a million-target bulk add, and bin numbers come from a public hash
/// anyway (no flooding to defend against).
#[derive(Default, Clone, Copy)]
pub(super) struct BinHasher(u64);

impl std::hash::Hasher for BinHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) type BinHash = std::hash::BuildHasherDefault<BinHasher>;

/// The timestamp after `timestamp`, signed: next version, new expiry, and the current root
/// version in packman's extra field.
pub(super) fn next_timestamp(
    timestamp: &mut Timestamp,
    expires: Expires,
    root_version: u64,
    signers: &[&Signer],
) -> Result<Vec<u8>, Error> {
    timestamp.version += 1;
    timestamp.expires = expires;
    timestamp.extra.insert(ROOT_VERSION_FIELD.into(), root_version.into());
    sign_metadata(timestamp, signers)
}

/// A publish's snapshot (its head already set to `version`, `expires`) and the timestamp
/// naming it, to sign and write apart from the rest of the publish (see
/// [`Repository::publish`]).
pub(super) struct SnapshotJob {
    pub(super) snapshot: Snap,
    pub(super) timestamp: Timestamp,
    pub(super) version: u64,
    pub(super) expires: Expires,
    pub(super) timestamp_expires: Expires,
    pub(super) root_version: u64,
    pub(super) md: PathBuf,
}

impl SnapshotJob {
    /// Writes the snapshot into `batch`, and the timestamp as its last file; gives back the
    /// snapshot (as published) and timestamp to keep.
    pub(super) fn run(
        self,
        batch: &mut Batch,
        snapshot_signers: &[&Signer],
        timestamp_signers: &[&Signer],
    ) -> Result<(Snap, Timestamp), Error> {
        let SnapshotJob { snapshot, mut timestamp, version: sv, expires, timestamp_expires, root_version, md } = self;
        let mut published = Snap::Published { canonical: Vec::new(), version: sv, expires };
        let forms = match snapshot {
            // Edited in the buffer the file was read into.
            Snap::Text(t) => SignedForms { canonical: t.into_canonical(), json: None },
            Snap::Parsed(p) => {
                let forms = packman_tuf::canonical::snapshot_forms(&p)
                    .map_err(|e| Error::Signing { role: "snapshot".into(), reason: e.to_string() })?;
                if forms.json.is_some() {
                    published = Snap::Parsed(p);
                }
                forms
            }
            Snap::Published { .. } => unreachable!("set_head rereads"),
        };
        // The signed part is written between the envelope's head and tail rather than copied
        // into another half-megabyte buffer.
        let (head, tail) = crate::envelope_parts(&forms.canonical, snapshot_signers, "snapshot")?;
        let mut snap: Vec<Vec<u8>> = vec![head, forms.json.unwrap_or(forms.canonical), tail.to_vec()];
        batch.write_parts(&md.join(layout::metadata_file("snapshot", Some(sv))), &snap)?;
        // The timestamp, the file clients read first: made durable along with the rest but
        // put in place only once everything it leads to is (Batch::last).
        let meta = packman_tuf::target::describe_meta(sv, snap.iter().map(Vec::as_slice));
        // Kept, to be read again if this process needs the snapshot after this publish.
        if let Snap::Published { canonical, .. } = &mut published {
            *canonical = std::mem::take(&mut snap[1]);
        }
        timestamp.meta.insert(layout::meta_key("snapshot"), meta);
        let ts = next_timestamp(&mut timestamp, timestamp_expires, root_version, timestamp_signers)?;
        batch.write_last(&md.join(layout::TIMESTAMP_FILE), &ts)?;
        Ok((published, timestamp))
    }
}
