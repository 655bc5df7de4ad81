//! TUF 1.0 metadata (specification 1.0.34): the four top-level roles, delegations with
//! `paths`, `path_hash_prefixes` and TAP 15 `succinct_roles`. Unknown fields are kept in
//! `extra` so a publisher can re-sign metadata it did not write without losing them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::Error;

pub type Extra = BTreeMap<String, serde_json::Value>;

pub const SPEC_VERSION: &str = "1.0.34";
/// A signed timestamp field naming the current root version (packman extension; other
/// clients ignore it). See [`crate::TrustedSet::update_timestamp`].
pub const ROOT_VERSION_FIELD: &str = "x-packman-root-version";

pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// The four top-level roles a root names keys for (TUF 1.0 section 2.1). Typed where code
/// asks a root for a role's keys, so a misspelt role is a compile error, not a `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopLevelRole {
    Root,
    Timestamp,
    Snapshot,
    Targets,
}

impl TopLevelRole {
    pub const ALL: [TopLevelRole; 4] =
        [TopLevelRole::Root, TopLevelRole::Timestamp, TopLevelRole::Snapshot, TopLevelRole::Targets];

    pub fn as_str(self) -> &'static str {
        match self {
            TopLevelRole::Root => "root",
            TopLevelRole::Timestamp => "timestamp",
            TopLevelRole::Snapshot => "snapshot",
            TopLevelRole::Targets => "targets",
        }
    }

    /// The role of this name, if it is a top-level one.
    pub fn parse(name: &str) -> Option<TopLevelRole> {
        TopLevelRole::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for TopLevelRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

/// The outer object of every metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub signed: T,
    pub signatures: Vec<Signature>,
}

/// An expiry time. Read as RFC 3339 (fractional seconds and offsets accepted); written in the
/// `YYYY-MM-DDTHH:MM:SSZ` form the specification shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expires(pub OffsetDateTime);

impl Expires {
    pub fn parse(s: &str) -> Result<Self, String> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Expires)
            .map_err(|e| format!("expires {s:?} is not an RFC 3339 time: {e}"))
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.0
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Expires::parse(&s).map_err(de::Error::custom)
    }
}

/// Hash algorithm -> hex digest, in the order the file lists them (the first one names
/// hash-prefixed target files, as python-tuf does).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hashes(pub Vec<(String, String)>);

impl Hashes {
    pub fn get(&self, alg: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == alg).map(|(_, h)| h.as_str())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(a, h)| (a.as_str(), h.as_str()))
    }
}

impl Serialize for Hashes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (a, h) in &self.0 {
            m.serialize_entry(a, h)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Hashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Hashes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of hash algorithm to hex digest")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Hashes, A::Error> {
                let mut v: Vec<(String, String)> = Vec::new();
                while let Some((k, h)) = map.next_entry::<String, String>()? {
                    if v.iter().any(|(a, _)| *a == k) {
                        return Err(de::Error::custom(format_args!("duplicate hash {k:?}")));
                    }
                    v.push((k, h));
                }
                Ok(Hashes(v))
            }
        }
        d.deserialize_map(V)
    }
}

// Field order in these structs is alphabetical (as serialised), so that serde_json's
// output is already canonical JSON and signing takes the fast path.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyVal {
    pub public: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    pub keytype: String,
    pub keyval: KeyVal,
    pub scheme: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Key {
    pub fn new(keytype: &str, scheme: &str, public: String) -> Key {
        Key {
            keytype: keytype.into(),
            scheme: scheme.into(),
            keyval: KeyVal { public, extra: Extra::new() },
            extra: Extra::new(),
        }
    }

    /// The keyid securesystemslib would give this key: sha256 of the canonical key object.
    /// Only used when adding keys; verification looks keys up by the declared keyid (TAP 12).
    pub fn compute_keyid(&self) -> String {
        let v = serde_json::json!({
            "keytype": self.keytype, "scheme": self.scheme, "keyval": self.keyval,
        });
        let canon = crate::canonical::Value::from(&v).to_canonical().unwrap_or_default();
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &canon))
    }

    pub fn verify(&self, msg: &[u8], sig_hex: &str) -> Result<(), crate::crypto::CryptoError> {
        crate::crypto::verify(&self.keytype, &self.scheme, &self.keyval.public, msg, sig_hex)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    pub expires: Expires,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, RoleKeys>,
    pub spec_version: String,
    pub version: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    pub version: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl MetaFile {
    pub fn new(version: u64) -> MetaFile {
        MetaFile { version, length: None, hashes: None, extra: Extra::new() }
    }
}

// Written out rather than derived: `#[serde(flatten)]` buffers every entry, and a PyPI-sized
// snapshot has one MetaFile per hashed bin (16384) to read on every refresh.
impl<'de> Deserialize<'de> for MetaFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetaFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a METAFILE object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaFile, A::Error> {
                let (mut version, mut length, mut hashes) = (None, None, None);
                let mut extra = Extra::new();
                while let Some(key) = map.next_key::<crate::canonical::Str<'de>>()? {
                    let dup = || de::Error::custom(format_args!("duplicate field {:?}", key.0));
                    match &*key.0 {
                        "version" if version.is_some() => return Err(dup()),
                        "version" => version = Some(map.next_value::<u64>()?),
                        "length" if length.is_some() => return Err(dup()),
                        "length" => length = Some(map.next_value::<Option<u64>>()?),
                        "hashes" if hashes.is_some() => return Err(dup()),
                        "hashes" => hashes = Some(map.next_value::<Option<Hashes>>()?),
                        other => {
                            if extra.insert(other.to_string(), map.next_value()?).is_some() {
                                return Err(dup());
                            }
                        }
                    }
                }
                let version = version.ok_or_else(|| de::Error::missing_field("version"))?;
                Ok(MetaFile { version, length: length.flatten(), hashes: hashes.flatten(), extra })
            }
        }
        d.deserialize_map(V)
    }
}

/// Role file name -> MetaFile, kept as a sorted vector with every name in one string: a
/// snapshot listing 16384 bins is read on every refresh, and a map (or a vector of owned
/// names) of that size costs more to build and free than parsing the file. An entry that is
/// only a version (as bins' entries are) takes 24 bytes; one with hashes, a length or
/// unknown fields keeps its [`MetaFile`] aside. Lookups hand out [`MetaFile`]s by value
/// (a version-only one allocates nothing).
#[derive(Debug, Clone, Default)]
pub struct MetaMap {
    names: String,
    /// Sorted by name, names unique.
    entries: Vec<MetaEntry>,
    /// The full descriptions of entries that are more than a version.
    rich: Vec<MetaFile>,
}

#[derive(Debug, Clone, Copy)]
struct MetaEntry {
    /// The name is `names[start..end]`.
    start: u32,
    end: u32,
    /// Index into `rich`, or `NO_RICH` for a version-only entry.
    rich: u32,
    version: u64,
}

const NO_RICH: u32 = u32::MAX;

impl PartialEq for MetaMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl MetaMap {
    fn name(&self, i: usize) -> &str {
        let e = self.entries[i];
        &self.names[e.start as usize..e.end as usize]
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| self.names[e.start as usize..e.end as usize].cmp(name))
    }

    fn meta(&self, e: &MetaEntry) -> MetaFile {
        match e.rich {
            NO_RICH => MetaFile::new(e.version),
            r => self.rich[r as usize].clone(),
        }
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<MetaFile> {
        self.find(name).ok().map(|i| self.meta(&self.entries[i]))
    }
    /// The version listed for `name` (no copy of hashes).
    pub fn version(&self, name: &str) -> Option<u64> {
        self.find(name).ok().map(|i| self.entries[i].version)
    }
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// An entry for `meta` (its name already in `names`), its full form kept if needed.
    fn entry(&mut self, start: u32, end: u32, meta: MetaFile) -> MetaEntry {
        let rich = if meta.hashes.is_none() && meta.length.is_none() && meta.extra.is_empty() {
            NO_RICH
        } else {
            self.rich.push(meta.clone());
            (self.rich.len() - 1) as u32
        };
        MetaEntry { start, end, rich, version: meta.version }
    }

    pub fn insert(&mut self, name: String, meta: MetaFile) -> Option<MetaFile> {
        match self.find(&name) {
            Ok(i) => {
                let old = self.meta(&self.entries[i]);
                let e = self.entries[i];
                // A replaced full form stays behind in `rich`, unreferenced: replacing rich
                // entries is rare (the timestamp's single one) and the map is short-lived.
                self.entries[i] = self.entry(e.start, e.end, meta);
                Some(old)
            }
            Err(i) => {
                let (s, e) = self.push_name(&name);
                let entry = self.entry(s, e, meta);
                self.entries.insert(i, entry);
                None
            }
        }
    }
    fn push_name(&mut self, name: &str) -> (u32, u32) {
        let s = self.names.len() as u32;
        self.names.push_str(name);
        (s, self.names.len() as u32)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, MetaFile)> {
        (0..self.entries.len()).map(move |i| (self.name(i), self.meta(&self.entries[i])))
    }
    /// Names and versions, without building [`MetaFile`]s.
    pub fn versions(&self) -> impl Iterator<Item = (&str, u64)> {
        (0..self.entries.len()).map(move |i| (self.name(i), self.entries[i].version))
    }
    /// Whether every entry is a version only.
    pub fn versions_only(&self) -> bool {
        self.rich.is_empty() || self.entries.iter().all(|e| e.rich == NO_RICH)
    }
}

impl FromIterator<(String, MetaFile)> for MetaMap {
    fn from_iter<I: IntoIterator<Item = (String, MetaFile)>>(iter: I) -> Self {
        let mut m = MetaMap::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl Serialize for MetaMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for MetaMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetaMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of role file names to METAFILEs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaMap, A::Error> {
                let mut m = MetaMap { names: String::new(), entries: Vec::with_capacity(64), rich: Vec::new() };
                let mut sorted = true;
                while let Some(crate::canonical::Str(k)) = map.next_key::<crate::canonical::Str<'de>>()? {
                    let meta: MetaFile = map.next_value()?;
                    if let Some(last) = m.entries.len().checked_sub(1) {
                        if m.name(last) >= &*k {
                            sorted = false;
                        }
                    }
                    let (s, e) = m.push_name(&k);
                    let entry = m.entry(s, e, meta);
                    m.entries.push(entry);
                }
                // Files are usually written with sorted keys, which makes this a single pass.
                if !sorted {
                    let names = std::mem::take(&mut m.names);
                    m.entries.sort_by(|a, b| {
                        names[a.start as usize..a.end as usize].cmp(&names[b.start as usize..b.end as usize])
                    });
                    m.names = names;
                    if let Some(i) = (1..m.entries.len()).find(|&i| m.name(i - 1) == m.name(i)) {
                        return Err(de::Error::custom(format_args!("duplicate key {:?}", m.name(i))));
                    }
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub expires: Expires,
    pub meta: MetaMap,
    pub spec_version: String,
    pub version: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Timestamp {
    pub fn snapshot_meta(&self) -> MetaFile {
        // validate() guarantees presence.
        self.meta.get("snapshot.json").expect("a validated timestamp lists snapshot.json")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub expires: Expires,
    pub meta: MetaMap,
    pub spec_version: String,
    pub version: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
    pub hashes: Hashes,
    pub length: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    pub keyids: Vec<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub terminating: bool,
    pub threshold: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

impl DelegatedRole {
    /// Whether this role is trusted for `target` (spec 5.6.7.2).
    pub fn is_delegated_path(&self, target: &str) -> bool {
        self.is_delegated_path_hashed(target, &mut None)
    }

    /// As [`DelegatedRole::is_delegated_path`], with the hex sha256 of `target` computed
    /// once into `digest` for all the roles of a delegation (a classic hashed-bin delegation
    /// lists thousands).
    fn is_delegated_path_hashed(&self, target: &str, digest: &mut Option<String>) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| crate::pattern::path_matches(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let h = digest
                .get_or_insert_with(|| hex::encode(ring::digest::digest(&ring::digest::SHA256, target.as_bytes())));
            return prefixes.iter().any(|p| h.starts_with(p.as_str()));
        }
        false
    }
}

/// TAP 15: `2^bit_length` bins named `{name_prefix}-{hex}`, sharing one key set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    pub bit_length: u32,
    pub keyids: Vec<String>,
    pub name_prefix: String,
    pub threshold: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The first 4 bytes of sha256(target path), big-endian: what TAP 15 bins are chosen by.
pub fn target_hash_prefix(target: &str) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, target.as_bytes());
    u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]])
}

impl SuccinctRoles {
    fn suffix_len(&self) -> usize {
        (self.bit_length as usize).div_ceil(4)
    }

    pub fn bin_count(&self) -> u64 {
        1u64 << self.bit_length
    }

    pub fn bin_name(&self, bin: u64) -> String {
        format!("{}-{:0width$x}", self.name_prefix, bin, width = self.suffix_len())
    }

    /// The bin a target path belongs to: the top `bit_length` bits of sha256(path).
    pub fn role_for_target(&self, target: &str) -> String {
        self.bin_name(self.bin_for_target(target))
    }

    /// The number of the bin `role_for_target` names.
    pub fn bin_for_target(&self, target: &str) -> u64 {
        self.bin_for_prefix(target_hash_prefix(target))
    }

    /// The bin of a target whose [`target_hash_prefix`] is `first`.
    pub fn bin_for_prefix(&self, first: u32) -> u64 {
        if self.bit_length == 0 {
            0
        } else {
            (first >> (32 - self.bit_length)) as u64
        }
    }

    pub fn is_delegated_role(&self, name: &str) -> bool {
        let Some(suffix) = name.strip_prefix(self.name_prefix.as_str()).and_then(|r| r.strip_prefix('-')) else {
            return false;
        };
        suffix.len() == self.suffix_len()
            && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < self.bin_count())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    pub keys: BTreeMap<String, Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Delegations {
    /// Keyids and threshold that sign for delegated role `name`, if it is delegated here.
    pub fn role_keys(&self, name: &str) -> Option<(&[String], u64)> {
        if let Some(roles) = &self.roles {
            return roles.iter().find(|r| r.name == name).map(|r| (&r.keyids[..], r.threshold));
        }
        if let Some(s) = &self.succinct_roles {
            if s.is_delegated_role(name) {
                return Some((&s.keyids[..], s.threshold));
            }
        }
        None
    }

    /// Delegated roles trusted for `target`, in order, with their `terminating` flag.
    pub fn roles_for_target(&self, target: &str) -> Vec<(String, bool)> {
        if let Some(roles) = &self.roles {
            let mut digest = None;
            return roles
                .iter()
                .filter(|r| r.is_delegated_path_hashed(target, &mut digest))
                .map(|r| (r.name.clone(), r.terminating))
                .collect();
        }
        if let Some(s) = &self.succinct_roles {
            // Every target belongs to exactly one bin, which is terminating (TAP 15).
            return vec![(s.role_for_target(target), true)];
        }
        Vec::new()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    pub expires: Expires,
    pub spec_version: String,
    pub targets: BTreeMap<String, TargetFile>,
    pub version: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// What every signed role has in common; `validate` holds the rules serde cannot express.
pub trait Role: DeserializeOwned + Serialize + Clone {
    const TYPE: &'static str;
    fn version(&self) -> u64;
    fn expires(&self) -> &Expires;
    fn spec_version(&self) -> &str;
    fn type_field(&self) -> &str;
    fn validate_specific(&self, role: &str) -> Result<(), Error>;

    fn validate(&self, role: &str) -> Result<(), Error> {
        if self.type_field() != Self::TYPE {
            return Err(Error::WrongType {
                role: role.into(),
                expected: Self::TYPE.into(),
                found: self.type_field().into(),
            });
        }
        check_spec_version(role, self.spec_version())?;
        if self.version() == 0 {
            return Err(Error::malformed(role, "version must be at least 1"));
        }
        self.validate_specific(role)
    }
}

fn check_spec_version(role: &str, v: &str) -> Result<(), Error> {
    let parts: Vec<&str> = v.split('.').collect();
    let well_formed =
        matches!(parts.len(), 2 | 3) && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return Err(Error::malformed(role, format_args!("spec_version {v:?} is not X.Y.Z")));
    }
    if parts[0] != "1" {
        return Err(Error::malformed(role, format_args!("unsupported spec_version {v:?} (this client speaks 1.x)")));
    }
    Ok(())
}

fn check_role_keys(role: &str, what: &str, keyids: &[String], threshold: u64) -> Result<(), Error> {
    if threshold < 1 {
        return Err(Error::malformed(role, format_args!("{what}: threshold must be at least 1")));
    }
    let mut seen = std::collections::HashSet::new();
    if !keyids.iter().all(|k| seen.insert(k)) {
        return Err(Error::malformed(role, format_args!("{what}: keyids are not unique")));
    }
    Ok(())
}

fn check_meta_file(role: &str, name: &str, m: &MetaFile) -> Result<(), Error> {
    if m.version == 0 {
        return Err(Error::malformed(role, format_args!("meta {name:?}: version must be at least 1")));
    }
    if m.hashes.as_ref().is_some_and(Hashes::is_empty) {
        return Err(Error::malformed(role, format_args!("meta {name:?}: empty hashes")));
    }
    Ok(())
}

macro_rules! common_accessors {
    () => {
        fn version(&self) -> u64 {
            self.version
        }
        fn expires(&self) -> &Expires {
            &self.expires
        }
        fn spec_version(&self) -> &str {
            &self.spec_version
        }
        fn type_field(&self) -> &str {
            &self.type_
        }
    };
}

impl Role for Root {
    const TYPE: &'static str = "root";
    common_accessors!();
    fn validate_specific(&self, role: &str) -> Result<(), Error> {
        for name in TOP_LEVEL_ROLES {
            let Some(r) = self.roles.get(name) else {
                return Err(Error::malformed(role, format_args!("root does not define role {name:?}")));
            };
            check_role_keys(role, name, &r.keyids, r.threshold)?;
        }
        if self.roles.len() != TOP_LEVEL_ROLES.len() {
            return Err(Error::malformed(role, "root defines roles other than the four top-level roles"));
        }
        Ok(())
    }
}

impl Root {
    pub fn consistent_snapshot(&self) -> bool {
        self.consistent_snapshot.unwrap_or(false)
    }
    pub fn role_keys(&self, name: &str) -> Option<(&[String], u64)> {
        self.roles.get(name).map(|r| (&r.keyids[..], r.threshold))
    }
    /// The keyids and threshold of a top-level role (validation makes sure all four exist).
    pub fn keys_for(&self, role: TopLevelRole) -> Option<(&[String], u64)> {
        self.role_keys(role.as_str())
    }
}

impl Role for Timestamp {
    const TYPE: &'static str = "timestamp";
    common_accessors!();
    fn validate_specific(&self, role: &str) -> Result<(), Error> {
        let Some(m) = self.meta.get("snapshot.json") else {
            return Err(Error::malformed(role, "meta has no \"snapshot.json\""));
        };
        check_meta_file(role, "snapshot.json", &m)
    }
}

impl Role for Snapshot {
    const TYPE: &'static str = "snapshot";
    common_accessors!();
    fn validate_specific(&self, role: &str) -> Result<(), Error> {
        self.meta.iter().try_for_each(|(name, m)| check_meta_file(role, name, &m))
    }
}

impl Role for Targets {
    const TYPE: &'static str = "targets";
    common_accessors!();
    fn validate_specific(&self, role: &str) -> Result<(), Error> {
        for (path, t) in &self.targets {
            if t.hashes.is_empty() {
                return Err(Error::malformed(role, format_args!("target {path:?} has no hashes")));
            }
        }
        let Some(d) = &self.delegations else { return Ok(()) };
        match (&d.roles, &d.succinct_roles) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(Error::malformed(role, "delegations need exactly one of roles and succinct_roles"))
            }
            (Some(roles), None) => {
                let mut names = std::collections::HashSet::new();
                for r in roles {
                    if TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                        return Err(Error::malformed(
                            role,
                            format_args!("delegated role uses top-level name {:?}", r.name),
                        ));
                    }
                    if !names.insert(r.name.as_str()) {
                        return Err(Error::malformed(role, format_args!("delegated role {:?} appears twice", r.name)));
                    }
                    check_role_keys(role, &r.name, &r.keyids, r.threshold)?;
                    match (&r.paths, &r.path_hash_prefixes) {
                        (Some(_), Some(_)) | (None, None) => {
                            return Err(Error::malformed(
                                role,
                                format_args!(
                                    "delegated role {:?} needs exactly one of paths and path_hash_prefixes",
                                    r.name
                                ),
                            ))
                        }
                        _ => {}
                    }
                }
            }
            (None, Some(s)) => {
                check_role_keys(role, "succinct_roles", &s.keyids, s.threshold)?;
                if !(1..=32).contains(&s.bit_length) {
                    return Err(Error::malformed(role, "succinct_roles.bit_length must be 1..=32"));
                }
            }
        }
        Ok(())
    }
}

impl Targets {
    pub fn delegated_role_keys(&self, name: &str) -> Option<(&[String], u64)> {
        self.delegations.as_ref().and_then(|d| d.role_keys(name))
    }
    pub fn delegation_keys(&self) -> Option<&BTreeMap<String, Key>> {
        self.delegations.as_ref().map(|d| &d.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_accepts_fractional_seconds_and_offsets() {
        let a = Expires::parse("2030-01-01T00:00:00Z").unwrap();
        let b = Expires::parse("2030-01-01T01:00:00.250+01:00").unwrap();
        assert!(b > a && b.0 - a.0 == time::Duration::milliseconds(250));
        assert_eq!(a.to_string(), "2030-01-01T00:00:00Z");
        assert!(Expires::parse("2030-01-01").is_err());
    }

    #[test]
    fn succinct_bins_match_python_tuf_naming() {
        let s = SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: 14,
            name_prefix: "bins".into(),
            extra: Extra::new(),
        };
        assert_eq!(s.bin_name(0), "bins-0000");
        assert_eq!(s.bin_name(16383), "bins-3fff");
        assert!(s.is_delegated_role("bins-3fff"));
        assert!(!s.is_delegated_role("bins-4000"));
        assert!(!s.is_delegated_role("bins-3FFF"));
        assert!(!s.is_delegated_role("bins-fff"));
        // sha256("a") = ca978112...: top 14 bits of 0xca97 are 0x32a5.
        assert_eq!(s.role_for_target("a"), "bins-32a5");
        let one = SuccinctRoles { bit_length: 1, ..s };
        assert_eq!(one.role_for_target("a"), "bins-1");
    }

    #[test]
    fn hashes_keep_file_order_and_refuse_duplicates() {
        let h: Hashes = serde_json::from_str(r#"{"sha512": "aa", "sha256": "bb"}"#).unwrap();
        assert_eq!(h.0[0].0, "sha512");
        assert!(serde_json::from_str::<Hashes>(r#"{"sha256": "a", "sha256": "b"}"#).is_err());
    }
}

/// A fast path for the publisher's biggest file. A snapshot listing 16384 bins is read and
/// rewritten by every publish that changes one of them; going through serde both ways was
/// most of a one-file add. These handle exactly the compact canonical layout packman writes
/// (version-only entries, plain names, no unknown fields) and decline anything else, so the
/// caller falls back to serde.
impl Snapshot {
    /// The canonical JSON of this snapshot, written directly; `None` if it is not in the
    /// simple layout.
    pub(crate) fn fast_canonical(&self) -> Option<Vec<u8>> {
        let plain = |s: &str| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        if self.type_ != "snapshot"
            || !self.extra.is_empty()
            || !plain(&self.spec_version)
            || !self.meta.versions_only()
        {
            return None;
        }
        let mut out = Vec::with_capacity(64 + self.meta.len() * 32 + self.meta.names.len());
        out.extend_from_slice(b"{\"_type\":\"snapshot\",\"expires\":\"");
        out.extend_from_slice(self.expires.to_string().as_bytes());
        out.extend_from_slice(b"\",\"meta\":{");
        let mut buf = [0u8; 20];
        for (i, (name, version)) in self.meta.versions().enumerate() {
            if !plain(name) {
                return None;
            }
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":{\"version\":");
            out.extend_from_slice(fmt_u64(&mut buf, version));
            out.push(b'}');
        }
        out.extend_from_slice(b"},\"spec_version\":\"");
        out.extend_from_slice(self.spec_version.as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        out.extend_from_slice(fmt_u64(&mut buf, self.version));
        out.push(b'}');
        Some(out)
    }
}

fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod fast_snapshot_tests {
    use super::*;

    fn snapshot(n: u64) -> Snapshot {
        let mut meta = MetaMap::default();
        for b in 0..n {
            meta.insert(format!("bins-{b:04x}.json"), MetaFile::new(b % 7 + 1));
        }
        meta.insert("targets.json".into(), MetaFile::new(12));
        Snapshot {
            type_: "snapshot".into(),
            expires: Expires::parse("2030-01-02T03:04:05Z").unwrap(),
            meta,
            spec_version: "1.0.31".into(),
            version: 1234567,
            extra: Extra::new(),
        }
    }

    #[test]
    fn writes_what_the_canonicaliser_writes() {
        for n in [0, 1, 300] {
            let s = snapshot(n);
            let fast = s.fast_canonical().unwrap();
            assert_eq!(fast, crate::canonical::to_canonical(&s).unwrap());
            assert_eq!(crate::canonical::snapshot_forms(&s).unwrap().canonical, fast);
        }
    }

    /// Whatever the fast writer declines still gets the canonical form from
    /// `canonical::snapshot_forms`, the same bytes the plain canonicaliser writes.
    #[test]
    fn declines_other_layouts_and_the_fallback_is_the_plain_path() {
        let s = snapshot(3);
        let mut hashed = s.clone();
        let mut m = MetaFile::new(2);
        m.length = Some(10);
        hashed.meta.insert("targets.json".into(), m);
        let mut extra = s.clone();
        extra.extra.insert("x-note".into(), serde_json::json!(1));
        let mut escaped = s.clone();
        escaped.meta.insert("we\"ird\n.json".into(), MetaFile::new(1));
        for odd in [hashed, extra, escaped] {
            assert!(odd.fast_canonical().is_none());
            let f = crate::canonical::snapshot_forms(&odd).unwrap();
            assert_eq!(f.canonical, crate::canonical::to_canonical(&odd).unwrap());
            let back: Snapshot = serde_json::from_slice(f.json()).unwrap();
            assert_eq!(back, odd);
        }
    }
}
