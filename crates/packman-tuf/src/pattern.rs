//! Delegation path patterns (spec 5.6.7.2): shell-style wildcards where `*` does not cross
//! a `/` (pattern and path must have the same number of segments), as python-tuf does it.

pub fn path_matches(pattern: &str, target: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    p.len() == t.len() && p.iter().zip(&t).all(|(p, t)| fnmatch(p.as_bytes(), t.as_bytes()))
}

/// fnmatch for one segment: `*`, `?`, `[seq]`, `[!seq]`. Iterative with one backtrack
/// point, so hostile patterns cannot blow up.
fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&p[pi..], s[si]) {
                        if matched {
                            pi += next;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == b'[' {
                        // An unclosed '[' is a literal, as in Python's fnmatch.
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a class starting at `p[0] == b'['`; returns (matched, class length).
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    while i < p.len() {
        if p[i] == b']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn star_does_not_cross_slash() {
        assert!(path_matches("*", "a.txt"));
        assert!(!path_matches("*", "dir/a.txt"));
        assert!(path_matches("dir/*", "dir/a.txt"));
        assert!(path_matches("*/*.whl", "x/pkg-1.0-py3-none-any.whl"));
        assert!(!path_matches("dir/*", "dir/sub/a.txt"));
        assert!(path_matches("a?c/[ab]*", "abc/b1"));
        assert!(!path_matches("a?c/[!ab]*", "abc/b1"));
        assert!(path_matches("f[0-9].txt", "f7.txt"));
        assert!(path_matches("[", "["));
        assert!(path_matches("**", "abc"));
        assert!(!path_matches("*a", "bbb"));
        assert!(path_matches(&"*a".repeat(20), &"a".repeat(40)));
    }
}
