//! `packman://` links: the one parser, and the rule that a link names only what the trust
//! ring already holds.
//!
//! Grammar (ASCII, case-sensitive, at most [`MAX_LINK_LEN`] bytes):
//!
//! ```text
//! link    = "packman://" ( install / info ) [ "?repo=" NAME ]
//! install = "install/" PROJECT [ "@" VERSION ]
//! info    = "info/" PROJECT
//! ```
//!
//! - PROJECT is a valid PEP 508 name with no two separators (`-`, `_`, `.`) in a row, so it
//!   never holds `--` and never starts with `-`; VERSION is a valid PEP 440 version made of
//!   letters, digits and `.`, `!`, `+`, `_`, `-`, not starting with `-`; NAME is a ring name
//!   ([`crate::check_name`]).
//! - Nothing else parses: no other action, key or second `repo`, no `&`, no fragment (`#`),
//!   no userinfo, host or port other than the action, no trailing slash, no whitespace or
//!   control character, no non-ASCII, and no `%` at all (no percent-encoding: every allowed
//!   character is legal unencoded, so a `%` can only be smuggling something).
//! - A link never adds a repository: [`Link::repository`] refuses one the ring does not hold,
//!   and one that does not own the project by routing (the install that follows routes it
//!   there anyway, so a link cannot make a project come from elsewhere).

use crate::{check_name, RepoEntry, Ring};

/// Longest link accepted, in bytes.
pub const MAX_LINK_LEN: usize = 256;

const SCHEME: &str = "packman://";

/// What a link asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Show a project and offer to install it.
    Install,
    /// Show a project only.
    Info,
}

/// A parsed `packman://` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub action: LinkAction,
    /// PEP 503 normalised.
    pub project: String,
    /// PEP 440 normalised.
    pub version: Option<String>,
    /// `?repo=`: the repository the link expects to own the project.
    pub repo: Option<String>,
}

/// Why a link is refused: which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("link is {len} bytes long (in its canonical spelling); at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("link has a character that is not allowed ({found:?} at byte {at}): only printable ASCII, no spaces")]
    BadCharacter { at: usize, found: char },
    #[error("link has '%': percent-encoding is not accepted in packman:// links")]
    PercentEncoded,
    #[error("link has a fragment ('#'): not accepted in packman:// links")]
    Fragment,
    #[error("not a packman:// link (the scheme must be exactly \"packman://\", lower case)")]
    Scheme,
    #[error("unknown action {action:?}: packman://install/PROJECT[@VERSION] or packman://info/PROJECT")]
    UnknownAction { action: String },
    #[error("link path {path:?}: expected a single PROJECT[@VERSION] after the action")]
    BadPath { path: String },
    #[error("project name {name:?}: not a valid PEP 508 name with no two of '-', '_', '.' in a row")]
    BadProject { name: String },
    #[error("version {version:?}: not a valid PEP 440 version")]
    BadVersion { version: String },
    #[error("packman://info/ takes no version")]
    VersionNotAllowed,
    #[error("query {query:?}: the only one accepted is ?repo=NAME")]
    BadQuery { query: String },
    #[error("repository name {name:?}: not a valid repository name")]
    BadRepo { name: String },
    #[error("the link names repository {name:?}, which you do not trust; a link never adds a repository (packman trust add does)")]
    UnknownRepo { name: String },
    #[error("no trusted repository serves {project:?} (packman trust list shows which projects each serves)")]
    NotRouted { project: String },
    #[error("the link says {project:?} comes from {repo:?}, but your trust ring routes it to {owner:?}: refused")]
    NotOwner { project: String, repo: String, owner: String },
}

fn project_ok(name: &str) -> bool {
    let sep = |b: &u8| matches!(b, b'-' | b'_' | b'.');
    packman_index::is_valid_name(name) && !name.as_bytes().windows(2).any(|w| sep(&w[0]) && sep(&w[1]))
}

fn version_ok(v: &str) -> Option<String> {
    let chars_ok = !v.is_empty()
        && !v.starts_with('-')
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'!' | b'+' | b'_' | b'-'));
    if chars_ok {
        packman_index::normalize_version(v)
    } else {
        None
    }
}

impl Link {
    /// Parses a link by the grammar in the module docs.
    pub fn parse(text: &str) -> Result<Link, LinkError> {
        if text.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong { len: text.len(), max: MAX_LINK_LEN });
        }
        if let Some((at, found)) = text.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
            return Err(LinkError::BadCharacter { at, found });
        }
        if text.contains('%') {
            return Err(LinkError::PercentEncoded);
        }
        if text.contains('#') {
            return Err(LinkError::Fragment);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(LinkError::Scheme)?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (action, target) = match path.split_once('/') {
            Some(("install", t)) => (LinkAction::Install, t),
            Some(("info", t)) => (LinkAction::Info, t),
            Some((a, _)) => return Err(LinkError::UnknownAction { action: a.into() }),
            None => return Err(LinkError::UnknownAction { action: path.into() }),
        };
        let separators = ['/', '\\', '?', ':', ';', '=', '&', '\'', '"'];
        if target.is_empty() || target.contains(separators) || target.matches('@').count() > 1 {
            return Err(LinkError::BadPath { path: target.into() });
        }
        let (project, version) = match target.split_once('@') {
            Some((p, v)) => (p, Some(v)),
            None => (target, None),
        };
        if !project_ok(project) {
            return Err(LinkError::BadProject { name: project.into() });
        }
        let version = match version {
            None => None,
            Some(_) if action == LinkAction::Info => return Err(LinkError::VersionNotAllowed),
            Some(v) => Some(version_ok(v).ok_or_else(|| LinkError::BadVersion { version: v.into() })?),
        };
        let repo = match query {
            None => None,
            Some(q) => {
                let name = q.strip_prefix("repo=").ok_or_else(|| LinkError::BadQuery { query: q.into() })?;
                if name.contains(['&', '=', '?', ';']) {
                    return Err(LinkError::BadQuery { query: q.into() });
                }
                check_name(name).map_err(|_| LinkError::BadRepo { name: name.into() })?;
                Some(name.to_string())
            }
        };
        let link = Link { action, project: packman_index::normalize_name(project), version, repo };
        // Normalising can lengthen a version ("1r" is "1.post0"): the canonical spelling must
        // parse too, or a page showing it would offer a link that is then refused.
        let canonical = link.to_url().len();
        if canonical > MAX_LINK_LEN {
            return Err(LinkError::TooLong { len: canonical, max: MAX_LINK_LEN });
        }
        Ok(link)
    }

    /// The repository the link's project comes from: the one the ring routes it to, which
    /// must be the one `?repo=` names, if any, and must already be trusted.
    pub fn repository<'r>(&self, ring: &'r Ring) -> Result<&'r RepoEntry, LinkError> {
        if let Some(name) = &self.repo {
            if ring.get(name).is_none() {
                return Err(LinkError::UnknownRepo { name: name.clone() });
            }
        }
        let owner = ring.route(&self.project).ok_or_else(|| LinkError::NotRouted { project: self.project.clone() })?;
        match &self.repo {
            Some(name) if *name != owner.name => Err(LinkError::NotOwner {
                project: self.project.clone(),
                repo: name.clone(),
                owner: owner.name.clone(),
            }),
            _ => Ok(owner),
        }
    }

    /// The link in its canonical spelling (what [`Link::parse`] gives back unchanged).
    pub fn to_url(&self) -> String {
        let mut s = match self.action {
            LinkAction::Install => format!("{SCHEME}install/{}", self.project),
            LinkAction::Info => format!("{SCHEME}info/{}", self.project),
        };
        if let Some(v) = &self.version {
            s.push('@');
            s.push_str(v);
        }
        if let Some(r) = &self.repo {
            s.push_str("?repo=");
            s.push_str(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Link {
        Link::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_grammar() {
        let l = ok("packman://install/Foo_Bar@1.0RC1?repo=internal");
        assert_eq!(l.action, LinkAction::Install);
        assert_eq!(
            (l.project.as_str(), l.version.as_deref(), l.repo.as_deref()),
            ("foo-bar", Some("1.0rc1"), Some("internal"))
        );
        assert_eq!(l.to_url(), "packman://install/foo-bar@1.0rc1?repo=internal");
        assert_eq!(ok(&l.to_url()), l);
        let l = ok("packman://install/requests");
        assert_eq!((l.version, l.repo), (None, None));
        assert_eq!(ok("packman://info/zope.interface").project, "zope-interface");
        assert_eq!(ok("packman://install/a@1!2.0+local.7").version.as_deref(), Some("1!2.0+local.7"));
        ok(&format!("packman://install/{}", "a".repeat(MAX_LINK_LEN - "packman://install/".len())));
    }

    /// Every refusal, by the rule it breaks.
    #[test]
    fn refusals() {
        use LinkError::*;
        type Rule = fn(&LinkError) -> bool;
        let cases: &[(&str, Rule)] = &[
            ("packman://install/a?repo=x&repo=y", |e| matches!(e, BadQuery { .. })),
            ("packman://install/a?repo=x&yes=1", |e| matches!(e, BadQuery { .. })),
            ("packman://install/a?yes=1", |e| matches!(e, BadQuery { .. })),
            ("packman://install/a?repo=x?repo=y", |e| matches!(e, BadPath { .. } | BadQuery { .. })),
            ("packman://install/a?", |e| matches!(e, BadQuery { .. })),
            ("packman://install/a?repo=", |e| matches!(e, BadRepo { .. })),
            ("packman://install/a?repo=Upper", |e| matches!(e, BadRepo { .. })),
            ("packman://install/a?repo=-x", |e| matches!(e, BadRepo { .. })),
            ("packman://install/--yes", |e| matches!(e, BadProject { .. })),
            ("packman://install/-y", |e| matches!(e, BadProject { .. })),
            ("packman://install/a--b", |e| matches!(e, BadProject { .. })),
            ("packman://install/a-.b", |e| matches!(e, BadProject { .. })),
            ("packman://install/a@--yes", |e| matches!(e, BadVersion { .. })),
            ("packman://install/a@-1", |e| matches!(e, BadVersion { .. })),
            ("packman://install/a@1.0*", |e| matches!(e, BadVersion { .. })),
            ("packman://install/a@", |e| matches!(e, BadVersion { .. })),
            ("packman://install/a@x.y", |e| matches!(e, BadVersion { .. })),
            ("packman://install/a@1@2", |e| matches!(e, BadPath { .. })),
            ("packman://info/a@1.0", |e| matches!(e, VersionNotAllowed)),
            ("packman://install/a%2Fb", |e| matches!(e, PercentEncoded)),
            ("packman://install/a%2fb", |e| matches!(e, PercentEncoded)),
            ("packman://install/a%5Cb", |e| matches!(e, PercentEncoded)),
            ("packman://install/a%00", |e| matches!(e, PercentEncoded)),
            ("packman://install/%61", |e| matches!(e, PercentEncoded)),
            ("packman://install/a#frag", |e| matches!(e, Fragment)),
            ("packman://install/a?repo=x#", |e| matches!(e, Fragment)),
            ("PACKMAN://install/a", |e| matches!(e, Scheme)),
            ("Packman://install/a", |e| matches!(e, Scheme)),
            ("packman:install/a", |e| matches!(e, Scheme)),
            ("packman:/install/a", |e| matches!(e, Scheme)),
            ("packmanx://install/a", |e| matches!(e, Scheme)),
            ("https://install/a", |e| matches!(e, Scheme)),
            ("packman://INSTALL/a", |e| matches!(e, UnknownAction { .. })),
            ("packman://remove/a", |e| matches!(e, UnknownAction { .. })),
            ("packman://user@install/a", |e| matches!(e, UnknownAction { .. })),
            ("packman://install:80/a", |e| matches!(e, UnknownAction { .. })),
            ("packman://install@evil/a", |e| matches!(e, UnknownAction { .. })),
            ("packman://install", |e| matches!(e, UnknownAction { .. })),
            ("packman:///install/a", |e| matches!(e, UnknownAction { .. })),
            ("packman://install/", |e| matches!(e, BadPath { .. })),
            ("packman://install/a/", |e| matches!(e, BadPath { .. })),
            ("packman://install/a/b", |e| matches!(e, BadPath { .. })),
            ("packman://install/a\\b", |e| matches!(e, BadPath { .. })),
            ("packman://install/../a", |e| matches!(e, BadPath { .. })),
            ("packman://install/a;rm", |e| matches!(e, BadPath { .. })),
            ("packman://install/a'b", |e| matches!(e, BadPath { .. })),
            ("packman://install/a$(x)", |e| matches!(e, BadProject { .. })),
            ("packman://install/a b", |e| matches!(e, BadCharacter { .. })),
            ("packman://install/a\tb", |e| matches!(e, BadCharacter { .. })),
            ("packman://install/a\n", |e| matches!(e, BadCharacter { .. })),
            (" packman://install/a", |e| matches!(e, BadCharacter { .. })),
            ("packman://install/a\0", |e| matches!(e, BadCharacter { .. })),
            ("packman://install/a\u{7f}", |e| matches!(e, BadCharacter { .. })),
            ("packman://install/\u{430}", |e| matches!(e, BadCharacter { .. })),
            ("packman://install/a\u{202e}", |e| matches!(e, BadCharacter { .. })),
            ("", |e| matches!(e, Scheme)),
        ];
        for (text, rule) in cases {
            match Link::parse(text) {
                Ok(l) => panic!("{text:?} parsed as {l:?}"),
                Err(e) => assert!(rule(&e), "{text:?}: wrong refusal {e:?}"),
            }
        }
        let long = format!("packman://install/{}", "a".repeat(MAX_LINK_LEN));
        assert!(matches!(Link::parse(&long), Err(TooLong { .. })));
    }

    /// Found by the `link` fuzz target: 255 bytes whose version ("10r" is "10.post0")
    /// normalises past the limit, so its canonical spelling would not parse. Refused now.
    #[test]
    fn a_link_whose_canonical_spelling_is_too_long_is_refused() {
        let found = include_str!("../tests/fuzz-regressions/link-1");
        assert_eq!(found.len(), 255);
        assert_eq!(Link::parse(found), Err(LinkError::TooLong { len: 260, max: MAX_LINK_LEN }));
        // At the limit once normalised, it parses, and its canonical spelling parses to itself.
        let ok = format!("packman://install/az@10r+{}", "a".repeat(MAX_LINK_LEN - 30));
        let l = Link::parse(&ok).unwrap();
        assert_eq!(l.to_url().len(), MAX_LINK_LEN);
        assert_eq!(Link::parse(&l.to_url()), Ok(l));
    }

    /// Property-style: any link that parses has only the allowed characters, a valid name,
    /// and re-parses to itself from its canonical spelling; inserting any forbidden byte
    /// anywhere into a good link makes it fail.
    #[test]
    fn mutations_of_a_good_link_are_refused_or_stay_in_the_grammar() {
        let good = "packman://install/foo-bar@1.0?repo=internal";
        let forbidden =
            [" ", "%", "#", "\\", "\n", "\r", "\0", "\u{7f}", "\"", "'", "&", "é", "%2F", "%2f", "%5C", "%00"];
        for at in 0..=good.len() {
            for f in forbidden {
                let t = format!("{}{f}{}", &good[..at], &good[at..]);
                assert!(Link::parse(&t).is_err(), "{t:?} parsed");
            }
        }
        // Every byte value inserted at every place: whatever parses is canonical again.
        for at in 0..=good.len() {
            for b in 0u8..=255 {
                let mut v = good.as_bytes().to_vec();
                v.insert(at, b);
                let Ok(t) = String::from_utf8(v) else { continue };
                if let Ok(l) = Link::parse(&t) {
                    assert!(t.bytes().all(|c| c.is_ascii_graphic() && !b"%#\\&\"'".contains(&c)), "{t:?}");
                    assert!(project_ok(&l.project) && !l.project.starts_with('-'), "{t:?}");
                    assert_eq!(Link::parse(&l.to_url()).unwrap(), l, "{t:?}");
                }
            }
        }
    }

    #[test]
    fn links_only_reach_repositories_already_trusted_that_own_the_project() {
        let mut ring = Ring::load_from(std::path::Path::new("/nonexistent/config.toml")).unwrap();
        let mut internal = RepoEntry::new("internal", "http://a/");
        internal.projects = vec!["acme-*".into()];
        ring.add(internal).unwrap();
        ring.add(RepoEntry::new("public", "http://b/")).unwrap();
        let repo = |s: &str| ok(s).repository(&ring).map(|r| r.name.clone());
        assert_eq!(repo("packman://install/acme-x").unwrap(), "internal");
        assert_eq!(repo("packman://install/requests").unwrap(), "public");
        assert_eq!(repo("packman://install/acme-x?repo=internal").unwrap(), "internal");
        assert!(matches!(repo("packman://install/acme-x?repo=public"), Err(LinkError::NotOwner { .. })));
        assert!(matches!(repo("packman://install/requests?repo=evil"), Err(LinkError::UnknownRepo { .. })));
        let mut only = Ring::load_from(std::path::Path::new("/nonexistent/config.toml")).unwrap();
        let mut internal = RepoEntry::new("internal", "http://a/");
        internal.projects = vec!["acme-*".into()];
        only.add(internal).unwrap();
        assert!(matches!(ok("packman://install/requests").repository(&only), Err(LinkError::NotRouted { .. })));
    }
}
