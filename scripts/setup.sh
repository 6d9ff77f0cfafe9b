#!/usr/bin/env bash
# Idempotent setup shared by ./run.sh and ./test.sh:
#   1. Debian packages from scripts/apt-packages.txt (apt-get, only the missing ones);
#   2. a virtual environment in .venv (override with RIPT_VENV) with the pinned Python packages;
#   3. the `ript` package (src/ript, the root pyproject.toml) installed editable;
#   4. the custom ROS interfaces (scripts/build_interfaces.sh, its own stamp).
# A stamp of the inputs' hash makes a second run with nothing changed take about a second.
# Source it (to get the venv on PATH and the ROS environment variables) or run it.
set -euo pipefail

RIPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RIPT_VENV="${RIPT_VENV:-$RIPT_ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

log() { printf '[setup] %s\n' "$*" >&2; }

install_apt_packages() {
  local wanted missing=()
  wanted=$(grep -vE '^\s*(#|$)' "$RIPT_ROOT/scripts/apt-packages.txt")
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

inputs_hash() {
  (cd "$RIPT_ROOT" && cat requirements.txt constraints.txt scripts/apt-packages.txt scripts/setup.sh \
    pyproject.toml 2>/dev/null; "$PYTHON" --version) \
    | sha256sum | cut -d' ' -f1
}

setup_python() {
  local stamp="$RIPT_VENV/.ript-setup-stamp" want
  want=$(inputs_hash)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$RIPT_VENV/bin/python" ]; then
    return 0
  fi
  log "creating/updating the virtual environment in $RIPT_VENV (first run takes a few minutes)"
  [ -x "$RIPT_VENV/bin/python" ] || "$PYTHON" -m venv "$RIPT_VENV"
  local pip=("$RIPT_VENV/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install -r "$RIPT_ROOT/requirements.txt" -c "$RIPT_ROOT/constraints.txt"
  # --use-pep517: an older pip (Debian's 23.0) would fall back to `setup.py develop`, which follows
  # setup.cfg's script_dir and puts the console scripts off PATH
  # The three packages that src/ript replaced (0.1.x), where an older venv still has them.
  "${pip[@]}" uninstall -y ript_policy ript_trainer ript-sim >/dev/null 2>&1 || true
  "${pip[@]}" install --no-deps --no-build-isolation --use-pep517 \
    -e "$RIPT_ROOT"
  echo "$want" > "$stamp"
  log "environment ready"
}

install_apt_packages
setup_python
# Custom ROS interfaces (ros2_ws/src/ript_interfaces), built into the venv; ~0.2 s when unchanged.
RIPT_VENV="$RIPT_VENV" "$RIPT_ROOT/scripts/build_interfaces.sh"

export PATH="$RIPT_VENV/bin:$PATH"
export VIRTUAL_ENV="$RIPT_VENV"
# ROS 2 from the pip wheels: talk only to this machine unless the user says otherwise, and keep
# logs out of the home directory.
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$RIPT_ROOT/runs/ros_logs}"
# ament index lookups (ament_index_python, colcon, `ros2 launch`) search the venv prefix, where the
# ROS wheels and ript_interfaces live.
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$RIPT_VENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$RIPT_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
# LIBERO renders offscreen on the CPU; EGL is the fast path.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-$MUJOCO_GL}"
export HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
