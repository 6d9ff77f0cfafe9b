#!/usr/bin/env bash
# The checks CI runs before the tests: ruff (lint, then format check) on the whole tree and mypy on
# the typed layers (pyproject.toml says which). `scripts/lint.sh --fix` applies ruff's fixes and
# formats instead of checking.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$RIPT_ROOT"
if [ "${1:-}" = "--fix" ]; then
  ruff check --fix .
  ruff format .
else
  ruff check .
  ruff format --check .
fi
mypy
