"""The one way an interop test skips: a part that cannot run here is a skip that says why
(and is noted in the file $PACKMAN_SKIP_LOG names, which scripts/test.sh prints in its
summary); under CI (``CI`` set), which installs everything, it is a failure instead."""

from __future__ import annotations

import os
import sys

import pytest


def skip(reason: str, module: bool = False) -> None:
    """Skips the calling test (or, with ``module``, the module being collected); fails under CI."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    if not test:  # at collection: the module calling
        test = os.path.basename(sys._getframe(1).f_code.co_filename)
    if os.environ.get("CI"):
        pytest.fail(f"not skipped under CI: {test}: {reason}", pytrace=False)
    log = os.environ.get("PACKMAN_SKIP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{test}: {reason}\n")
    pytest.skip(reason, allow_module_level=module)
