#!/usr/bin/env bash
# The main job. Sets up the environment (idempotent), then runs `ript` with the given arguments.
# With no subcommand it runs the default job: RIPT (LOOP + dynamic sampling) on the reach task.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/setup.sh"
cd "$RIPT_ROOT"
if [ $# -eq 0 ] || [[ "$1" == -* && "$1" != "-h" && "$1" != "--help" ]]; then
  set -- toy "$@"
fi
exec ript "$@"
