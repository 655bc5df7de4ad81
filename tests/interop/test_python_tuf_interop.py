"""Interoperability between packman and python-tuf (the TUF reference implementation).

Forward direction: repositories are built and signed with python-tuf's Metadata API and
served over HTTP on 127.0.0.1; packman's clients (the ``packman-conformance`` CLI and the
user-facing ``packman download``) must refresh, find the right targets and download the
right bytes. python-tuf's own ngclient is run on the same repositories as an oracle.

Reverse direction: the repository written by ``packman demo`` (Rust code) is read with
python-tuf's ngclient.

Binaries are taken from $PACKMAN_BIN_DIR (default: <repo>/target/release); build them with
``cargo build --release -p packman -p packman-conformance``.

Run: ``.venv/bin/python -m pytest tests/interop -q``
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

from tufrepo import RepoBuilder, RepoServer  # noqa: E402
from tuf.api.exceptions import RepositoryError  # noqa: E402
from tuf.api.metadata import TargetFile  # noqa: E402
from tuf.ngclient import Updater  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
CONFORMANCE = BIN_DIR / "packman-conformance"
PACKMAN = BIN_DIR / "packman"
TIMEOUT = 60


@pytest.fixture(scope="session", autouse=True)
def _binaries_present():
    missing = [p for p in (CONFORMANCE, PACKMAN) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"missing {', '.join(map(str, missing))}: run "
            "`cargo build --release -p packman -p packman-conformance` or set PACKMAN_BIN_DIR",
            pytrace=False,
        )


def run(cmd: list, check: bool | None = True) -> subprocess.CompletedProcess:
    """Runs a client process; with check=True it must exit 0, with check=False it must
    exit 1 (a clean failure, not a crash)."""
    p = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT)
    if check is True:
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    elif check is False:
        assert p.returncode == 1, f"{cmd} exited {p.returncode}, expected 1\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


class ConformanceClient:
    """packman-conformance, driven exactly as the tuf-conformance suite drives a client."""

    def __init__(self, metadata_dir: Path, target_dir: Path, server: RepoServer):
        self.metadata_dir = metadata_dir
        self.target_dir = target_dir
        self.server = server
        target_dir.mkdir(parents=True, exist_ok=True)

    def _base(self) -> list:
        return [CONFORMANCE, "--metadata-dir", self.metadata_dir]

    def init(self, root: Path) -> None:
        run(self._base() + ["init", root])

    def refresh(self, check: bool | None = True) -> subprocess.CompletedProcess:
        return run(self._base() + ["--metadata-url", f"{self.server.url}/metadata/", "refresh"], check)

    def download(self, *targets: str, check: bool | None = True) -> subprocess.CompletedProcess:
        cmd = self._base() + ["--metadata-url", f"{self.server.url}/metadata/"]
        for t in targets:
            cmd += ["--target-name", t]
        cmd += ["--target-base-url", f"{self.server.url}/targets/", "--target-dir", self.target_dir, "download"]
        return run(cmd, check)

    def downloaded(self, target: str) -> bytes:
        return (self.target_dir / quote(target, safe="")).read_bytes()

    def trusted(self, role: str) -> dict:
        return json.loads((self.metadata_dir / f"{quote(role, safe='')}.json").read_bytes())


def packman_download(server: RepoServer, root: Path | None, metadata_dir: Path, dest: Path, *targets: str,
                     targets_url: bool = True, check: bool | None = True) -> subprocess.CompletedProcess:
    cmd: list = [PACKMAN, "download"]
    if root is not None:
        cmd += ["--root", root]
    cmd += ["--metadata-url", f"{server.url}/metadata/", "--metadata-dir", metadata_dir, "--dest", dest]
    if targets_url:
        cmd += ["--targets-url", f"{server.url}/targets/"]
    return run(cmd + list(targets), check)


def ngclient_fetch(server: RepoServer, root: Path, workdir: Path, target: str) -> bytes | None:
    """python-tuf's answer for ``target``: its bytes, or None when it is not found."""
    md = workdir / "ng-metadata"
    md.mkdir(parents=True, exist_ok=True)
    up = Updater(os.fspath(md), f"{server.url}/metadata/", os.fspath(workdir / "ng-targets"),
                 f"{server.url}/targets/", bootstrap=root.read_bytes())
    up.refresh()
    info = up.get_targetinfo(target)
    if info is None:
        return None
    return Path(up.download_target(info)).read_bytes()


def bin_requests(server: RepoServer) -> set[str]:
    return {m.group(1) for p in server.paths() if (m := re.fullmatch(r"/metadata/\d+\.(bins-[0-9a-f]+)\.json", p))}


# ---- top-level roles signed with each key type -------------------------------------------

KEY_TYPE_TARGETS = {
    "hello.txt": b"hello, world\n",
    "pkgs/demo/demo-1.0.tar.gz": b"\x1f\x8b" + bytes(range(256)) * 8,
}


@pytest.fixture(scope="module", params=["ed25519", "ecdsa", "rsa", "rsa-pkcs1v15"])
def keytype_repo(request, tmp_path_factory):
    repo = RepoBuilder(tmp_path_factory.mktemp(f"repo-{request.param}"), key_type=request.param)
    for path, data in KEY_TYPE_TARGETS.items():
        repo.add_target(path, data)
    repo.publish()
    with RepoServer(repo.path) as server:
        yield repo, server


def test_conformance_client_key_types(keytype_repo, tmp_path):
    repo, server = keytype_repo
    c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
    c.init(repo.root_path)
    c.refresh()
    for role in ("root", "timestamp", "snapshot", "targets"):
        assert c.trusted(role)["signed"]["_type"] == role
    c.download(*KEY_TYPE_TARGETS)
    for path, data in KEY_TYPE_TARGETS.items():
        assert c.downloaded(path) == data
    # A second download is served from the cache (the spec's "should"): no target fetch.
    server.clear()
    c.download(*KEY_TYPE_TARGETS)
    assert not [p for p in server.paths() if p.startswith("/targets/")]


def test_packman_download_key_types(keytype_repo, tmp_path):
    repo, server = keytype_repo
    p = packman_download(server, repo.root_path, tmp_path / "md", tmp_path / "dest", *KEY_TYPE_TARGETS)
    for path, data in KEY_TYPE_TARGETS.items():
        assert (tmp_path / "dest" / path.rsplit("/", 1)[-1]).read_bytes() == data
        assert path in p.stdout
    # Trust persisted: no --root needed the second time, and the targets URL is derived.
    packman_download(server, None, tmp_path / "md", tmp_path / "dest2", "hello.txt", targets_url=False)
    assert (tmp_path / "dest2" / "hello.txt").read_bytes() == KEY_TYPE_TARGETS["hello.txt"]


def test_mixed_key_types_and_thresholds(tmp_path):
    repo = RepoBuilder(tmp_path / "repo")
    repo.set_role_keys("root", ["ed25519", "ecdsa"], threshold=2)
    repo.set_role_keys("targets", ["ecdsa", "ed25519", "ed25519"], threshold=3)
    repo.set_role_keys("snapshot", ["ecdsa", "ecdsa"], threshold=2)
    repo.set_role_keys("timestamp", ["ed25519", "ecdsa"], threshold=1)
    repo.add_target("a/b/c.bin", b"abc" * 1000)
    repo.publish()
    with RepoServer(repo.path) as server:
        c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
        c.init(repo.root_path)
        c.download("a/b/c.bin")
        assert c.downloaded("a/b/c.bin") == b"abc" * 1000
        assert ngclient_fetch(server, repo.root_path, tmp_path, "a/b/c.bin") == b"abc" * 1000


# ---- names and metadata shapes python-tuf produces ------------------------------------------

# Target paths and role names that need percent-encoding in URLs and file names.
SPECIAL_TARGETS = ["dir/with space.txt", "unicodé/ü.txt", "plus+sign.txt", "semi;colon.txt",
                   "sp/in role with space.txt", "un/in unicode role.txt"]
# python-tuf 7.0 does not percent-encode these in target URLs (it requests "/x.q?mark.txt"
# and gets 404 from a static server), so only packman is checked for them.
PACKMAN_ONLY_TARGETS = ["pct%41.txt", "q?mark.txt", "hash#x.txt"]


@pytest.fixture(scope="module")
def special_names_repo(tmp_path_factory):
    repo = RepoBuilder(tmp_path_factory.mktemp("names-repo"))
    repo.delegate("targets", "role with space", ["sp/*"])
    repo.delegate("targets", "rôle/ünï", ["un/*"])
    for t in SPECIAL_TARGETS + PACKMAN_ONLY_TARGETS:
        role = {"sp": "role with space", "un": "rôle/ünï"}.get(t.split("/")[0])
        repo.add_target(t, f"bytes of {t}".encode(), role=role)
    repo.publish()
    with RepoServer(repo.path) as server:
        yield repo, server


@pytest.mark.parametrize("target", SPECIAL_TARGETS + PACKMAN_ONLY_TARGETS)
def test_special_characters_in_names(special_names_repo, tmp_path, target):
    repo, server = special_names_repo
    if target in SPECIAL_TARGETS:
        assert ngclient_fetch(server, repo.root_path, tmp_path, target) == repo.target_data[target]
    c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
    c.init(repo.root_path)
    c.download(target)
    assert c.downloaded(target) == repo.target_data[target]
    if target.startswith("un/"):
        # Stored under the quoted role name, as python-tuf names it.
        assert target in c.trusted("rôle/ünï")["signed"]["targets"]


def _custom_fields(repo: RepoBuilder) -> None:
    tf = repo.roles["targets"].signed.targets["f.txt"]
    tf.unrecognized_fields["custom"] = {
        "ünï": "☃ \n\t\u0001 \"q\" \\ /",
        "n": [1, -2, 0, 9007199254740993, {"z": None, "a": True, "": False}],
        "e": {}, "l": [],
    }
    repo.roles["targets"].signed.unrecognized_fields["x-extra"] = {"b": 1, "a": "\u007f\u0080\U0001F600"}
    repo.root.signed.unrecognized_fields["x-root-extra"] = ["a", {"k": "v"}]
    repo.root.signed.roles["root"].unrecognized_fields["x-role"] = 1
    for k in repo.root.signed.keys.values():
        k.unrecognized_fields["x-key"] = "y"


def _sha256_and_sha512(repo: RepoBuilder) -> None:
    repo.roles["targets"].signed.targets["f.txt"] = TargetFile.from_data("f.txt", b"data", ["sha256", "sha512"])


def _sha512_only(repo: RepoBuilder) -> None:
    repo.roles["targets"].signed.targets["f.txt"] = TargetFile.from_data("f.txt", b"data", ["sha512"])
    (repo.targets_dir / f"{hashlib.sha512(b'data').hexdigest()}.f.txt").write_bytes(b"data")


def _no_consistent_snapshot(repo: RepoBuilder) -> None:
    repo.root.signed.consistent_snapshot = False
    (repo.targets_dir / "f.txt").write_bytes(b"data")
    write = repo._write

    def write_both(name: str, data: bytes) -> None:
        write(name, data)
        m = re.fullmatch(r"\d+\.(.+\.json)", name)
        if m and m.group(1) != "root.json":
            write(m.group(1), data)

    repo._write = write_both


def _spec_version(repo: RepoBuilder) -> None:
    for md in (repo.root, repo.roles["targets"]):
        md.signed.spec_version = "1.0.31"


METADATA_VARIANTS = {
    "unrecognized-and-custom-fields": ({}, _custom_fields),
    "snapshot-lists-length-and-hashes": ({"snapshot_meta_hashes": True}, None),
    "timestamp-without-hashes": ({"timestamp_meta_hashes": False}, None),
    "target-sha256-and-sha512": ({}, _sha256_and_sha512),
    "target-sha512-only": ({}, _sha512_only),
    "no-consistent-snapshot": ({}, _no_consistent_snapshot),
    "spec-version-1.0.31": ({}, _spec_version),
}


@pytest.mark.parametrize("variant", list(METADATA_VARIANTS))
def test_metadata_variants(tmp_path, variant):
    kwargs, mutate = METADATA_VARIANTS[variant]
    repo = RepoBuilder(tmp_path / "repo", **kwargs)
    repo.add_target("f.txt", b"data")
    if mutate:
        mutate(repo)
    repo.publish()
    with RepoServer(repo.path) as server:
        assert ngclient_fetch(server, repo.root_path, tmp_path, "f.txt") == b"data"
        c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
        c.init(repo.root_path)
        c.download("f.txt")
        assert c.downloaded("f.txt") == b"data"


def test_repository_update_between_refreshes(tmp_path):
    """New versions of a bin, targets, snapshot and timestamp are picked up; unchanged
    bins are not fetched again."""
    repo = RepoBuilder(tmp_path / "repo", snapshot_meta_hashes=True)
    repo.enable_bins(8)
    repo.add_target("pkg/a-1.0.tar.gz", b"a 1.0")
    repo.add_target("pkg/b-1.0.tar.gz", b"b 1.0")
    repo.publish()
    with RepoServer(repo.path) as server:
        c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
        c.init(repo.root_path)
        c.download("pkg/a-1.0.tar.gz", "pkg/b-1.0.tar.gz")
        new = next(f"pkg/a-{i}.tar.gz" for i in range(10**6) if repo.bin_for(f"pkg/a-{i}.tar.gz") == repo.bin_for("pkg/a-1.0.tar.gz") and i != 1)
        repo.add_target(new, b"a new")
        repo.publish()
        server.clear()
        c.download(new, "pkg/b-1.0.tar.gz")
        assert c.downloaded(new) == b"a new"
        assert bin_requests(server) == {repo.bin_for(new)}
        assert c.trusted("snapshot")["signed"]["version"] == 2
        assert c.trusted(repo.bin_for(new))["signed"]["version"] == 2


# ---- delegations with paths ---------------------------------------------------------------

# targets ── A  (paths a/*, a/*/*)
#            │  └─ A2 (paths a/deep/*)          nested delegation
#            ├─ T  (paths t/*, terminating)
#            └─ U  (paths t/*, u/*)             after T: never consulted for t/*
DELEGATION_CASES = {
    # target: (role that lists it, found?)
    "top.txt": ("targets", True),
    "a/one.txt": ("A", True),
    "a/deep/two.txt": ("A2", True),
    "t/three.txt": ("T", True),
    "u/four.txt": ("U", True),
    # Listed by A2, but A2's paths (a/deep/*) do not match: not trusted.
    "a/other/five.txt": ("A2", False),
    # Listed by A, but A's paths (a/*, a/*/*) do not match: not trusted.
    "b/stray.txt": ("A", False),
    # Listed by U, but T is terminating for t/* and does not list it: search stops at T.
    "t/hidden.txt": ("U", False),
    # Listed by A2 with a path that '*' would match only if it crossed '/'.
    "a/deep/x/six.txt": ("A2", False),
}


@pytest.fixture(scope="module")
def delegation_repo(tmp_path_factory):
    repo = RepoBuilder(tmp_path_factory.mktemp("deleg-repo"))
    repo.delegate("targets", "A", ["a/*", "a/*/*"])
    repo.delegate("A", "A2", ["a/deep/*"], key_type="ecdsa")
    repo.delegate("targets", "T", ["t/*"], terminating=True)
    repo.delegate("targets", "U", ["t/*", "u/*"])
    for target, (role, _) in DELEGATION_CASES.items():
        repo.add_target(target, f"content of {target} from {role}\n".encode(), role=role)
    repo.publish()
    with RepoServer(repo.path) as server:
        yield repo, server


@pytest.mark.parametrize("target", list(DELEGATION_CASES))
def test_delegated_paths(delegation_repo, tmp_path, target):
    repo, server = delegation_repo
    _, found = DELEGATION_CASES[target]
    oracle = ngclient_fetch(server, repo.root_path, tmp_path, target)
    assert (oracle is not None) == found, "python-tuf disagrees with the test's expectation"

    c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
    c.init(repo.root_path)
    c.refresh()
    server.clear()
    p = c.download(target, check=found)
    if found:
        assert c.downloaded(target) == repo.target_data[target]
    else:
        assert not (c.target_dir / quote(target, safe="")).exists()
        assert "not found" in p.stderr.lower() or target in p.stderr, p.stderr
        # An untrusted path never reaches the target store.
        assert not [x for x in server.paths() if x.startswith("/targets/")]


def test_delegations_packman_download(delegation_repo, tmp_path):
    repo, server = delegation_repo
    packman_download(server, repo.root_path, tmp_path / "md", tmp_path / "dest", "a/deep/two.txt", "u/four.txt")
    assert (tmp_path / "dest" / "two.txt").read_bytes() == repo.target_data["a/deep/two.txt"]
    assert (tmp_path / "dest" / "four.txt").read_bytes() == repo.target_data["u/four.txt"]
    p = packman_download(server, None, tmp_path / "md", tmp_path / "dest", "t/hidden.txt", check=None)
    assert p.returncode != 0 and "t/hidden.txt" in p.stderr, p
    assert not (tmp_path / "dest" / "hidden.txt").exists()


def test_delegated_role_search_order(delegation_repo, tmp_path):
    """Only the roles on the path to the target are fetched (A then A2), never T or U."""
    repo, server = delegation_repo
    c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
    c.init(repo.root_path)
    server.clear()
    c.download("a/deep/two.txt")
    fetched = [p for p in server.paths() if re.fullmatch(r"/metadata/\d+\.[A-Z]\w*\.json", p)]
    assert fetched == ["/metadata/1.A.json", "/metadata/1.A2.json"]


def test_hash_prefix_delegation_threshold_and_sizes(tmp_path):
    """path_hash_prefixes delegations, a delegated role needing 2 signatures of different
    key types, an empty target and an 8 MiB one."""
    repo = RepoBuilder(tmp_path / "repo")
    prefix = hashlib.sha256(b"hp/file.txt").hexdigest()[:2]
    repo.delegate("targets", "H", path_hash_prefixes=[prefix, "zz"])
    repo.delegate("targets", "M", ["m/*"], key_types=["ecdsa", "ed25519", "rsa"], threshold=2)
    repo.add_target("hp/file.txt", b"hash-prefixed", role="H")
    other = next(f"hp/other{i}.txt" for i in range(1000)
                 if hashlib.sha256(f"hp/other{i}.txt".encode()).hexdigest()[:2] not in (prefix, "zz"))
    repo.add_target(other, b"outside the prefixes", role="H")
    repo.add_target("m/x.txt", b"two of three", role="M")
    repo.add_target("empty.bin", b"")
    repo.add_target("big.bin", hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32))
    repo.signers["M"].pop()  # M is signed by ecdsa + ed25519 only: 2 of 3
    repo.publish()
    cases = {"hp/file.txt": True, other: False, "m/x.txt": True, "empty.bin": True, "big.bin": True}
    with RepoServer(repo.path) as server:
        for i, (target, found) in enumerate(cases.items()):
            oracle = ngclient_fetch(server, repo.root_path, tmp_path / f"ng{i}", target)
            assert (oracle is not None) == found, target
            c = ConformanceClient(tmp_path / f"md{i}", tmp_path / f"dl{i}", server)
            c.init(repo.root_path)
            c.download(target, check=found)
            if found:
                assert c.downloaded(target) == repo.target_data[target]


# ---- TAP 15 succinct hashed bins ------------------------------------------------------------


@pytest.mark.parametrize("bit_length", [8, 14])
def test_succinct_hashed_bins_lazy(tmp_path, bit_length):
    repo = RepoBuilder(tmp_path / "repo")
    repo.enable_bins(bit_length, name_prefix="bins")
    targets = {f"packages/p{i}/p{i}-1.0.tar.gz": f"package {i}\n".encode() * (i + 1) for i in range(40)}
    for path, data in targets.items():
        repo.add_target(path, data)
    repo.publish()
    n_bins = 2 ** bit_length
    digits = (bit_length + 3) // 4
    snapshot = json.loads((repo.metadata_dir / "1.snapshot.json").read_bytes())
    bin_entries = [k for k in snapshot["signed"]["meta"] if k.startswith("bins-")]
    assert len(bin_entries) == n_bins
    assert f"bins-{n_bins - 1:0{digits}x}.json" in bin_entries

    # Two targets in different bins, one of them in the upper half of the bin space.
    by_bin = {}
    for path in targets:
        by_bin.setdefault(repo.bin_for(path), path)
    high = max(by_bin, key=lambda b: int(b.split("-")[1], 16))
    low = min(by_bin, key=lambda b: int(b.split("-")[1], 16))
    wanted = [by_bin[high], by_bin[low]]
    assert int(high.split("-")[1], 16) >= n_bins // 2

    with RepoServer(repo.path) as server:
        c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
        c.init(repo.root_path)
        c.refresh()
        assert not bin_requests(server), "refresh alone must not fetch any bin"
        server.clear()
        c.download(*wanted)
        for path in wanted:
            assert c.downloaded(path) == targets[path]
        assert bin_requests(server) == {high, low}
        stored = {f for f in os.listdir(c.metadata_dir) if f.endswith(".json")}
        assert stored == {"root.json", "timestamp.json", "snapshot.json", "targets.json", f"{high}.json", f"{low}.json"}

        # A target in no bin's list: only its own bin is consulted, and it is not found.
        missing = "packages/nope/nope-9.9.tar.gz"
        server.clear()
        c.download(missing, check=False)
        assert bin_requests(server) <= {repo.bin_for(missing)}

        # The user-facing client loads lazily too.
        server.clear()
        packman_download(server, repo.root_path, tmp_path / "md2", tmp_path / "dest", wanted[0])
        assert (tmp_path / "dest" / wanted[0].rsplit("/", 1)[-1]).read_bytes() == targets[wanted[0]]
        assert bin_requests(server) == {high}

        # python-tuf agrees on the bin and the bytes.
        server.clear()
        assert ngclient_fetch(server, repo.root_path, tmp_path, wanted[0]) == targets[wanted[0]]
        assert bin_requests(server) == {high}


# ---- root rotation --------------------------------------------------------------------------


def build_rotation_repo(path: Path) -> RepoBuilder:
    repo = RepoBuilder(path)
    repo.add_target("file.txt", b"v1 content\n")
    repo.publish()  # root v1
    repo.rotate_key("root", "ecdsa")  # root v2: new root key, signed by old and new
    repo.publish()
    repo.rotate_key("root", "ed25519")  # root v3: root key changes again ...
    repo.rotate_key("timestamp", "ecdsa")  # ... and so does the timestamp key
    repo.add_target("file2.txt", b"after rotation\n")
    repo.publish()
    return repo


def test_root_rotation(tmp_path):
    repo = build_rotation_repo(tmp_path / "repo")
    assert sorted(p.name for p in repo.metadata_dir.glob("*.root.json")) == ["1.root.json", "2.root.json", "3.root.json"]
    with RepoServer(repo.path) as server:
        c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
        c.init(repo.root_path)
        c.refresh()
        root = c.trusted("root")
        assert root["signed"]["version"] == 3
        assert (c.metadata_dir / "root.json").read_bytes() == (repo.metadata_dir / "3.root.json").read_bytes()
        assert [p for p in server.paths() if p.endswith("root.json")] == [
            "/metadata/2.root.json", "/metadata/3.root.json", "/metadata/4.root.json"]
        c.download("file2.txt")
        assert c.downloaded("file2.txt") == b"after rotation\n"

        p = packman_download(server, repo.root_path, tmp_path / "md2", tmp_path / "dest", "file.txt")
        assert json.loads((tmp_path / "md2" / "root.json").read_bytes())["signed"]["version"] == 3
        assert (tmp_path / "dest" / "file.txt").read_bytes() == b"v1 content\n"
        assert "root v3" in p.stdout

        # python-tuf ends at the same place.
        ngclient_fetch(server, repo.root_path, tmp_path, "file.txt")
        assert json.loads((tmp_path / "ng-metadata" / "root.json").read_bytes())["signed"]["version"] == 3


def test_root_rotation_incremental_and_unsigned_by_old_key(tmp_path):
    """A client already at v1 follows v2 and v3 later; a v4 that the v3 root key did not
    sign is refused and the client keeps v3."""
    repo = RepoBuilder(tmp_path / "repo")
    repo.add_target("file.txt", b"x")
    repo.publish()
    with RepoServer(repo.path) as server:
        c = ConformanceClient(tmp_path / "md", tmp_path / "dl", server)
        c.init(repo.root_path)
        c.refresh()
        assert c.trusted("root")["signed"]["version"] == 1
        repo.rotate_key("root")
        repo.publish()
        repo.rotate_key("root")
        repo.publish()
        c.refresh()
        assert c.trusted("root")["signed"]["version"] == 3

        # v4 signed by its new key only.
        repo.rotate_key("root")
        repo._previous_root_signers = []
        repo.publish()
        p = c.refresh(check=False)
        assert "root" in p.stderr.lower(), p.stderr
        assert c.trusted("root")["signed"]["version"] == 3
        with pytest.raises(RepositoryError):
            ngclient_fetch(server, repo.root_path, tmp_path, "file.txt")


# ---- reverse direction: python-tuf reads a repository written by packman ---------------------


def test_ngclient_reads_packman_demo_repository(tmp_path):
    demo = tmp_path / "demo"
    run([PACKMAN, "demo", "--dir", demo])
    repo_dir = demo if (demo / "metadata").is_dir() else demo / "repository"
    meta_dir = repo_dir / "metadata"
    assert (meta_dir / "1.root.json").is_file(), sorted(os.listdir(demo))

    # Discover targets from the newest version of every targets-type role.
    newest: dict[str, tuple[int, Path]] = {}
    for f in meta_dir.glob("*.json"):
        m = re.fullmatch(r"(\d+)\.(.+)\.json", f.name)
        if m and m.group(2) not in ("root", "snapshot", "timestamp"):
            v = int(m.group(1))
            if v > newest.get(m.group(2), (0, f))[0]:
                newest[m.group(2)] = (v, f)
    expected: dict[str, str] = {}
    for _, f in newest.values():
        signed = json.loads(f.read_bytes())["signed"]
        assert signed["_type"] == "targets"
        for path, info in signed["targets"].items():
            expected[path] = info["hashes"]["sha256"]
    assert expected, "the demo repository lists no targets"

    with RepoServer(repo_dir) as server:
        md = tmp_path / "ng-md"
        md.mkdir()
        up = Updater(os.fspath(md), f"{server.url}/metadata/", os.fspath(tmp_path / "ng-dl"),
                     f"{server.url}/targets/", bootstrap=(meta_dir / "1.root.json").read_bytes())
        up.refresh()
        trusted_root = json.loads((md / "root.json").read_bytes())["signed"]
        assert trusted_root["consistent_snapshot"] is True
        for path, sha in sorted(expected.items()):
            info = up.get_targetinfo(path)
            assert info is not None, f"python-tuf does not find {path}"
            assert info.hashes["sha256"] == sha
            data = Path(up.download_target(info)).read_bytes()
            d, _, name = path.rpartition("/")
            assert data == (repo_dir / "targets" / d / f"{sha}.{name}").read_bytes()
        assert up.get_targetinfo("packages/not/there-1.0.tar.gz") is None
