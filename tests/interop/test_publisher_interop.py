"""Interoperability of the publisher (``packman repo``) with python-tuf and pip.

Repositories here are built only with the ``packman repo`` CLI (no Python-side signing) and
served by a threaded ``http.server`` on 127.0.0.1:

* python-tuf's reference client (``tuf.ngclient.Updater``) refreshes and downloads targets,
  wheels found through the hashed bins included, then follows the repository through root
  and timestamp key rotations, root key additions and removals, a bins key rotation and an
  expiry refresh, ending with the newest root trusted.
* pip downloads a wheel from the static ``DIR/targets`` tree (``simple/<project>/`` pages
  linking ``../../packages/...``), skipping yanked files and files whose Requires-Python
  excludes it.

Binaries are taken from $PACKMAN_BIN_DIR (default: <repo>/target/release).

Run: ``.venv/bin/python -m pytest tests/interop/test_publisher_interop.py -q``
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

from tufrepo import RepoServer  # noqa: E402
from tuf.api.metadata import Metadata  # noqa: E402
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


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKMAN_", "PIP_"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no user or site pip configuration (extra indexes, proxies)
    return env


def repo(*args, check: bool = True) -> subprocess.CompletedProcess:
    """``packman repo ARGS``, with no terminal and no passphrase (keys stored in plain text)."""
    cmd = [os.fspath(PACKMAN), "repo", *map(os.fspath, args)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    if check:
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


# ---- distributions ------------------------------------------------------------------------

def make_wheel(directory: Path, dist: str, version: str, requires_python: str | None = None,
               payload: str = "") -> Path:
    """A pure-Python wheel with METADATA, WHEEL and a RECORD carrying real hashes."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    di = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    metadata += "\n"
    files = {
        f"{dist}/__init__.py": (payload or f"VERSION = {version!r}\n").encode(),
        f"{di}/METADATA": metadata.encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: packman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(data)}\n"
    record += f"{di}/RECORD,,\n"
    files[f"{di}/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def make_sdist(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for member, text in [("PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"),
                             ("pyproject.toml", f'[project]\nname = "{name}"\nversion = "{version}"\n')]:
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


# ---- reading the published repository -----------------------------------------------------

def signed(repo_dir: Path, name: str) -> dict:
    return json.loads((repo_dir / "metadata" / name).read_bytes())["signed"]


def published_versions(repo_dir: Path) -> dict[str, int]:
    ts = signed(repo_dir, "timestamp.json")
    snap = signed(repo_dir, f"{ts['meta']['snapshot.json']['version']}.snapshot.json")
    out = {"root": signed(repo_dir, "root.json")["version"], "timestamp": ts["version"],
           "snapshot": snap["version"]}
    out.update({k.removesuffix(".json"): v["version"] for k, v in snap["meta"].items()})
    return out


def bin_requests(server: RepoServer) -> set[str]:
    return {m.group(1) for p in server.paths() if (m := re.fullmatch(r"/metadata/\d+\.(bins-[0-9a-f]+)\.json", p))}


NOT_THERE = "packages/nope/nope-1.0.tar.gz"


class NgClient:
    """python-tuf's ngclient with persistent trusted state, as a real client uses it: a new
    Updater per run, bootstrapped from root v1 the first time only."""

    def __init__(self, workdir: Path, server: RepoServer, root_v1: bytes):
        self.md = workdir / "ng-metadata"
        self.dl = workdir / "ng-targets"
        self.md.mkdir(parents=True)
        self.dl.mkdir(parents=True)
        self.server = server
        self.bootstrap: bytes | None = root_v1

    def updater(self) -> Updater:
        up = Updater(os.fspath(self.md), f"{self.server.url}/metadata/", os.fspath(self.dl),
                     f"{self.server.url}/targets/", bootstrap=self.bootstrap)
        self.bootstrap = None
        up.refresh()
        return up

    def trusted(self, role: str) -> dict:
        return json.loads((self.md / f"{role}.json").read_bytes())["signed"]

    def check(self, repo_dir: Path, files: dict[str, bytes]) -> None:
        """Refreshes, then finds and downloads every target in ``files``; the trusted
        top-level metadata must be what was just published."""
        self.server.clear()
        up = self.updater()
        want = published_versions(repo_dir)
        for role in ("root", "timestamp", "snapshot", "targets"):
            assert self.trusted(role)["version"] == want[role], (role, self.trusted(role)["version"], want)
        for path, data in files.items():
            info = up.get_targetinfo(path)
            assert info is not None, f"python-tuf does not find {path}"
            assert info.length == len(data) and info.hashes["sha256"] == hashlib.sha256(data).hexdigest(), path
            got = Path(up.download_target(info, os.fspath(self.dl / hashlib.sha256(path.encode()).hexdigest())))
            assert got.read_bytes() == data, path
        # Lazy: only the bins that list the targets asked for were fetched (none when the
        # trusted copies are still current).
        succinct = Metadata.from_file(os.fspath(self.md / "targets.json")).signed.delegations.succinct_roles
        self.wanted_bins = {succinct.get_role_for_target(p) for p in [*files, NOT_THERE]}
        assert bin_requests(self.server) <= self.wanted_bins, (bin_requests(self.server), self.wanted_bins)
        assert up.get_targetinfo(NOT_THERE) is None


def keyid(key_file: Path) -> str:
    return json.loads(key_file.read_bytes())["keyid"]


# ---- tests --------------------------------------------------------------------------------

def test_ngclient_follows_a_repository_built_with_packman_repo(tmp_path):
    d = tmp_path / "repo"
    keys = d / "keys"
    p = repo("init", d, "--bins", "16", "--root-keys", "2", "--root-threshold", "2")
    assert "root v1: 2 of 2 root key(s)" in p.stdout

    src = tmp_path / "dist"
    whl = make_wheel(src, "hello", "1.0", requires_python=">=3.8")
    sd = make_sdist(src, "hello", "1.0")
    other = make_wheel(src, "other_pkg", "0.1")
    notes = src / "NOTES.txt"
    notes.write_bytes(b"plain target\n")
    p = repo("add", d, whl, sd, other)
    assert "hello 1.0 -> packages/hello/hello-1.0-py3-none-any.whl (bins-" in p.stdout
    repo("add", d, "--prefix", "docs/", notes)

    files = {
        "packages/hello/hello-1.0-py3-none-any.whl": whl.read_bytes(),
        "packages/hello/hello-1.0.tar.gz": sd.read_bytes(),
        "packages/other-pkg/other_pkg-0.1-py3-none-any.whl": other.read_bytes(),
        "docs/NOTES.txt": notes.read_bytes(),
    }
    with zipfile.ZipFile(whl) as z:
        files["packages/hello/hello-1.0-py3-none-any.whl.metadata"] = z.read("hello-1.0.dist-info/METADATA")

    with RepoServer(d) as server:
        ng = NgClient(tmp_path, server, (d / "metadata" / "1.root.json").read_bytes())
        ng.check(d, files)
        assert bin_requests(server) == ng.wanted_bins  # found through the hashed bins
        assert len(ng.wanted_bins) > 1
        # The signed project page python-tuf downloads is the one pip would read.
        page = {"simple/hello/index.json": (d / "targets/simple/hello/index.json").read_bytes()}
        ng.check(d, page)
        assert {f["filename"] for f in json.loads(page["simple/hello/index.json"])["files"]} == {whl.name, sd.name}

        # 1. Root rotation (2-of-2 old keys sign the new root), then a timestamp rotation.
        old_root_keys = sorted(keys.glob("root-*.key"))
        assert "root v2 in force" in repo("key", "rotate", d, "root").stdout
        assert "root v3 in force" in repo("key", "rotate", d, "timestamp").stdout
        root = signed(d, "root.json")
        assert not {keyid(k) for k in old_root_keys} & set(root["roles"]["root"]["keyids"])
        whl2 = make_wheel(src, "hello", "2.0")
        repo("add", d, whl2)
        files["packages/hello/hello-2.0-py3-none-any.whl"] = whl2.read_bytes()
        ng.check(d, files)
        assert ng.trusted("root")["version"] == 3

        # 2. A second root key at threshold 2, then a root key removed (threshold back to 1),
        #    and a snapshot key added then the old one removed.
        assert "root v4 in force" in repo("key", "add", d, "root", "--threshold", "2").stdout
        first = root["roles"]["root"]["keyids"][0]
        assert "root v5 in force" in repo("key", "remove", d, "root", first[:12], "--threshold", "1").stdout
        old_snapshot = signed(d, "root.json")["roles"]["snapshot"]["keyids"][0]
        assert "root v6 in force" in repo("key", "add", d, "snapshot").stdout
        assert "root v7 in force" in repo("key", "remove", d, "snapshot", old_snapshot).stdout
        root = signed(d, "root.json")
        assert first not in root["keys"] and old_snapshot not in root["keys"]
        assert root["roles"]["root"]["threshold"] == 1 and len(root["roles"]["root"]["keyids"]) == 1
        ng.check(d, files)
        assert ng.trusted("root")["version"] == 7

        # 3. A new bins key: targets and every bin re-signed.
        old_bins_key = signed(d, f"{published_versions(d)['targets']}.targets.json")["delegations"]["keys"]
        before = published_versions(d)
        repo("key", "rotate", d, "bins")
        after = published_versions(d)
        assert all(after[b] == before[b] + 1 for b in before if b.startswith("bins-"))
        assert after["targets"] == before["targets"] + 1
        new_bins_key = signed(d, f"{after['targets']}.targets.json")["delegations"]["keys"]
        assert not set(old_bins_key) & set(new_bins_key)
        ng.check(d, files)
        assert bin_requests(server) == ng.wanted_bins  # new versions, signed by the new key

        # 4. An expiry refresh far enough ahead to re-sign bins, targets, snapshot, timestamp.
        before = published_versions(d)
        p = repo("refresh", d, "--margin-hours", "100000")
        assert "targets" in p.stdout and "snapshot" in p.stdout and "bins-0" in p.stdout, p.stdout
        after = published_versions(d)
        assert all(after[r] == before[r] + 1 for r in before if r != "root"), (before, after)
        ng.check(d, files)
        assert ng.trusted("root")["version"] == 7
        # And once more with nothing due: nothing changes, the client is still happy.
        assert "nothing re-signed" in repo("refresh", d).stdout
        assert published_versions(d) == after
        ng.check(d, files)

        # A fresh python-tuf client walks the whole chain of roots from v1.
        fresh = NgClient(tmp_path / "fresh", server, (d / "metadata" / "1.root.json").read_bytes())
        fresh.check(d, files)
        assert fresh.trusted("root")["version"] == 7


def test_ngclient_follows_offline_threshold_signing(tmp_path):
    """Root keys kept offline and signing one at a time (``packman repo sign --key``)."""
    d = tmp_path / "repo"
    repo("init", d, "--bins", "16", "--root-keys", "3", "--root-threshold", "2")
    offline = tmp_path / "offline"
    offline.mkdir()
    for k in (d / "keys").glob("root-*.key"):
        k.rename(offline / k.name)
    whl = make_wheel(tmp_path / "dist", "hello", "1.0")
    repo("add", d, whl)
    files = {"packages/hello/hello-1.0-py3-none-any.whl": whl.read_bytes()}
    with RepoServer(d) as server:
        ng = NgClient(tmp_path, server, (d / "metadata" / "1.root.json").read_bytes())
        ng.check(d, files)
        assert "root v2 staged" in repo("key", "rotate", d, "timestamp").stdout
        k1, k2, _ = sorted(offline.glob("root-*.key"))
        assert "1 of 2" in repo("sign", d, "--key", k1).stdout
        ng.check(d, files)  # nothing published yet
        assert ng.trusted("root")["version"] == 1
        assert "root v2 in force" in repo("sign", d, "--key", k2).stdout
        ng.check(d, files)
        assert ng.trusted("root")["version"] == 2


# Strings the publisher controls that end up in signed metadata, chosen to break a canonical
# JSON encoder that escapes too much or too little: quotes, backslashes (also one that looks
# like an escape), control characters (JSON escapes them, canonical JSON writes them raw),
# U+2028/9 (JavaScript line ends), DEL, non-ASCII and astral-plane characters.
NASTY_REASONS = [
    'say "no" to \\ and \\" and \\u0041',
    "na\u00efve caf\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001f980\U0001d11e\U0010fffd",
    "ctl \x01 tab\t nl\n cr\r ff\x0c esc\x1b us\x1f del\x7f ls\u2028 ps\u2029 bom\ufeff",
    "\x01",
]
NASTY_FILES = ["caf\u00e9-\u2603-\U0001f980.txt", "say \"hi\" & 'bye'.txt"]  # no backslash: not a path


@pytest.mark.parametrize("bin_style", ["succinct", "prefixes"])
def test_ngclient_verifies_metadata_with_nasty_strings(tmp_path, bin_style):
    """python-tuf, an independent canonical JSON implementation, verifies every signature
    over metadata holding those strings: yank reasons (``custom.yanked`` in the bins) and
    target paths (keys of the bins' ``targets``), and downloads those targets."""
    d = tmp_path / "repo"
    repo("init", d, "--bins", "4", "--bin-style", bin_style)
    src = tmp_path / "dist"
    wheels = [make_wheel(src, f"nasty{i}", "1.0", payload=str(i)) for i in range(len(NASTY_REASONS))]
    plain = []
    for name in NASTY_FILES:
        (src / name).write_bytes(name.encode())
        plain.append(src / name)
    repo("add", d, *wheels)
    repo("add", d, "--prefix", "docs/\u00fcber/", *plain)
    for whl, reason in zip(wheels, NASTY_REASONS):
        repo("yank", d, whl.name, "--reason", reason)

    files = {f"packages/nasty{i}/{w.name}": (w.read_bytes(), NASTY_REASONS[i]) for i, w in enumerate(wheels)}
    files.update({f"docs/\u00fcber/{p.name}": (p.read_bytes(), None) for p in plain})
    # The strings really are in the signed bins as written (not normalised or dropped).
    signed_reasons = {t.get("custom", {}).get("yanked") for f in (d / "metadata").glob("*.bins-*.json")
                      for t in json.loads(f.read_bytes())["signed"]["targets"].values()}
    assert set(NASTY_REASONS) <= signed_reasons, signed_reasons

    with RepoServer(d) as server:
        md, dl = tmp_path / "ng-md", tmp_path / "ng-dl"
        md.mkdir()
        dl.mkdir()
        up = Updater(os.fspath(md), f"{server.url}/metadata/", os.fspath(dl), f"{server.url}/targets/",
                     bootstrap=(d / "metadata" / "1.root.json").read_bytes())
        up.refresh()
        for n, (path, (data, reason)) in enumerate(files.items()):
            info = up.get_targetinfo(path)
            assert info is not None, f"python-tuf does not find {path!r}"
            if reason is not None:
                assert info.custom["yanked"] == reason, (path, info.custom)
            assert info.length == len(data) and info.hashes["sha256"] == hashlib.sha256(data).hexdigest(), path
            got = Path(up.download_target(info, os.fspath(dl / str(n))))
            assert got.read_bytes() == data, path
        # Every bin holding one of them was verified by python-tuf (its signature over its
        # own canonical form of what packman signed).
        if bin_style == "succinct":
            succinct = Metadata.from_file(os.fspath(md / "targets.json")).signed.delegations.succinct_roles
            wanted = {succinct.get_role_for_target(p) for p in files}
        else:
            wanted = {r.name for r in Metadata.from_file(os.fspath(md / "targets.json")).signed.delegations.roles.values()
                      if any(r.is_delegated_path(p) for p in files)}
        assert wanted and all((md / f"{b}.json").is_file() for b in wanted), (wanted, sorted(os.listdir(md)))


def test_pip_downloads_from_the_static_targets_tree(tmp_path):
    d = tmp_path / "repo"
    repo("init", d, "--bins", "16")
    src = tmp_path / "dist"
    good = make_wheel(src, "hello_pm", "1.0")
    yanked = make_wheel(src, "hello_pm", "1.1")
    future = make_wheel(src, "hello_pm", "2.0", requires_python=">=4")
    repo("add", d, good, yanked, future, make_sdist(src, "hello_pm", "1.0"))
    repo("yank", d, yanked.name, "--reason", "broken")

    dest = tmp_path / "pip-dl"
    with RepoServer(d / "targets") as server:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--no-cache-dir", "--no-input", "--timeout", "10",
               "--index-url", f"{server.url}/simple/", "-d", os.fspath(dest), "hello-pm"]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
                           env=_env())
        assert p.returncode == 0, f"{cmd}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        requested = server.paths()
    # 2.0 needs Python >= 4 and 1.1 is yanked: pip takes 1.0, byte for byte.
    assert sorted(os.listdir(dest)) == [good.name], (os.listdir(dest), p.stdout)
    assert (dest / good.name).read_bytes() == good.read_bytes()
    assert "/simple/hello-pm/" in requested, requested
    assert f"/packages/hello-pm/{good.name}" in requested, requested
    # pip read the PEP 658 core metadata file the page announces, before the wheel.
    assert f"/packages/hello-pm/{good.name}.metadata" in requested, requested
