#!/usr/bin/env bash
# The main job. Sets up the environment (idempotent), then runs `ript` with the given arguments.
# With no subcommand it starts the sim stack: LIBERO bridge + policy node + trainer node + operator
# panel (`ript up sim`), on a starter policy built once into runs/starter/ when none is given.
# Arguments that start with '-' go to `ript up sim` (e.g. ./run.sh --set iterations=20).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/setup.sh"
cd "$RIPT_ROOT"
if [ $# -eq 0 ] || [[ "$1" == -* && "$1" != "-h" && "$1" != "--help" ]]; then
  set -- up sim "$@"
fi
exec ript "$@"
