"""The Binder dry-run's build on its own: ``python -m tests.learner.binder_build FOLDER``.

``make test`` runs it in the background while the package tests run in two processes, then runs
the course with ``MINIKIT_BINDER_BUILD=FOLDER``: the dry-run test (``test_binder_dry_run.py``)
waits for ``FOLDER/result.json`` instead of building. The build is the test's own
(``BinderBuild``: a venv and ``binder/requirements.txt``; ``postBuild`` runs later, in the test, after the course is built; logs in
``artifacts/binder/``). Exits 0 when the build succeeded, 1 when it failed; either way
``result.json`` says what happened, written last and atomically, so its presence means "ended".
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from .test_binder_dry_run import RESULT, BinderBuild


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.learner.binder_build FOLDER   (an empty folder for the environment)",
              file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    try:
        build = BinderBuild(folder, background=False)
        error = build._error
        report = build.report
    except BaseException as err:  # noqa: BLE001  (anything, reported to the test instead of lost)
        error, report = err, {"seconds": {}, "notes": []}
    message = None if error is None else (getattr(error, "msg", None) or "".join(
        traceback.format_exception(type(error), error, error.__traceback__)))
    partial = folder / (RESULT + ".partial")
    partial.write_text(json.dumps({"ok": error is None, "error": message, "report": report}, default=str))
    os.replace(partial, folder / RESULT)
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
