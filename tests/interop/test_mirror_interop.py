"""python-tuf's reference client reads a mirror made by ``packman mirror sync``.

The upstream is built with the ``packman repo`` CLI and served by a threaded
``http.server`` on 127.0.0.1; the mirror directory is served by ``packman serve``. The
ngclient refreshes from the mirror, finds and downloads targets (through the hashed bins),
and follows the mirror through a new file and a timestamp key rotation (root v2).

Binaries are taken from $PACKMAN_BIN_DIR (default: <repo>/target/release).

Run: ``.venv/bin/python -m pytest tests/interop/test_mirror_interop.py -q``
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

from tufrepo import RepoServer  # noqa: E402
from tuf.ngclient import Updater  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
TIMEOUT = 60


@pytest.fixture(scope="module", autouse=True)
def _packman_present():
    if not os.access(PACKMAN, os.X_OK):
        pytest.fail(f"missing {PACKMAN}: run `cargo build --release -p packman` or set PACKMAN_BIN_DIR",
                    pytrace=False)


_HOME: list[Path] = []


@pytest.fixture(autouse=True)
def _packman_home(tmp_path):
    """Each test's PACKMAN_HOME (where mirrors keep their state), never the user's."""
    _HOME[:] = [tmp_path / "packman-home"]


def packman(*args) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKMAN_")}
    env["PACKMAN_HOME"] = os.fspath(_HOME[0])
    cmd = [os.fspath(PACKMAN), *map(os.fspath, args)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p.stdout


class Serve:
    """``packman serve DIR`` on a free port of 127.0.0.1."""

    def __init__(self, directory: Path):
        self.proc = subprocess.Popen(
            [os.fspath(PACKMAN), "serve", os.fspath(directory), "--listen", "127.0.0.1:0", "--access-log", "off"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline()
        assert " on http://" in first, first
        self.url = first.split(" on ", 1)[1].strip().rstrip("/")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)


def files_under(d: Path) -> dict[str, bytes]:
    return {os.fspath(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_ngclient_reads_a_packman_mirror_through_updates_and_a_timestamp_key_rotation(tmp_path):
    up = tmp_path / "upstream"
    packman("repo", "init", up, "--bins", "16")
    src = tmp_path / "src"
    src.mkdir()
    files = {"packages/p/a.txt": b"alpha\n", "docs/b.txt": b"beta\n"}
    for path, data in files.items():
        (src / Path(path).name).write_bytes(data)
    packman("repo", "add", up, "--raw", "--prefix", "packages/p/", src / "a.txt")
    packman("repo", "add", up, "--raw", "--prefix", "docs/", src / "b.txt")
    root_v1 = (up / "metadata" / "1.root.json").read_bytes()

    upstream = RepoServer(up)
    mirror = tmp_path / "mirror"
    served = None
    try:
        packman("mirror", "sync", upstream.url, mirror, "--root", up / "metadata" / "1.root.json")
        # Everything the mirror serves is the upstream's bytes under the upstream's names.
        for name, data in {**files_under(mirror / "metadata"), **files_under(mirror / "targets")}.items():
            top = "metadata" if (mirror / "metadata" / name).exists() else "targets"
            assert (up / top / name).read_bytes() == data, name

        served = Serve(mirror)
        md, dl = tmp_path / "ng-metadata", tmp_path / "ng-targets"
        md.mkdir()
        dl.mkdir()

        def ng(bootstrap: bytes | None) -> Updater:
            u = Updater(os.fspath(md), f"{served.url}/metadata/", os.fspath(dl), f"{served.url}/targets/",
                        bootstrap=bootstrap)
            u.refresh()
            return u

        def check(u: Updater, want: dict[str, bytes]) -> None:
            for path, data in want.items():
                info = u.get_targetinfo(path)
                assert info is not None, f"python-tuf does not find {path} on the mirror"
                got = Path(u.download_target(info, os.fspath(dl / hashlib.sha256(path.encode()).hexdigest())))
                assert got.read_bytes() == data, path

        check(ng(root_v1), files)

        # A new file and a timestamp key rotation upstream, then a sync: the client follows.
        files["docs/c.txt"] = b"gamma\n"
        (src / "c.txt").write_bytes(files["docs/c.txt"])
        packman("repo", "add", up, "--raw", "--prefix", "docs/", src / "c.txt")
        assert "root v2 in force" in packman("repo", "key", "rotate", up, "timestamp")
        out = packman("mirror", "sync", upstream.url, mirror)
        assert "root v2" in out, out
        check(ng(None), files)
        assert json.loads((md / "root.json").read_bytes())["signed"]["version"] == 2
        assert json.loads((md / "timestamp.json").read_bytes())["signed"]["version"] == \
            json.loads((up / "metadata" / "timestamp.json").read_bytes())["signed"]["version"]
    finally:
        upstream.close()
        if served:
            served.close()


def test_ngclient_reads_a_mirror_imported_from_bundles(tmp_path):
    """``mirror export`` / ``mirror import``: a full bundle into an empty directory, then a
    ``--since`` bundle into that (now older) mirror; python-tuf's client reads the result."""
    up = tmp_path / "upstream"
    packman("repo", "init", up, "--bins", "16")
    src = tmp_path / "src"
    src.mkdir()
    files = {"packages/p/a.txt": b"alpha\n", "docs/b.txt": b"beta\n"}
    for path, data in files.items():
        (src / Path(path).name).write_bytes(data)
    packman("repo", "add", up, "--raw", "--prefix", "packages/p/", src / "a.txt")
    packman("repo", "add", up, "--raw", "--prefix", "docs/", src / "b.txt")
    root = up / "metadata" / "1.root.json"
    online, offline = tmp_path / "online", tmp_path / "offline"
    packman("mirror", "sync", f"file://{up}", online, "--root", root)
    packman("mirror", "export", online, tmp_path / "full.bundle")
    packman("mirror", "import", tmp_path / "full.bundle", offline, "--root", root)
    since = json.loads((offline / "metadata" / "timestamp.json").read_bytes())["signed"]["meta"]["snapshot.json"][
        "version"]

    files["docs/c.txt"] = b"gamma\n"
    (src / "c.txt").write_bytes(files["docs/c.txt"])
    packman("repo", "add", up, "--raw", "--prefix", "docs/", src / "c.txt")
    packman("mirror", "sync", f"file://{up}", online)
    out = packman("mirror", "export", online, tmp_path / "inc.bundle", "--since", str(since))
    assert "1 of 3 target(s)" in out, out
    packman("mirror", "import", tmp_path / "inc.bundle", offline)
    assert files_under(offline / "metadata") == files_under(online / "metadata")
    assert files_under(offline / "targets") == files_under(online / "targets")
    # The mirrors hold only what they serve; their state is in PACKMAN_HOME.
    assert sorted(p.name for p in offline.iterdir()) == ["metadata", "targets"]
    assert len(list((_HOME[0] / "mirrors").iterdir())) == 2

    served = Serve(offline)
    try:
        md, dl = tmp_path / "ng-metadata", tmp_path / "ng-targets"
        md.mkdir()
        dl.mkdir()
        u = Updater(os.fspath(md), f"{served.url}/metadata/", os.fspath(dl), f"{served.url}/targets/",
                    bootstrap=root.read_bytes())
        u.refresh()
        for path, data in files.items():
            info = u.get_targetinfo(path)
            assert info is not None, f"python-tuf does not find {path} on the imported mirror"
            got = Path(u.download_target(info, os.fspath(dl / hashlib.sha256(path.encode()).hexdigest())))
            assert got.read_bytes() == data, path
    finally:
        served.close()
