//! Entry points for the fuzz targets (`fuzz/`, feature `fuzzing`): the publisher's private
//! fast readers checked against the plain paths they stand in for.

use packman_tuf::{Envelope, Snapshot};

use crate::snapshot_text::SnapshotText;

/// Whatever the snapshot text reader accepts, serde parses to the same snapshot, and the
/// text's canonical form is the plain canonicaliser's. Panics on a disagreement.
pub fn snapshot_text_against_serde(data: &[u8]) {
    let Ok(text) = SnapshotText::parse(data.to_vec()) else { return };
    let env: Envelope<Snapshot> = match serde_json::from_slice(data) {
        Ok(e) => e,
        Err(e) => panic!("the text reader accepted what serde refuses: {e}"),
    };
    assert_eq!(text.to_snapshot(), env.signed, "text reader and serde read different snapshots");
    let plain = packman_tuf::canonical::to_canonical(&env.signed).expect("a parsed snapshot is canonicalisable");
    assert_eq!(text.into_canonical(), plain, "canonical forms differ");
}

#[cfg(test)]
mod tests {
    /// Every input a fuzz target crashed on (`tests/fuzz-regressions/TARGET-N`) runs through
    /// its check again.
    #[test]
    fn fuzz_regressions_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("snapshot_text-") {
                super::snapshot_text_against_serde(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
        assert!(n >= 1, "no regression inputs found in {}", dir.display());
    }

    /// The entry point accepts what the publisher writes (so the fuzz target is not testing
    /// only refusals).
    #[test]
    fn accepts_a_published_snapshot() {
        let mut s = packman_tuf::Snapshot {
            type_: "snapshot".into(),
            expires: packman_tuf::Expires::parse("2030-01-01T00:00:00Z").unwrap(),
            meta: Default::default(),
            spec_version: "1.0.31".into(),
            version: 7,
            extra: Default::default(),
        };
        s.meta.insert("bins-0.json".into(), packman_tuf::MetaFile::new(3));
        s.meta.insert("targets.json".into(), packman_tuf::MetaFile::new(2));
        let (signer, _) = packman_tuf::crypto::Signer::generate_ed25519().unwrap();
        let file = crate::sign_snapshot(&s, &[&signer]).unwrap();
        assert!(crate::snapshot_text::SnapshotText::parse(file.clone()).is_ok());
        super::snapshot_text_against_serde(&file);
    }
}
