"""Which TUF clients read which shape of hashed bins (``packman repo init --bin-style``).

A repository is built with the real binary (``packman repo init --bins 32 --bin-style S`` and
``repo add`` of wheels, an sdist and plain files), served by ``packman serve`` on 127.0.0.1,
and every target it lists is downloaded and verified (bytes compared with the sha256 the bins
list) by four clients:

* python-tuf's ngclient and ``packman download``: both shapes;
* tough 0.24 (awslabs) and sigstore-tuf 0.15 (sigstore-rust), from crates.io, each behind a
  small adapter in tests/adapters/: the classic ``prefixes`` shape only. On the default
  ``succinct`` shape (TAP 15) they fail, and the tests assert that they do: tough refuses
  targets.json ("missing field `roles`"), sigstore-tuf finds no role for the target. That is
  why ``--bin-style prefixes`` exists (README, "Hashed bins").

tough names consistent-snapshot targets ``HASH.dir/name`` (the hash before the whole path)
where everyone else uses ``dir/HASH.name``; its adapter maps that URL (tough still verifies
what it gets), so that this test is about delegations.

32 bins put 8 two-digit prefixes in each classic role, so a prefix match that only looked at
one prefix per role, or at whole bytes, would miss targets.

The adapters are built here (``cargo build --release --locked`` into target/adapters, so
reruns are incremental, a second or so); a cold build of both took 251 s on two cores busy
with other builds, most of it aws-lc's C code, which both share (their release profile is
opt-level 1: 437 s at opt-level 3). Binaries come from $PACKMAN_BIN_DIR (default:
<repo>/target/release).

Run: ``.venv/bin/python -m pytest tests/interop/test_bin_style.py -q``
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

from test_publisher_interop import make_sdist, make_wheel  # noqa: E402
from tuf.ngclient import Updater  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
ADAPTERS = REPO_ROOT / "tests" / "adapters"
ADAPTER_TARGET = REPO_ROOT / "target" / "adapters"
TIMEOUT = 60
# A cold build of the adapters (aws-lc's C code included) on a slow shared machine.
BUILD_TIMEOUT = 1500


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PACKMAN_")}


def packman(*args, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [os.fspath(PACKMAN), *map(os.fspath, args)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    if check:
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def adapters() -> dict[str, Path]:
    """Builds both adapters (each its own Cargo project and lock file) into one target dir."""
    if not os.access(PACKMAN, os.X_OK):
        pytest.fail(f"missing {PACKMAN}: run `cargo build --release -p packman` or set PACKMAN_BIN_DIR",
                    pytrace=False)
    env = dict(os.environ, CARGO_TARGET_DIR=os.fspath(ADAPTER_TARGET))
    out = {}
    for name in ("tough", "sigstore-tuf"):
        start = time.monotonic()
        p = subprocess.run(["cargo", "build", "--release", "--locked", "--quiet",
                            "--manifest-path", os.fspath(ADAPTERS / name / "Cargo.toml")],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env)
        assert p.returncode == 0, f"building the {name} adapter failed:\n{p.stderr}"
        print(f"{name} adapter built in {time.monotonic() - start:.1f} s", file=sys.stderr)
        out[name] = ADAPTER_TARGET / "release" / f"{name}-adapter"
    return out


class Served:
    """A repository built with ``packman repo`` and served by ``packman serve`` on 127.0.0.1."""

    def __init__(self, base: Path, style: str):
        self.dir = base / "repo"
        packman("repo", "init", self.dir, "--bins", "32", "--bin-style", style)
        src = base / "src"
        files = [make_wheel(src, "hello", "1.0", payload="x = 1\n"),
                 make_wheel(src, "foo_bar", "2.0", requires_python=">=3.8", payload="y = 2\n"),
                 make_sdist(src, "hello", "1.0")]
        packman("repo", "add", self.dir, *files)
        plain = []
        for i in range(6):
            f = src / f"notes-{i}.txt"
            f.write_bytes(f"release notes {i}\n".encode())
            plain.append(f)
        packman("repo", "add", self.dir, "--prefix", "docs/", *plain)
        self.proc = subprocess.Popen(
            [os.fspath(PACKMAN), "serve", os.fspath(self.dir), "--listen", "127.0.0.1:0", "--access-log", "off"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=_env())
        first = self.proc.stdout.readline()
        assert " on http://" in first, first
        self.url = first.split(" on ", 1)[1].strip().rstrip("/")
        self.root = self.dir / "metadata" / "1.root.json"

    def signed(self, name: str) -> dict:
        return json.loads((self.dir / "metadata" / name).read_bytes())["signed"]

    def listed(self) -> dict[str, str]:
        """Every target the bins list, with its sha256, read from the published files."""
        snap_v = self.signed("timestamp.json")["meta"]["snapshot.json"]["version"]
        meta = self.signed(f"{snap_v}.snapshot.json")["meta"]
        out = {}
        for name, m in meta.items():
            if name.startswith("bins-"):
                for path, info in self.signed(f"{m['version']}.{name}")["targets"].items():
                    out[path] = info["hashes"]["sha256"]
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=TIMEOUT)


@pytest.fixture(scope="module", params=["prefixes", "succinct"])
def served(request, tmp_path_factory):
    style = request.param
    s = Served(tmp_path_factory.mktemp(style), style)
    targets = s.listed()
    # Wheels, the sdist, their metadata files and pages, and the plain files: spread over bins.
    assert len(targets) >= 15, targets
    snap_v = s.signed("timestamp.json")["meta"]["snapshot.json"]["version"]
    targets_v = s.signed(f"{snap_v}.snapshot.json")["meta"]["targets.json"]["version"]
    d = s.signed(f"{targets_v}.targets.json")["delegations"]
    assert ("roles" in d, "succinct_roles" in d) == (style == "prefixes", style == "succinct")
    yield style, s, targets
    s.close()


def check_saved(saved: dict[str, Path], targets: dict[str, str]) -> None:
    assert set(saved) == set(targets)
    for path, f in saved.items():
        assert hashlib.sha256(f.read_bytes()).hexdigest() == targets[path], path


def test_python_tuf_reads_both_shapes(served, tmp_path):
    style, s, targets = served
    md = tmp_path / "md"
    md.mkdir()
    u = Updater(os.fspath(md), f"{s.url}/metadata/", os.fspath(tmp_path / "dl"), f"{s.url}/targets/",
                bootstrap=s.root.read_bytes())
    u.refresh()
    saved = {}
    for i, path in enumerate(sorted(targets)):
        info = u.get_targetinfo(path)
        assert info is not None, f"{style}: {path} not found"
        saved[path] = Path(u.download_target(info, os.fspath(tmp_path / f"t{i}")))
    check_saved(saved, targets)


def test_packman_reads_both_shapes(served, tmp_path):
    style, s, targets = served
    saved = {}
    for i, path in enumerate(sorted(targets)):
        # One destination each: targets of different directories share file names (index.json).
        dest = tmp_path / f"t{i}"
        packman("download", "--root", s.root, "--metadata-url", f"{s.url}/metadata/",
                "--metadata-dir", tmp_path / "md", "--dest", dest, path)
        saved[path] = dest / path.rsplit("/", 1)[-1]
    check_saved(saved, targets)


def test_browse_pages_are_served_from_both_shapes(served):
    """``packman serve``'s browsable pages come from the signed pages, whatever the bin shape."""
    import urllib.request
    style, s, targets = served
    with urllib.request.urlopen(f"{s.url}/", timeout=TIMEOUT) as r:
        index = r.read().decode()
    assert "hello" in index and "foo-bar" in index, index
    with urllib.request.urlopen(f"{s.url}/project/hello/", timeout=TIMEOUT) as r:
        page = r.read().decode()
    assert "hello-1.0-py3-none-any.whl" in page and "hello-1.0.tar.gz" in page, page


def run_adapter(exe: Path, s: Served, out: Path, targets: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([os.fspath(exe), f"{s.url}/metadata/", f"{s.url}/targets/", os.fspath(s.root),
                           os.fspath(out), *targets], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("client", ["tough", "sigstore-tuf"])
def test_rust_clients_read_classic_bins_only(served, adapters, client, tmp_path):
    style, s, targets = served
    out = tmp_path / "out"
    p = run_adapter(adapters[client], s, out, sorted(targets))
    if style == "prefixes":
        assert p.returncode == 0, f"{client} on {style}:\n{p.stdout}\n{p.stderr}"
        check_saved({t: out / t for t in targets}, targets)
        return
    # TAP 15 succinct bins: neither client knows them.
    if client == "tough":
        assert p.returncode == 1 and "missing field `roles`" in p.stderr, p.stderr
    else:
        assert p.returncode == 2 and "not found" in p.stderr, p.stderr
    assert not out.exists() or not any(out.rglob("*.*")), "nothing saved"


def test_python_tuf_follows_a_switch_of_shape_and_back(tmp_path):
    """``packman repo bin-style`` is an ordinary update to ngclient: a client that followed the
    succinct repository refreshes across the switch to prefixes and back, downloading a file
    added after each switch (and the first one again), and trusts the new targets.json shape."""
    s = Served(tmp_path, "succinct")
    try:
        md = tmp_path / "md"
        md.mkdir()

        def fetch(path: str, bootstrap: bytes | None = None) -> bytes:
            u = Updater(os.fspath(md), f"{s.url}/metadata/", os.fspath(tmp_path / "dl"), f"{s.url}/targets/",
                        bootstrap=bootstrap)
            u.refresh()
            info = u.get_targetinfo(path)
            assert info is not None, path
            return Path(u.download_target(info, os.fspath(tmp_path / "dl" / path.replace("/", "_")))).read_bytes()

        first = "docs/notes-0.txt"
        assert fetch(first, s.root.read_bytes()) == b"release notes 0\n"
        for n, style in ((1, "prefixes"), (2, "succinct")):
            out = packman("repo", "bin-style", s.dir, style).stdout
            assert f"as {style}" in out, out
            f = tmp_path / f"after-{n}.txt"
            f.write_bytes(f"added after switch {n}\n".encode())
            packman("repo", "add", s.dir, "--prefix", "late/", f)
            assert fetch(f"late/after-{n}.txt") == f.read_bytes()
            assert fetch(first) == b"release notes 0\n"
            trusted = json.loads((md / "targets.json").read_bytes())["signed"]["delegations"]
            assert ("roles" in trusted) == (style == "prefixes"), trusted.keys()
    finally:
        s.close()
