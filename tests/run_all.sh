#!/usr/bin/env bash
# Every test, in the order `make test` promises (see README, "How CI validates the notebooks"):
#   1. the package's tests (two processes), while the Binder dry-run's environment (venv + pip) is made beside them;
#   2. `python -m minikit build` on an empty cache: the cold path of every trained artifact, built once;
#   3. nbval on every notebook alone: a fresh kernel on a fresh copy of the built cache each, MINIKIT_NO_TRAIN=1;
#   4. the student edition (make student, built into a temp folder), chapter 10 first, each top to bottom in a
#      fresh kernel on one shared copy of the built cache, every exercise unanswered, MINIKIT_NO_TRAIN=1: the
#      course in reverse order and the student edition in one pass (its code is the course's, the solutions
#      replaced by minikit's own implementations; step 3 compares the full edition's outputs);
#   5. the browser test, then the Binder dry-run (its postBuild runs `minikit build`, which finds it all built).
# Every step runs even when an earlier one failed (except the notebook passes, which need the build); the
# exit status is non-zero if any failed. Times go to artifacts/ci_steps.json, the notebooks' time and
# memory against their budgets (scaled by a calibration workload timed in the same run) to
# artifacts/notebook_budgets_*.json. Usage: tests/run_all.sh PYTHON [PYTEST_ARGS...]
set -uo pipefail
cd "$(dirname "$0")/.."
python=$1
shift
mkdir -p artifacts
work=$(mktemp -d -t minikit-ci-XXXXXX)
binder="$work/binder"
built="$work/built-cache"
mkdir -p "$binder"
status=0
steps=()

step() {  # step NAME COMMAND...: run, time, remember the outcome
  local name=$1 began=$SECONDS code=0
  shift
  echo
  echo "=== $name"
  "$@" || code=$?
  steps+=("$name|$((SECONDS - began))|$code")
  [ "$code" -eq 0 ] || status=$code
  return "$code"
}

cleanup() {
  [ -n "${builder:-}" ] && kill "$builder" 2>/dev/null && wait "$builder" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$python" -m tests.learner.binder_build "$binder" >/dev/null 2>&1 &
builder=$!

step "package tests" "$python" -m pytest -n 2 --dist loadfile tests --ignore=tests/learner "$@"
if step "minikit build (empty cache)" env MINIKIT_CACHE="$built" "$python" -m minikit build --no-progress; then
  step "notebooks alone" env MINIKIT_BUILT_CACHE="$built" MINIKIT_NO_TRAIN=1 MINIKIT_NOTEBOOK_CACHE=alone \
    MINIKIT_BUDGETS_NAME=alone "$python" -m pytest notebooks "$@"
  step "student edition, reverse order" env MINIKIT_BUILT_CACHE="$built" MINIKIT_NO_TRAIN=1 \
    MINIKIT_NOTEBOOK_ORDER=reverse "$python" -m pytest tests/student_notebooks.py "$@"
else
  echo "The build failed: the notebook passes need it, and are skipped." >&2
fi
# The browser test moves knobs, and some knobs train short runs (chapter 7's α), as they would for a learner.
step "browser test and Binder dry-run" env MINIKIT_BUILT_CACHE="$built" MINIKIT_BINDER_BUILD="$binder" \
  "$python" -m pytest tests/learner "$@"

"$python" - "${steps[@]}" <<'EOF'
import json, sys
from pathlib import Path

rows = [dict(zip(("step", "seconds", "exit"), line.rsplit("|", 2))) for line in sys.argv[1:]]
for row in rows:
    row["seconds"], row["exit"] = int(row["seconds"]), int(row["exit"])
calibration = {}
for name in ("alone",):
    path = Path("artifacts") / f"notebook_budgets_{name}.json"
    if path.exists():
        data = json.loads(path.read_text())
        calibration[name] = {"calibration_ms": data["calibration_ms"], "scale": data["scale"],
                             "notebook_seconds": data["total_seconds"]}
Path("artifacts/ci_steps.json").write_text(json.dumps({"steps": rows, "calibration": calibration}, indent=2))
print("\n=== make test, step by step")
for row in rows:
    print(f"{row['step']:<34} {row['seconds'] // 60:>3} min {row['seconds'] % 60:>2} s   {'ok' if row['exit'] == 0 else 'FAILED (exit %d)' % row['exit']}")
for name, c in calibration.items():
    print(f"calibration workload ({name} pass): {', '.join(f'{ms:.1f}' for ms in c['calibration_ms'])} ms per forward pass, "
          f"budgets × {c['scale']:.2f}; its notebooks took {c['notebook_seconds']:.0f} s in all")
EOF
exit $status
