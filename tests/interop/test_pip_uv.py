"""pip and uv install real wheels from ``packman serve``, and refuse a tampered one.

requests and its four dependencies, real wheels from PyPI pinned with their hashes in
``wheels.txt``, are published with ``packman repo init`` / ``packman repo add`` and served by
``packman serve`` on 127.0.0.1 (PEP 691: pip and uv get the JSON simple pages). Then:

* pip and uv resolve and install all five from ``--index-url http://127.0.0.1:PORT/simple/``
  alone, with no cache, and the access log shows every simple page, PEP 658 ``.metadata`` file
  and wheel coming from packman serve with status 200;
* the same with ``--require-hashes`` and a requirements file of exact pins and sha256 digests;
* a wheel of a dependency (idna) changed in place on disk (one byte flipped, still a valid zip)
  in a separate copy of the repository: packman serve sends the new bytes, and pip and uv,
  with and without ``--require-hashes``, fail on the sha256 mismatch and install nothing;
* a non-normalised project URL (``/simple/Requests/``) is redirected to the normalised one,
  and pip and uv follow it (as a ``--find-links`` page: as index clients they normalise
  project names themselves before asking).

The wheels are downloaded once, hash-checked, into .venv/wheelhouse/ (git-ignored) and reused.
The wheel of charset-normalizer is built for CPython 3.11 on x86_64 Linux, so the module is
skipped elsewhere. Binaries are taken from $PACKMAN_BIN_DIR (default: <repo>/target/release);
uv is the one installed next to the test interpreter (tests/interop/requirements.txt).

Run: ``.venv/bin/python -m pytest tests/interop/test_pip_uv.py -q``
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from skips import skip  # noqa: E402 (tests/interop is on sys.path: pytest's rootdir-less prepend)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
TIMEOUT = 60
WHEELS_TXT = HERE / "wheels.txt"
WHEELHOUSE = REPO_ROOT / ".venv" / "wheelhouse"  # .venv is git-ignored

if not (sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11) and sys.platform == "linux"
        and platform.machine() == "x86_64"):
    # Under CI (CPython 3.11 on x86_64 Linux) another Python is a failure, not a skip.
    skip(f"wheels.txt pins a charset-normalizer wheel for CPython 3.11 on x86_64 Linux, not "
         f"{sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]} on {sys.platform} {platform.machine()}",
         module=True)


def _pins() -> dict[str, tuple[str, str]]:
    """``wheels.txt`` as {project: (version, sha256)}."""
    text = re.sub(r"\\\n", " ", WHEELS_TXT.read_text())
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", line)
        assert m, f"{WHEELS_TXT}: expected `name==version --hash=sha256:...`, got {line!r}"
        pins[normalize(m[1])] = (m[2], m[3])
    return pins


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


PINS = _pins()
MODULES = {"requests": "requests", "certifi": "certifi", "charset-normalizer": "charset_normalizer",
           "idna": "idna", "urllib3": "urllib3"}
assert set(MODULES) == set(PINS), (MODULES, PINS)
TAMPERED = "idna"  # a dependency, not the package asked for


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKMAN_", "PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no user or site pip configuration (extra indexes, proxies)
    return env


def run(cmd: list, timeout: float = TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    cmd = [os.fspath(c) for c in cmd]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          env=kwargs.pop("env", None) or _env(), **kwargs)


def show(p: subprocess.CompletedProcess) -> str:
    return f"{p.args} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _uv() -> list[str]:
    exe = Path(sys.executable).parent / "uv"
    if os.access(exe, os.X_OK):
        return [os.fspath(exe)]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    pytest.fail(f"uv is not installed for {sys.executable}: pip install -r tests/interop/requirements.txt",
                pytrace=False)


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _packman_present():
    if not os.access(PACKMAN, os.X_OK):
        pytest.fail(f"missing {PACKMAN}: run `cargo build --release -p packman` or set PACKMAN_BIN_DIR",
                    pytrace=False)


@pytest.fixture(scope="module")
def wheels() -> dict[str, Path]:
    """{project: wheel file} for every pin of wheels.txt, downloaded from PyPI on first use."""

    def present() -> dict[str, Path]:
        by_hash = {sha256(w): w for w in WHEELHOUSE.glob("*.whl")} if WHEELHOUSE.is_dir() else {}
        return {project: by_hash[digest] for project, (_, digest) in PINS.items() if digest in by_hash}

    found = present()
    if len(found) < len(PINS):
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        p = run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                 "--no-deps", "--only-binary=:all:", "--require-hashes", "-r", WHEELS_TXT, "-d", WHEELHOUSE],
                timeout=300)
        if p.returncode != 0:
            pytest.fail(f"could not download the wheels of {WHEELS_TXT} from PyPI:\n{show(p)}", pytrace=False)
        found = present()
    assert set(found) == set(PINS), (found, os.listdir(WHEELHOUSE))
    for project, wheel in found.items():
        assert normalize(wheel.name.split("-")[0]) == project and wheel.name.split("-")[1] == PINS[project][0]
    return found


def repo(*args) -> subprocess.CompletedProcess:
    """``packman repo ARGS``, with no terminal and no passphrase (keys stored in plain text)."""
    p = run([PACKMAN, "repo", *args])
    assert p.returncode == 0, show(p)
    return p


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory, wheels) -> Path:
    d = tmp_path_factory.mktemp("pip-uv") / "repo"
    repo("init", d)
    repo("add", d, *wheels.values())
    for project, wheel in wheels.items():
        assert (d / "targets" / "packages" / project / wheel.name).read_bytes() == wheel.read_bytes()
        assert (d / "targets" / "simple" / project / "index.json").is_file()
    return d


class Served:
    """``packman serve DIR`` on a free port of 127.0.0.1, its access log in a file."""

    def __init__(self, directory: Path, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.log_path = workdir / "access.log"
        self.stderr_path = workdir / "serve.stderr"
        cmd = [os.fspath(PACKMAN), "serve", os.fspath(directory), "--listen", "127.0.0.1:0",
               "--access-log", os.fspath(self.log_path)]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         env=_env())
        try:
            line = self._first_line(deadline=time.monotonic() + 15)
            m = re.fullmatch(r"serving (.+) on (http://127\.0\.0\.1:\d+/)", line)
            assert m, f"unexpected first line from packman serve: {line!r}"
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.url = m[2]
        self.index_url = self.url + "simple/"

    def _first_line(self, deadline: float) -> str:
        fd, data = self.proc.stdout.fileno(), b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            assert left > 0, f"packman serve printed no address line in time; stdout so far: {data!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, (f"packman serve exited ({self.proc.wait()}) before printing its address:\n"
                               f"{self.stderr_path.read_text()}")
                data += chunk
        return data.split(b"\n", 1)[0].decode()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail("packman serve did not stop within 20 s of SIGTERM", pytrace=False)
        assert self.proc.returncode == 0, (f"packman serve exited {self.proc.returncode} on SIGTERM:\n"
                                           f"{self.stderr_path.read_text()}")

    def mark(self) -> int:
        """A position in the access log: entries() after it are the requests made since. The log
        is written by a thread of its own, so wait until it has stopped growing: a request that
        just finished (a fixture's, the previous test's) must not be counted as a later one."""
        size = lambda: self.log_path.stat().st_size if self.log_path.exists() else 0  # noqa: E731
        last = size()
        while True:
            time.sleep(0.1)
            now = size()
            if now == last:
                return now
            last = now

    def entries(self, since: int, paths=(), timeout: float = 10.0) -> list[dict]:
        """Access log entries written after `since`, waiting (the log is written by a thread of its
        own) until each of `paths` has been logged or `timeout` has passed."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.log_path.read_bytes()[since:] if self.log_path.exists() else b""
            out = [json.loads(line) for line in data.split(b"\n")[:-1]]  # complete lines only
            if set(paths) <= {e["path"] for e in out} or time.monotonic() > deadline:
                return out
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(repo_dir, tmp_path_factory):
    s = Served(repo_dir, tmp_path_factory.mktemp("serve"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tampered(repo_dir, wheels, tmp_path_factory):
    """A copy of the repository served on its own, whose plain copy of the idna wheel has one
    byte flipped in place after packman serve has served (and cached) the good one."""
    d = tmp_path_factory.mktemp("tampered") / "repo"
    shutil.copytree(repo_dir, d)
    wheel = wheels[TAMPERED]
    path = d / "targets" / "packages" / TAMPERED / wheel.name
    s = Served(d, tmp_path_factory.mktemp("serve-tampered"))
    try:
        url = f"{s.url}packages/{TAMPERED}/{wheel.name}"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert hashlib.sha256(r.read()).hexdigest() == PINS[TAMPERED][1]
        # Byte 10 is the modification time of the first member's local header: the wheel stays a
        # valid zip that installs as it is, so only checking its sha256 can catch the change.
        with open(path, "r+b") as f:
            f.seek(10)
            byte = f.read(1)
            f.seek(10)
            f.write(bytes([byte[0] ^ 0x01]))
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
        bad = sha256(path)
        assert bad != PINS[TAMPERED][1]
        with urllib.request.urlopen(url, timeout=10) as r:
            assert hashlib.sha256(r.read()).hexdigest() == bad, "packman serve still sends the old bytes"
        yield s
    finally:
        s.stop()


# ---- installers ---------------------------------------------------------------------------

def pip_install(target: Path, *args) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                "--no-cache-dir", "--timeout", "10", "--only-binary=:all:", "--target", target, *args])


def uv_install(target: Path, *args) -> subprocess.CompletedProcess:
    return run([*_uv(), "pip", "install", "--no-config", "--no-cache", "--only-binary", ":all:",
                "--python", sys.executable, "--target", target, *args])


INSTALLERS = {"pip": (pip_install, "pip/"), "uv": (uv_install, "uv/")}


def hashed_requirements(directory: Path, wheels: dict[str, Path]) -> Path:
    """Exact pins with the sha256 of each wheel file, for --require-hashes."""
    path = directory / "requirements.txt"
    path.write_text("".join(f"{project}=={PINS[project][0]} --hash=sha256:{sha256(wheel)}\n"
                            for project, wheel in sorted(wheels.items())))
    return path


def assert_installed(target: Path) -> None:
    """requests and its dependencies import from `target` (site-packages left out: the test venv
    has urllib3), at their pinned versions."""
    code = ("import importlib, importlib.metadata as md, json, sys\n"
            "mods = json.loads(sys.argv[1])\n"
            "print(json.dumps({p: [md.version(p), importlib.import_module(m).__file__] for p, m in mods.items()}))")
    env = _env()
    env["PYTHONPATH"] = os.fspath(target)
    p = run([sys.executable, "-S", "-c", code, json.dumps(MODULES)], env=env, cwd=target)
    assert p.returncode == 0, show(p)
    got = json.loads(p.stdout)
    for project in PINS:
        version, file = got[project]
        assert version == PINS[project][0], (project, got)
        assert Path(file).resolve().is_relative_to(target.resolve()), (project, got)


def assert_nothing_installed(target: Path) -> None:
    left = sorted(os.listdir(target)) if target.exists() else []
    assert not [n for n in left if n in MODULES.values() or n.endswith(".dist-info")], left


def assert_fetched(served: Served, since: int, wheels: dict[str, Path], agent: str, metadata: bool = True) -> None:
    """Every simple page, core metadata file (PEP 658; if `metadata`, else they may be skipped) and
    wheel was fetched from `served` by `agent` with status 200, each wheel once and whole, and
    nothing else was asked for."""
    pages = {f"/simple/{project}/" for project in wheels}
    files = {f"/packages/{project}/{wheel.name}": wheel for project, wheel in wheels.items()}
    cores = {f"{path}.metadata" for path in files}
    wanted = pages | set(files) | (cores if metadata else set())
    entries = served.entries(since, wanted)
    paths = [e["path"] for e in entries]
    assert wanted <= set(paths), (sorted(wanted - set(paths)), paths)
    assert set(paths) <= pages | set(files) | cores, sorted(set(paths) - pages - set(files) - cores)
    for path, wheel in files.items():
        [got] = [e for e in entries if e["path"] == path]  # once
        assert got["bytes"] == wheel.stat().st_size and got["range"] is None, got
    for e in entries:
        assert e["method"] == "GET" and e["status"] == 200 and (e["ua"] or "").startswith(agent), e


# ---- tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("tool", INSTALLERS)
def test_installs_requests_and_its_dependencies_from_packman_serve(tool, served, wheels, tmp_path):
    install, agent = INSTALLERS[tool]
    since = served.mark()
    target = tmp_path / "target"
    p = install(target, "--index-url", served.index_url, "requests")
    assert p.returncode == 0, show(p)
    assert_installed(target)
    assert_fetched(served, since, wheels, agent)


@pytest.mark.parametrize("tool", INSTALLERS)
def test_installs_with_require_hashes(tool, served, wheels, tmp_path):
    install, agent = INSTALLERS[tool]
    req = hashed_requirements(tmp_path, wheels)
    since = served.mark()
    target = tmp_path / "target"
    p = install(target, "--index-url", served.index_url, "--require-hashes", "-r", req)
    assert p.returncode == 0, show(p)
    assert_installed(target)
    # pip does not fetch core metadata alone when it has to check hashes: it takes the wheels.
    assert_fetched(served, since, wheels, agent, metadata=tool != "pip")


@pytest.mark.parametrize("require_hashes", [False, True], ids=["index-hashes", "require-hashes"])
@pytest.mark.parametrize("tool", INSTALLERS)
def test_a_wheel_changed_on_disk_is_refused(tool, require_hashes, tampered, wheels, tmp_path):
    install, agent = INSTALLERS[tool]
    args = ["--require-hashes", "-r", hashed_requirements(tmp_path, wheels)] if require_hashes else ["requests"]
    since = tampered.mark()
    target = tmp_path / "target"
    p = install(target, "--index-url", tampered.index_url, *args)
    assert p.returncode != 0, show(p)
    assert_nothing_installed(target)
    out = (p.stdout + p.stderr).lower()
    # pip: "THESE PACKAGES DO NOT MATCH THE HASHES ..."; uv: "Hash mismatch for `idna==3.20`";
    # both then give the expected digest and the one computed.
    bad = sha256(tampered.directory / "targets" / "packages" / TAMPERED / wheels[TAMPERED].name)
    assert "hash" in out and PINS[TAMPERED][1] in out and bad in out, show(p)
    assert ("do not match the hashes" if tool == "pip" else f"hash mismatch for `{TAMPERED}==") in out, show(p)
    # packman serve did send the changed file: the client refused it.
    path = f"/packages/{TAMPERED}/{wheels[TAMPERED].name}"
    got = [e for e in tampered.entries(since, [path]) if e["path"] == path]
    assert got and all(e["status"] == 200 and (e["ua"] or "").startswith(agent) for e in got), got


@pytest.mark.parametrize("tool,asked,page", [("pip", "Requests", "/simple/Requests/"),
                                             ("uv", "Charset_Normalizer", "/simple/Charset_Normalizer")])
def test_a_non_normalised_project_url_is_redirected(tool, asked, page, served, wheels, tmp_path):
    install, agent = INSTALLERS[tool]
    project = normalize(asked)
    since = served.mark()
    target = tmp_path / "target"
    # As index clients both ask for /simple/<normalised name>/ themselves; a --find-links page is
    # fetched at the address given.
    p = install(target, "--no-index", "--find-links", served.url + page.lstrip("/"), "--no-deps", asked)
    assert p.returncode == 0, show(p)
    module, version = MODULES[project], PINS[project][0]
    assert (target / module).is_dir() and (target / f"{module}-{version}.dist-info").is_dir(), os.listdir(target)
    wheel_path = f"/packages/{project}/{wheels[project].name}"
    entries = served.entries(since, [wheel_path])
    got = [(e["method"], e["path"], e["status"]) for e in entries]
    assert got[:2] == [("GET", page, 301), ("GET", f"/simple/{project}/", 200)], got
    assert ("GET", wheel_path, 200) in got, got
    assert all((e["ua"] or "").startswith(agent) for e in entries), entries
