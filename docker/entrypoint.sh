#!/usr/bin/env bash
# Entrypoint of the ript images. Loads the environment, then runs `ript "$@"`; for `up sim` (the
# default command) it first gives the graph what the data volume lacks and keeps everything the run
# writes under $RIPT_DATA (/data):
#
#   /data/policy/policy.pt   initial policy: scripted LIBERO demos + a short state-input SFT
#                            (made once, on the first start; RIPT_CHECKPOINT names your own instead)
#   /data/demos/             those scripted demos (HDF5, LIBERO layout)
#   /data/sft/<time>/        the SFT run that made policy.pt
#   /data/contexts/          training contexts (drawn on the first start)
#   /data/runs/sim/          the trainer's run folder: checkpoints, trials, weights, metrics.jsonl,
#                            the panel's marks; a restart resumes from it
#   /data/ros_logs/          ROS_LOG_DIR
#
# docker/Dockerfile (RIPT_LAUNCH=ript): the environment is scripts/setup.sh's (everything is already
# installed in the image: it only checks its stamps and exports the ROS variables) and the graph
# starts with `ript up sim`. docker/Dockerfile.ros2 (RIPT_LAUNCH=ros2): the environment is the ROS 2
# install plus the colcon workspace, and the graph starts with `ros2 launch ript_ros sim.launch.py`.
#
# Environment (all optional): RIPT_CHECKPOINT, RIPT_TASKS (libero_spatial task ids, default 0),
# RIPT_BOOTSTRAP_DEMOS (3), RIPT_BOOTSTRAP_SFT_STEPS (300), RIPT_PANEL_HOST (127.0.0.1),
# RIPT_PANEL_PORT (8000), RIPT_PANEL_TOKEN (random). Arguments after `up sim` are passed on, so a
# launch argument given there overrides the defaults set here: `--set name=value` (ript up; `ript up
# sim --list` shows them all) or `name:=value` (ros2 launch).
set -euo pipefail

RIPT_ROOT=/opt/ript
DATA="${RIPT_DATA:-/data}"
LAUNCH="${RIPT_LAUNCH:-ript}"
log() { printf '[ript-docker] %s\n' "$*" >&2; }
die() { printf '[ript-docker] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$LAUNCH" = ros2 ]; then
  set +u  # the ROS setup scripts read unset variables
  # shellcheck source=/dev/null
  source "/opt/ros/$ROS_DISTRO/setup.bash"
  # shellcheck source=/dev/null
  source "$RIPT_ROOT/ros2_ws/install/setup.bash"
  set -u
  # `ript` is also an executable of ript_ros, which colcon installs into the package's lib folder.
  export PATH="$RIPT_ROOT/ros2_ws/install/ript_ros/lib/ript_ros:$PATH"
else
  # shellcheck source=scripts/setup.sh
  source "$RIPT_ROOT/scripts/setup.sh"
fi
cd "$RIPT_ROOT"

# An initial policy to post-train when the volume has none. RIPT itself needs a policy that already
# succeeds sometimes (docs/results.md); this one is small and quick to make on a CPU, so that the
# graph, the panel and the trial flow can be seen working out of the box. One torch thread: on a
# small CPU shared with other work it was several times faster than the default.
bootstrap_policy() {
  local out="$1" tasks="$2" started=$SECONDS run
  log "no policy in $out: recording scripted demos and fitting a small state-input policy (first start only)"
  ript record-demos --suite libero_spatial --tasks "$tasks" --demos "${RIPT_BOOTSTRAP_DEMOS:-3}" \
    --state-only --num-envs 1 --out "$DATA/demos"
  ript sft --demos "$DATA/demos/libero_spatial" --head regression --input-mode state \
    --steps "${RIPT_BOOTSTRAP_SFT_STEPS:-300}" --hidden-dim 64 --num-layers 2 --threads 1 --no-progress \
    --out "$DATA/sft"
  run=$(find "$DATA/sft" -name policy.pt -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
  [ -n "$run" ] || die "ript sft wrote no policy.pt under $DATA/sft"
  mkdir -p "$(dirname "$out")"
  cp "$run" "$out.tmp" && mv "$out.tmp" "$out"  # a start interrupted half-way never leaves a torn file
  log "initial policy ready: $out ($((SECONDS - started)) s)"
}

if [ "${1:-}" = up ] && [ "${2:-}" = sim ]; then
  shift 2
  tasks="${RIPT_TASKS:-0}"
  checkpoint="${RIPT_CHECKPOINT:-$DATA/policy/policy.pt}"
  if [ ! -f "$checkpoint" ]; then
    [ -z "${RIPT_CHECKPOINT:-}" ] || die "RIPT_CHECKPOINT=$RIPT_CHECKPOINT does not exist in the container"
    bootstrap_policy "$checkpoint" "$tasks"
  fi
  contexts="$DATA/contexts/libero_spatial_tasks${tasks//,/_}_seed0.npz"
  host="${RIPT_PANEL_HOST:-127.0.0.1}"
  port="${RIPT_PANEL_PORT:-8000}"
  token="${RIPT_PANEL_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')}"
  if [ "$host" != 127.0.0.1 ]; then
    # The panel prints its bind address (0.0.0.0 in compose's isolated service): not one to open.
    log "operator panel (published on the host's loopback): http://127.0.0.1:$port/#token=$token"
  fi
  mkdir -p "$DATA/contexts" "$DATA/runs" "$ROS_LOG_DIR"
  arguments=(checkpoint="$checkpoint" contexts_file="$contexts" run_dir="$DATA/runs/sim"
             panel_host="$host" panel_port="$port" panel_token="$token")
  if [ "$LAUNCH" = ros2 ]; then
    # `ros2 launch` does not draw missing contexts as `ript up` does: the same draw, here.
    [ -f "$contexts" ] || ript contexts --suite libero_spatial --tasks "$tasks" --per-task 4 --seed 0 --out "$contexts"
    exec ros2 launch ript_ros sim.launch.py "${arguments[@]/=/:=}" "$@"
  fi
  sets=()
  for argument in "${arguments[@]}"; do sets+=(--set "$argument"); done
  exec ript up sim --tasks "$tasks" "${sets[@]}" "$@"
fi
# Any other program runs as given, in this environment (`bash`, `./test.sh`, `ros2 topic echo
# /ript/status`); anything else is a ript subcommand (`train`, `eval`, `sft`, ...).
if [ $# -gt 0 ] && [[ "$1" != -* ]] && type -P "$1" >/dev/null; then
  exec "$@"
fi
exec ript "$@"
