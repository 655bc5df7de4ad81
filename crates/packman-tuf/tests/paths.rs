//! Delegation path patterns (`pattern::path_matches`): a role is trusted only for the paths
//! its delegation's patterns match, so a pattern matching too much widens a delegation and
//! one matching too little hides a target. Python's `fnmatch.fnmatchcase` is the reference
//! (python-tuf matches segment by segment with it); the expected values below were printed
//! by it. Written for the mutation campaign (docs/MUTATION.md).

use packman_tuf::pattern::path_matches;

/// `(pattern, one path segment, fnmatchcase's answer)`.
const FNMATCH: &[(&str, &str, bool)] = &[
    ("[]a]", "]", true),
    ("[]a]", "a", true),
    ("[]a]", "b", false),
    ("[!]]", "]", false),
    ("[!]]", "x", true),
    ("[a-]", "-", true),
    ("[a-]", "a", true),
    ("[a-]", "b", false),
    ("[a-c]", "b", true),
    ("[a-c]", "c", true),
    ("[a-c]", "a", true),
    ("[a-c]", "d", false),
    ("[a-c]", "`", false),
    ("[!a-c]", "d", true),
    ("[!a-c]", "b", false),
    ("[", "[", true),
    ("[a", "[a", true),
    ("[a", "a", false),
    ("a[", "a[", true),
    ("[ab", "[ab", true),
    ("?", "", false),
    ("a?", "a", false),
    ("a?", "ab", true),
    ("a*", "a", true),
    ("a*b", "ab", true),
    ("a*b", "axxb", true),
    ("a*b", "axxbc", false),
    ("*b*", "abc", true),
    ("*.whl", "x.whl.tar", false),
    ("a*b*c", "aXbYbZc", true),
    ("abc", "ab", false),
    ("ab", "abc", false),
    ("[b-a]", "a", false),
    ("[!]", "!", false),
    ("[!]", "[!]", true),
    ("[]", "]", false),
    ("[]", "[]", true),
    ("[-a]", "-", true),
    ("[a-c-e]", "-", true),
    ("[a-c-e]", "d", false),
    ("x[!a]y", "xay", false),
    ("x[!a]y", "xby", true),
    ("*[0-9]", "ab7", true),
    ("[0-9]*", "7ab", true),
    ("a**", "a", true),
    ("*?", "", false),
    ("*?", "a", true),
    ("[z-a]", "m", false),
    ("[ac]", "c", true),
    ("[ac]", "b", false),
    ("[ac]", "a", true),
    ("[a]b", "ab", true),
    ("[a]b", "[a]b", false),
    ("*x", "x", true),
    ("", "", true),
    ("", "a", false),
    ("a", "", false),
    // A negated class's `!` is not a member; an unclosed class ending in `-` is literal.
    ("[!a]", "!", true),
    ("[!a]", "[", true),
    ("[a-", "[a-", true),
    ("[a-", "a", false),
    ("[ab-", "[ab-", true),
    ("[!a-", "[!a-", true),
];

#[test]
fn one_segment_matches_as_python_fnmatch_does() {
    let wrong: Vec<_> = FNMATCH.iter().filter(|(p, s, want)| path_matches(p, s) != *want).collect();
    assert!(wrong.is_empty(), "differ from fnmatchcase (pattern, segment, expected): {wrong:?}");
}

#[test]
fn patterns_match_segment_by_segment() {
    assert!(path_matches("a/*/c", "a/b/c"));
    assert!(!path_matches("a/*/c", "a/b/x/c"));
    assert!(!path_matches("a/*", "a"));
    assert!(!path_matches("a", "a/b"));
    // Every segment must match, not just one.
    assert!(!path_matches("a/b", "a/c"));
    assert!(!path_matches("a/b", "c/b"));
    assert!(path_matches("packages/p/*.whl", "packages/p/p-1.0-py3-none-any.whl"));
    assert!(!path_matches("packages/p/*.whl", "packages/q/p-1.0-py3-none-any.whl"));
}
