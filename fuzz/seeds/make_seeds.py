"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from a repository made by
`packman demo --dir DIR` (real signed metadata, wheels and pages).

    python3 fuzz/seeds/make_seeds.py DIR
"""
import hashlib
import json
import struct
import sys
import zipfile
from pathlib import Path

demo = Path(sys.argv[1])
repo = demo / "repository"
md = repo / "metadata"
out = Path(__file__).resolve().parent


def put(target: str, data: bytes) -> None:
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def chunked(*parts: bytes) -> bytes:
    return b"".join(struct.pack("<H", len(p)) + p for p in parts)


ts = json.loads((md / "timestamp.json").read_bytes())["signed"]
sv = ts["meta"]["snapshot.json"]["version"]
snap_bytes = (md / f"{sv}.snapshot.json").read_bytes()
snap = json.loads(snap_bytes)["signed"]
tv = snap["meta"]["targets.json"]["version"]
bin0 = f"{snap['meta']['bins-0.json']['version']}.bins-0.json"
parts = [(md / "1.root.json").read_bytes(), (md / "timestamp.json").read_bytes(), snap_bytes,
         (md / f"{tv}.targets.json").read_bytes(), (md / bin0).read_bytes()]
put("trusted_set", chunked(*parts))
put("trusted_set", chunked(*parts[:3]))
for f in sorted(md.glob("*.json")):
    put("canonical", f.read_bytes())
for f in sorted(md.glob("*.snapshot.json")):
    put("snapshot_text", f.read_bytes())
for whl in sorted((repo / "targets" / "packages").rglob("*.whl")):
    if len(whl.name.split(".")[0]) != 64:
        put("distribution", whl.name.encode())
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if n.endswith("/METADATA"):
                    put("distribution", z.read(n))
for p in ["/metadata/timestamp.json", "/metadata/3.snapshot.json", "/simple/", "/simple/demo-app/",
          "/simple/Demo_App", "/packages/demo-app/demo_app-1.0-py3-none-any.whl", "/targets/%2e%2e/keys",
          "packages/p/../x.whl", "a/./b/../c.txt"]:
    put("paths", p.encode())
print("seeds written to", out)
