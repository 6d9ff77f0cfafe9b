#!/usr/bin/env bash
# The test suite. Sets up the environment (idempotent), then runs pytest; extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/setup.sh"
cd "$RIPT_ROOT"
exec python -m pytest "$@"
