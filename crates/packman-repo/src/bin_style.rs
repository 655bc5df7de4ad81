//! The two shapes in which top-level targets can delegate to packman's hashed bins.
//!
//! - [`BinStyle::Succinct`] (TAP 15): one `succinct_roles` entry; clients derive each bin's
//!   name from the top `bit_length` bits of sha256(path). targets.json stays a few hundred
//!   bytes at any bin count. go-tuf, python-tuf and packman read it; tough and sigstore-tuf
//!   do not.
//! - [`BinStyle::Prefixes`] (PEP 458, TUF spec 5.6.7.2.1): one classic delegated role per bin,
//!   with the `path_hash_prefixes` that put a path in it: every TUF 1.0 client reads it, but
//!   targets.json lists every bin (about 180 bytes each: 41 KB at 256 bins, 3.0 MB at
//!   16384; more keys make it more) and every client fetches it
//!   again after each change of targets.
//!
//! Both shapes use the same role names (`bins-HEX`, as TAP 15 names them) and put every path
//! in the same bin, so the bins themselves, and everything the publisher does to them, do not
//! depend on the shape: switching shapes re-signs targets.json alone.
//!
//! A classic role matches a path when the lower-case hex of sha256(path) starts with one of
//! its prefixes. With `2^b` bins, a prefix of `ceil(b/4)` hex digits fixes the top
//! `4*ceil(b/4)` bits, so bin `i` (top `b` bits equal to `i`) is the `2^(4*ceil(b/4)-b)`
//! prefixes `i << k ..= (i << k) + 2^k - 1`, `k = 4*ceil(b/4) - b` (PEP 458 lists them the
//! same way).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use packman_tuf::metadata::Extra;
use packman_tuf::{DelegatedRole, Delegations, Key, SuccinctRoles};
use serde::{Deserialize, Serialize};

/// How top-level targets delegates to the hashed bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinStyle {
    /// TAP 15 `succinct_roles` (the default: targets.json stays small at any bin count).
    #[default]
    Succinct,
    /// Classic delegated roles with `path_hash_prefixes`, which every TUF client reads.
    Prefixes,
}

impl BinStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            BinStyle::Succinct => "succinct",
            BinStyle::Prefixes => "prefixes",
        }
    }
}

impl fmt::Display for BinStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BinStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<BinStyle, String> {
        match s {
            "succinct" => Ok(BinStyle::Succinct),
            "prefixes" => Ok(BinStyle::Prefixes),
            other => Err(format!("bin style {other:?}: use succinct or prefixes")),
        }
    }
}

/// The hex prefixes of sha256(path) that put a path in bin `bin` of `2^bit_length`.
pub fn bin_prefixes(bit_length: u32, bin: u64) -> Vec<String> {
    let digits = (bit_length as usize).div_ceil(4);
    let k = 4 * digits as u32 - bit_length;
    let first = bin << k;
    (first..first + (1u64 << k)).map(|p| format!("{p:0digits$x}")).collect()
}

/// The classic delegated role for bin `bin` of `bins`.
fn prefix_role(bins: &SuccinctRoles, bin: u64) -> DelegatedRole {
    DelegatedRole {
        keyids: bins.keyids.clone(),
        name: bins.bin_name(bin),
        path_hash_prefixes: Some(bin_prefixes(bins.bit_length, bin)),
        paths: None,
        // As TAP 15 bins are: a path's search ends at its bin.
        terminating: true,
        threshold: bins.threshold,
        extra: Extra::new(),
    }
}

/// Top-level targets' delegation to `bins` in `style`, with the bins' public `keys`.
pub fn delegation(bins: &SuccinctRoles, keys: BTreeMap<String, Key>, style: BinStyle) -> Delegations {
    let (roles, succinct_roles) = match style {
        BinStyle::Succinct => (None, Some(bins.clone())),
        BinStyle::Prefixes => (Some((0..bins.bin_count()).map(|b| prefix_role(bins, b)).collect()), None),
    };
    Delegations { keys, roles, succinct_roles, extra: Extra::new() }
}

/// The size top-level targets may reach: the default limit of python-tuf's and packman's
/// clients (5 MB), less room for the rest of the file (signatures, expiry).
pub const TARGETS_LIMIT: usize = 5_000_000 - 64 * 1024;

/// [`delegation`], refused when a client would not fetch the targets.json holding it (see
/// [`TARGETS_LIMIT`]; only the classic shape grows with the bin count).
pub fn checked_delegation(
    bins: &SuccinctRoles,
    keys: BTreeMap<String, Key>,
    style: BinStyle,
) -> Result<Delegations, crate::Error> {
    let d = delegation(bins, keys, style);
    let bytes = packman_tuf::canonical::to_canonical(&d)
        .map_err(|e| crate::Error::Signing { role: "targets".into(), reason: e.to_string() })?
        .len();
    if bytes > TARGETS_LIMIT {
        return Err(crate::Error::ClassicTargetsTooLarge {
            bins: bins.bin_count(),
            keys: bins.keyids.len(),
            bytes,
            limit: TARGETS_LIMIT,
        });
    }
    Ok(d)
}

/// The bins a delegation describes and its shape; `None` unless it is one that [`delegation`]
/// writes: succinct roles, or for each bin in order the role it would write (so that every
/// role of the file is a bin, and rewriting it changes nothing).
pub fn read_delegation(d: &Delegations) -> Option<(SuccinctRoles, BinStyle)> {
    match (&d.roles, &d.succinct_roles) {
        (None, Some(s)) => Some((s.clone(), BinStyle::Succinct)),
        (Some(roles), None) => {
            let n = roles.len() as u64;
            if n < 2 || !n.is_power_of_two() {
                return None;
            }
            let first = &roles[0];
            let name_prefix = first.name.rsplit_once('-')?.0.to_string();
            let bins = SuccinctRoles {
                bit_length: n.trailing_zeros(),
                keyids: first.keyids.clone(),
                name_prefix,
                threshold: first.threshold,
                extra: Extra::new(),
            };
            let same = roles.iter().enumerate().all(|(i, r)| *r == prefix_role(&bins, i as u64));
            same.then_some((bins, BinStyle::Prefixes))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins(bit_length: u32) -> SuccinctRoles {
        SuccinctRoles {
            bit_length,
            keyids: vec!["k".repeat(64)],
            name_prefix: "bins".into(),
            threshold: 1,
            extra: Extra::new(),
        }
    }

    /// Every path lands in the same bin under both shapes: the one succinct bin TAP 15
    /// names, and exactly one classic role by the spec's prefix match (packman-tuf's
    /// `roles_for_target`, as clients search), for bit lengths on and off hex-digit
    /// boundaries. The prefixes of all bins partition the digit space.
    #[test]
    fn both_shapes_put_every_path_in_the_same_bin() {
        for bit_length in [1, 2, 3, 4, 5, 8, 9, 12, 14] {
            let b = bins(bit_length);
            let classic = delegation(&b, BTreeMap::new(), BinStyle::Prefixes);
            let succinct = delegation(&b, BTreeMap::new(), BinStyle::Succinct);
            // Fewer paths at 16384 bins: each search there tries every role's prefixes.
            for i in 0..if bit_length > 9 { 200 } else { 2000 } {
                let path = format!("packages/p{i}/p{i}-1.0-py3-none-any.whl");
                let want = b.role_for_target(&path);
                assert_eq!(succinct.roles_for_target(&path), vec![(want.clone(), true)]);
                assert_eq!(classic.roles_for_target(&path), vec![(want, true)], "{bit_length} bits: {path}");
            }
            let digits = (bit_length as usize).div_ceil(4);
            let all: Vec<String> = (0..b.bin_count()).flat_map(|i| bin_prefixes(bit_length, i)).collect();
            let expected: Vec<String> = (0..1u64 << (4 * digits)).map(|p| format!("{p:0digits$x}")).collect();
            assert_eq!(all, expected, "{bit_length} bits");
            // The role names and keys are the succinct ones.
            let roles = classic.roles.as_ref().unwrap();
            assert_eq!(roles.len() as u64, b.bin_count());
            assert!(roles
                .iter()
                .enumerate()
                .all(|(i, r)| r.name == b.bin_name(i as u64)
                    && classic.role_keys(&r.name) == succinct.role_keys(&r.name)));
        }
        assert_eq!(bin_prefixes(1, 1), ["8", "9", "a", "b", "c", "d", "e", "f"]);
        assert_eq!(bin_prefixes(14, 3), ["000c", "000d", "000e", "000f"]);
        assert_eq!(bin_prefixes(8, 0xab), ["ab"]);
    }

    /// What `delegation` writes reads back as the same bins; anything else is not recognised.
    #[test]
    fn only_packman_delegations_are_read_back() {
        for style in [BinStyle::Succinct, BinStyle::Prefixes] {
            let d = delegation(&bins(5), BTreeMap::new(), style);
            assert_eq!(read_delegation(&d), Some((bins(5), style)));
        }
        let good = delegation(&bins(3), BTreeMap::new(), BinStyle::Prefixes);
        let mut swapped = good.clone();
        swapped.roles.as_mut().unwrap().swap(0, 1);
        let mut widened = good.clone();
        widened.roles.as_mut().unwrap()[2].path_hash_prefixes.as_mut().unwrap().push("0".into());
        let mut other_keys = good.clone();
        other_keys.roles.as_mut().unwrap()[7].keyids = vec!["x".into()];
        let mut paths = good.clone();
        paths.roles.as_mut().unwrap()[0].paths = Some(vec!["*".into()]);
        let mut three = good.clone();
        three.roles.as_mut().unwrap().truncate(3);
        for bad in [swapped, widened, other_keys, paths, three] {
            assert_eq!(read_delegation(&bad), None);
        }
        assert_eq!("prefixes".parse::<BinStyle>(), Ok(BinStyle::Prefixes));
        assert!("classic".parse::<BinStyle>().unwrap_err().contains("succinct or prefixes"));
    }
}
