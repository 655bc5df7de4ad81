"""Crash consistency: the publisher's ``repo add`` and ``repo refresh``, the client's update
(``packman download``), ``packman mirror sync`` and ``packman install`` killed with SIGKILL at
random moments, many times each (100 by default; ``PACKMAN_CRASH_KILLS`` changes it,
``PACKMAN_CRASH_SEED`` replays a run). The mirror and install tests say what they check.

After every kill:

* the published tree is the old state or the new one: python-tuf's client, starting from
  root v1 in a fresh directory, refreshes and downloads the newest target (so everything the
  timestamp leads to is complete and verifies);
* no file the signed metadata lists is half written: a hash-prefixed target file whose bytes
  do not match its name is never one that python-tuf's client finds listed with that hash
  (files a killed publish was writing are not referenced until a later timestamp names
  them; the next publish of that version overwrites them);
* the client's trusted metadata directory still loads, and its next update succeeds;
* the next run of the killed command succeeds.

Kill moments are drawn uniformly over the measured length of an uninterrupted run, so they
land inside the writes rather than before or after them.

Run: ``.venv/bin/python -m pytest tests/interop/test_crash_consistency.py -q``
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))

from tufrepo import RepoServer  # noqa: E402
from tuf.ngclient import Updater  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("PACKMAN_BIN_DIR", REPO_ROOT / "target" / "release"))
PACKMAN = BIN_DIR / "packman"
KILLS = int(os.environ.get("PACKMAN_CRASH_KILLS", "100"))
SEED = int(os.environ.get("PACKMAN_CRASH_SEED", str(random.randrange(1 << 32))))
HASHED = re.compile(r"([0-9a-f]{64})\.(.+)")


@pytest.fixture(scope="module", autouse=True)
def _packman_present():
    if not os.access(PACKMAN, os.X_OK):
        pytest.fail(f"missing {PACKMAN}: run `cargo build --release -p packman` or set PACKMAN_BIN_DIR",
                    pytrace=False)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PACKMAN_")}


def run(*args: object) -> subprocess.CompletedProcess:
    cmd = [os.fspath(PACKMAN), *map(os.fspath, args)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=_env())
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def timed(*args: object) -> float:
    t = time.perf_counter()
    run(*args)
    return time.perf_counter() - t


def killed(rng: random.Random, window: float, *args: object) -> bool:
    """Starts ``packman ARGS`` and kills it with SIGKILL after a random part of ``window``;
    whether it was still running when killed."""
    p = subprocess.Popen([os.fspath(PACKMAN), *map(os.fspath, args)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    time.sleep(rng.uniform(0, window))
    alive = p.poll() is None
    if alive:
        p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    return alive


def note(directory: Path, i: int) -> Path:
    f = directory / f"note-{i}.txt"
    f.write_bytes(f"note {i}\n".encode() * (1 + i % 50))
    return f


class Verifier:
    """python-tuf's client over HTTP, fresh each time, trusting root v1."""

    def __init__(self, repo_dir: Path, work: Path, server: RepoServer):
        self.root = (repo_dir / "metadata" / "1.root.json").read_bytes()
        self.work = work
        self.server = server
        self.n = 0

    def updater(self) -> Updater:
        self.n += 1
        d = self.work / f"ng-{self.n}"
        (d / "md").mkdir(parents=True)
        (d / "dl").mkdir()
        return Updater(metadata_dir=os.fspath(d / "md"), metadata_base_url=f"{self.server.url}/metadata/",
                       target_base_url=f"{self.server.url}/targets/", target_dir=os.fspath(d / "dl"),
                       bootstrap=self.root)

    def check(self, repo_dir: Path, must_list: list[str]) -> int:
        """Refreshes from scratch, downloads every path in ``must_list`` and checks that no
        corrupt hash-prefixed file is listed; returns how many corrupt, unlisted files there are."""
        up = self.updater()
        up.refresh()
        for path in must_list:
            info = up.get_targetinfo(path)
            assert info is not None, f"{path} is not listed"
            up.download_target(info)
        corrupt = 0
        for f in (repo_dir / "targets").rglob("*"):
            m = HASHED.fullmatch(f.name)
            if not f.is_file() or not m:
                continue
            if hashlib.sha256(f.read_bytes()).hexdigest() == m.group(1):
                continue
            corrupt += 1
            rel = f.relative_to(repo_dir / "targets").parent / m.group(2)
            info = up.get_targetinfo(rel.as_posix())
            assert info is None or info.hashes.get("sha256") != m.group(1), \
                f"{f} is listed by the signed metadata but its bytes do not match"
        return corrupt


def trusted_dir_loads(md: Path) -> None:
    """Every file of a client's trusted metadata directory is complete JSON."""
    for f in md.iterdir():
        if f.name.endswith(".json"):
            json.loads(f.read_bytes())


def test_publisher_and_client_survive_sigkill_at_any_moment(tmp_path):
    rng = random.Random(SEED)
    print(f"seed {SEED}, {KILLS} kills per command", file=sys.stderr)
    repo_dir, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    run("repo", "init", repo_dir, "--bins", "16")
    # Retention of one version: every publish rewrites the files the previous one replaced,
    # the case where a kill could hurt most.
    settings = repo_dir / "packman-repo.json"
    s = json.loads(settings.read_text())
    s["keep_versions"] = 1
    settings.write_text(json.dumps(s))

    n = 0
    listed: list[str] = []

    def add_untimed() -> None:
        nonlocal n
        n += 1
        run("repo", "add", repo_dir, "--raw", "--prefix", "notes/", note(src, n))
        listed.append(f"notes/note-{n}.txt")

    for _ in range(3):
        add_untimed()
    # Measure an uninterrupted add (three runs) for the kill window.
    times = []
    for _ in range(3):
        n += 1
        times.append(timed("repo", "add", repo_dir, "--raw", "--prefix", "notes/", note(src, n)))
        listed.append(f"notes/note-{n}.txt")
    window_add = statistics.median(times) * 1.2
    times = [timed("repo", "refresh", repo_dir, "--margin-hours", "1000000") for _ in range(3)]
    window_refresh = statistics.median(times) * 1.2

    client_md = tmp_path / "client-md"
    client_dl = tmp_path / "client-dl"
    root_file = repo_dir / "metadata" / "1.root.json"

    with RepoServer(repo_dir) as server:
        # A client killed mid-request resets its connection: expected here, not worth a trace.
        server.httpd.handle_error = lambda *_: None
        verify = Verifier(repo_dir, tmp_path / "verify", server)
        metadata_url = f"{server.url}/metadata/"

        def client(target: str) -> list[str]:
            return ["download", "--root", root_file, "--metadata-url", metadata_url,
                    "--metadata-dir", client_md, "--dest", client_dl, target]

        run(*client(listed[-1]))
        times = []
        for _ in range(3):
            add_untimed()
            times.append(timed(*client(listed[-1])))
        window_client = statistics.median(times) * 1.2

        interrupted = {"repo add": 0, "repo refresh": 0, "client update": 0}
        leftovers = 0
        for i in range(KILLS):
            # The publisher, killed during an add of a new file.
            n += 1
            f = note(src, n)
            if killed(rng, window_add, "repo", "add", repo_dir, "--raw", "--prefix", "notes/", f):
                interrupted["repo add"] += 1
            leftovers = verify.check(repo_dir, listed[-1:] + rng.sample(listed, 2))
            # The next add (of the same file) succeeds and the tree is whole again.
            run("repo", "add", repo_dir, "--raw", "--prefix", "notes/", f)
            listed.append(f"notes/note-{n}.txt")

            # The publisher, killed while re-signing everything.
            if killed(rng, window_refresh, "repo", "refresh", repo_dir, "--margin-hours", "1000000"):
                interrupted["repo refresh"] += 1
            verify.check(repo_dir, listed[-1:])
            run("repo", "refresh", repo_dir, "--margin-hours", "1000000")

            # The client, killed during an update that has something new to fetch.
            add_untimed()
            if killed(rng, window_client, *client(listed[-1])):
                interrupted["client update"] += 1
            trusted_dir_loads(client_md)
            shutil.rmtree(client_dl, ignore_errors=True)
            out = run(*client(listed[-1])).stdout
            assert f"{listed[-1]}:" in out, out
            assert (client_dl / Path(listed[-1]).name).read_bytes() == (src / Path(listed[-1]).name).read_bytes()

        final_corrupt = verify.check(repo_dir, listed)
        print(f"interrupted mid-run: {interrupted} of {KILLS} each; corrupt unlisted target files after the "
              f"last kill: {leftovers}; at the end: {final_corrupt}", file=sys.stderr)
        # The kills must have landed inside the runs often enough to mean something.
        for what, count in interrupted.items():
            assert count >= KILLS // 4, f"{what}: only {count} of {KILLS} kills interrupted a run (seed {SEED})"


def killed_group(rng: random.Random, window: float, args: list, env: dict, only_packman: bool = False) -> bool:
    """Like ``killed``, but the whole process group (packman and the pip/uv it runs) dies
    with SIGKILL, as in a crash or an OOM kill of the session. With ``only_packman``, packman
    alone is killed and the group's other processes are waited for (bounded), so that they
    end by themselves."""
    p = subprocess.Popen([os.fspath(PACKMAN), *map(os.fspath, args)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    time.sleep(rng.uniform(0, window))
    alive = p.poll() is None
    try:
        if only_packman:
            p.send_signal(signal.SIGKILL)
        else:
            os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=30)
    deadline = time.monotonic() + 60
    while True:  # the group's orphans (uv, pip) end on their own once the proxy is gone
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    return alive


def test_mirror_sync_survives_sigkill_at_any_moment(tmp_path):
    """``packman mirror sync`` killed with SIGKILL while it has new targets and metadata to
    take: DEST is the old mirror or the new one (python-tuf's client, from root v1 in a fresh
    directory, refreshes from DEST and downloads what the old state listed; no hash-prefixed
    file it lists is half written), and the next sync succeeds and lists the new target."""
    rng = random.Random(SEED + 1)
    repo_dir, src, dest = tmp_path / "repo", tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    env = _env()
    env["PACKMAN_HOME"] = os.fspath(tmp_path / "home")
    run("repo", "init", repo_dir, "--bins", "16")
    listed: list[str] = []

    def add(n: int, files: int = 3) -> None:
        run("repo", "add", repo_dir, "--raw", "--prefix", f"notes/{n}/", *[note(src, n * 10 + k) for k in range(files)])
        listed.extend(f"notes/{n}/note-{n * 10 + k}.txt" for k in range(files))

    def sync(*extra: object) -> list:
        return ["mirror", "sync", upstream.url, dest, *extra]

    def sync_ok(*extra: object) -> None:
        cmd = [os.fspath(PACKMAN), *map(os.fspath, sync(*extra))]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"

    add(0)
    with RepoServer(repo_dir) as upstream, RepoServer(dest) as mirror:
        upstream.httpd.handle_error = lambda *_: None
        mirror.httpd.handle_error = lambda *_: None
        sync_ok("--root", repo_dir / "metadata" / "1.root.json")
        verify = Verifier(repo_dir, tmp_path / "verify", mirror)
        times = []
        for n in range(1, 4):
            add(n)
            t = time.perf_counter()
            sync_ok()
            times.append(time.perf_counter() - t)
        window = statistics.median(times) * 1.2
        interrupted = 0
        for i in range(KILLS):
            before = list(listed)
            add(4 + i)
            if killed_group(rng, window, sync(), env):
                interrupted += 1
            # Old or new: what the old state listed is there and whole.
            verify.check(dest, before[-3:] + rng.sample(before, 2))
            sync_ok()
            verify.check(dest, listed[-3:])
        print(f"mirror sync interrupted mid-run {interrupted} of {KILLS}", file=sys.stderr)
        assert interrupted >= KILLS // 4, f"only {interrupted} of {KILLS} kills interrupted a sync (seed {SEED})"


def wheel(directory: Path, project: str, version: str) -> Path:
    """A pure-Python wheel with a valid RECORD."""
    import base64
    import zipfile
    dist = project.replace("-", "_")
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    di = f"{dist}-{version}.dist-info"
    files = {f"{dist}/__init__.py": f"VERSION = {version!r}\n" + "# padding\n" * 2000,
             f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n\n",
             f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: packman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = ""
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(text.encode())}\n"
    files[f"{di}/RECORD"] = record + f"{di}/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def test_install_survives_sigkill_at_any_moment(tmp_path):
    """``packman install`` (its in-process proxy) killed with SIGKILL at random moments: the
    trusted metadata still loads, every file in the verified cache is named by its own sha256
    (nothing half written under a final name), and the next install succeeds and imports.

    packman alone is killed; the uv it ran ends by itself once its index is gone. Killing uv
    too, mid-install, can leave a ``.dist-info`` without ``METADATA`` that uv then refuses to
    read on the next install (found by this test killing the whole process group): uv's and
    pip's installs are not atomic, and the environment is theirs. packman's state is what
    this test holds to old-or-new."""
    rng = random.Random(SEED + 2)
    uv = Path(sys.executable).parent / "uv"
    if not os.access(uv, os.X_OK):
        pytest.fail(f"uv is not installed for {sys.executable}: pip install -r tests/interop/requirements.txt",
                    pytrace=False)
    repo_dir, src, home, venv = tmp_path / "repo", tmp_path / "src", tmp_path / "home", tmp_path / "venv"
    src.mkdir()
    run("repo", "init", repo_dir, "--bins", "16")
    projects = [f"crash-pkg-{i}" for i in range(8)]
    run("repo", "add", repo_dir, *[wheel(src, p, "1.0") for p in projects])
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    env = _env()
    env["PACKMAN_HOME"] = os.fspath(home)
    env["PATH"] = os.pathsep.join([os.fspath(uv.parent), env.get("PATH", "")])
    python = venv / "bin" / "python"

    def packman(*args: object) -> subprocess.CompletedProcess:
        cmd = [os.fspath(PACKMAN), *map(os.fspath, args)]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        return p

    def uninstall() -> None:
        subprocess.run([uv, "pip", "uninstall", "--python", python, *projects], capture_output=True, timeout=60,
                       check=True)

    def cache_whole() -> None:
        for f in (home / "cache" / "files").glob("*"):
            if f.name.startswith("."):
                continue
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name, f"{f} does not hold the bytes it names"
        for md in home.rglob("metadata"):
            if md.is_dir():
                trusted_dir_loads(md)

    install = ["install", "--python", python, "--installer", "uv", *projects]
    with RepoServer(repo_dir) as server:
        server.httpd.handle_error = lambda *_: None
        packman("trust", "add", "main", server.url, "--root", repo_dir / "metadata" / "1.root.json")
        # A kill window for each kind of run: one that fetches every file, and one that finds
        # them cached (much shorter: one window for both left most kills after the end).
        windows = {}
        for cold in (True, False):
            times = []
            for _ in range(5):  # the median of five: one slow run must not widen the window
                uninstall()
                if cold:
                    shutil.rmtree(home / "cache", ignore_errors=True)
                t = time.perf_counter()
                packman(*install)
                times.append(time.perf_counter() - t)
            windows[cold] = statistics.median(times) * 1.2
        interrupted = 0
        for i in range(KILLS):
            uninstall()
            cold = i % 2 == 0  # half the runs fetch every file, half find them cached
            if cold:
                shutil.rmtree(home / "cache", ignore_errors=True)
            if killed_group(rng, windows[cold], install, env, only_packman=True):
                interrupted += 1
            cache_whole()
            packman(*install)
            check = subprocess.run([python, "-c", "import " + ", ".join(p.replace("-", "_") for p in projects)],
                                   capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, check.stderr
        print(f"install interrupted mid-run {interrupted} of {KILLS} (windows {windows})", file=sys.stderr)
        assert interrupted >= KILLS // 4, f"only {interrupted} of {KILLS} kills interrupted an install (seed {SEED})"
