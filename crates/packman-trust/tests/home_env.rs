//! `Home::from_env` reads the process environment; this file holds one test so nothing else
//! in its process reads the environment while it changes it.

use std::path::Path;

use packman_trust::Home;

#[test]
fn packman_home_then_the_platform_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var("PACKMAN_HOME", tmp.path().join("ph"));
    let h = Home::from_env().unwrap();
    assert_eq!(h, Home::at(tmp.path().join("ph")));
    assert_eq!(h.metadata_dir_for("http://h/repo/metadata"), tmp.path().join("ph/repos/a0becf5a95ebed86"));

    std::env::remove_var("PACKMAN_HOME");
    if cfg!(target_os = "linux") {
        // XDG_DATA_HOME respected; without it, ~/.local/share/packman as always.
        std::env::set_var("XDG_DATA_HOME", tmp.path().join("xdg"));
        std::env::set_var("XDG_CACHE_HOME", tmp.path().join("xdg-cache"));
        let h = Home::from_env().unwrap();
        assert_eq!(h.data_dir(), tmp.path().join("xdg/packman"));
        assert_eq!(h.cache_dir(), tmp.path().join("xdg-cache/packman"));
        std::env::remove_var("XDG_DATA_HOME");
        std::env::set_var("HOME", tmp.path().join("home"));
        let h = Home::from_env().unwrap();
        assert_eq!(h.data_dir(), tmp.path().join("home/.local/share/packman"));
        assert!(h
            .metadata_dir_for("http://h/")
            .starts_with(Path::new(&tmp.path().join("home/.local/share/packman/repos"))));
    }
}
