//! What the target Python accepts, asked of the interpreter itself: its version and its
//! supported wheel tags, most preferred first, from `packaging.tags.sys_tags()` (the
//! `packaging` module, or the copy pip vendors). An interpreter without either is assumed
//! to take only `py3-none-any` wheels and sdists, and the command says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use packman_index::Environment;

/// Prints the version, then one supported tag per line (none without `packaging`).
const SCRIPT: &str = r#"
import sys
print("%d.%d.%d" % sys.version_info[:3])
try:
    from packaging import tags
except ImportError:
    try:
        from pip._vendor.packaging import tags
    except ImportError:
        tags = None
if tags is not None:
    for t in tags.sys_tags():
        print(t)
"#;

/// `--python`, else `$VIRTUAL_ENV/bin/python`, else `python3` (as `packman install`).
pub fn choose(given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(super::install::default_python)
}

/// What `python` accepts, and a note when only the fallback could be used.
pub fn environment(python: &Path) -> Result<(Environment, Option<String>), String> {
    let out =
        Command::new(python).args(["-c", SCRIPT]).stdin(Stdio::null()).stderr(Stdio::null()).output().map_err(|e| {
            format!("cannot run the Python interpreter {}: {e} (choose one with --python PATH)", python.display())
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let version = match (out.status.success(), lines.next()) {
        (true, Some(v)) => v.to_string(),
        _ => {
            return Err(format!(
                "{} did not report its version and wheel tags (exit {:?}): is it a Python 3 interpreter? \
                 Choose one with --python PATH",
                python.display(),
                out.status.code()
            ))
        }
    };
    let tags: Vec<String> = lines.map(str::to_string).collect();
    if tags.is_empty() {
        let note = format!(
            "{} (Python {version}) has no `packaging` module: choosing only py3-none-any wheels and sdists",
            python.display()
        );
        return Ok((Environment::fallback(Some(&version)), Some(note)));
    }
    Ok((Environment::new(Some(&version), tags), None))
}
