#!/usr/bin/env bash
# Runs every test packman has: Rust unit, state-machine and end-to-end tests, then the
# interoperability tests against python-tuf (the reference implementation). Installs what
# the Python side needs into .venv first, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

# Parts that cannot run here (a tool missing) are skipped, and said so: each skip site
# appends a line to $PACKMAN_SKIP_LOG (packman_testkit::skipped in Rust, skips.skip in the
# interop tests), printed at the end however the run ends. Under CI nothing is skipped: the
# same sites fail.
PACKMAN_SKIP_LOG="$(mktemp)"
export PACKMAN_SKIP_LOG
summary() {
    if [ -n "${CI:-}" ]; then
        rm -f "$PACKMAN_SKIP_LOG"
        return
    fi
    echo
    if [ -s "$PACKMAN_SKIP_LOG" ]; then
        echo "skipped parts (could not run here):"
        sort -u "$PACKMAN_SKIP_LOG" | sed 's/^/  /'
    else
        echo "skipped parts: nothing skipped"
    fi
    rm -f "$PACKMAN_SKIP_LOG"
}
trap summary EXIT

cargo fmt --all --check
cargo build --release --locked -p packman -p packman-conformance -p packman-attacks
cargo test --workspace --locked
# Again with the portable file-system calls (per-file fsync, no Linux-only hints) that
# non-Linux platforms use, so CI on Linux exercises them too.
PACKMAN_PORTABLE_FS=1 cargo test --locked -p packman-repo -p packman-fs
PACKMAN_PORTABLE_FS=1 cargo test --locked -p packman --test repo_cli
PACKMAN_BIN_DIR="$PWD/target/release" .venv/bin/python -m pytest tests/interop -q -rs -p no:cacheprovider
