#!/usr/bin/env bash
# Builds ros2_ws/src/ript_interfaces (custom .msg/.srv) with the ROS 2 build tools from PyPI and
# installs it into the virtual environment's prefix, next to the std_msgs/sensor_msgs wheels:
#   <venv>/lib/python3.11/site-packages/ript_interfaces   generated Python package
#   <venv>/lib/libript_interfaces__*.so                   C/C++ type support
#   <venv>/share/ript_interfaces, <venv>/share/ament_index  package share and ament index
# Why the venv prefix: the ROS wheels' start-up hook (ros_wheels_bootstrapper) already puts
# <venv>/lib on LD_LIBRARY_PATH, which is where rosidl_typesupport_c looks up the per-message
# fastrtps/introspection libraries at run time, so `from ript_interfaces.msg import Reward` and
# publishing it work with no extra environment variables.
#
# Idempotent: a stamp of the inputs' hash (msg/srv files, CMakeLists, package.xml, this script,
# the pinned build requirements, the Python version) makes a second run take well under a second.
# Usage: scripts/build_interfaces.sh [--force]      (RIPT_VENV overrides the venv, as in setup.sh)
set -euo pipefail

RIPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RIPT_VENV="${RIPT_VENV:-$RIPT_ROOT/.venv}"
PKG_DIR="$RIPT_ROOT/ros2_ws/src/ript_interfaces"
# Per venv (its CMake cache names the venv as install prefix), and apart from colcon's
# ros2_ws/build so that `colcon build` in ros2_ws never reuses this cache.
BUILD_DIR="$RIPT_VENV/.ript-build/ript_interfaces"
BUILD_REQS="$RIPT_ROOT/ros2_ws/requirements-build.txt"
PY="$RIPT_VENV/bin/python"
STAMP="$RIPT_VENV/.ript-interfaces-stamp"
TOOLS_STAMP="$RIPT_VENV/.ript-build-tools-stamp"

log() { printf '[build_interfaces] %s\n' "$*" >&2; }
die() { printf '[build_interfaces] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python in $RIPT_VENV; run scripts/setup.sh first (or set RIPT_VENV)"
[ -f "$PKG_DIR/package.xml" ] || die "missing $PKG_DIR/package.xml"
for tool in cmake make cc c++; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "'$tool' not found; install the build tools listed in scripts/apt-packages.txt"
done

# The rosidl wheels were built under /opt/python/cp311-cp311 and their exported CMake targets name
# that interpreter's include dirs; CMake rejects imported targets whose include dirs don't exist.
# Point them at this interpreter's and numpy's include dirs. Checked on every run (a few ms)
# because reinstalling a wheel brings the original files back.
rewrite_wheel_include_paths() {
  local files py_inc np_inc
  files=$(grep -rlF --include='*.cmake' /opt/python/cp311-cp311 "$RIPT_VENV/share" 2>/dev/null) \
    || true
  [ -z "$files" ] && return 0
  py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$PY" -c 'import numpy; print(numpy.get_include())') \
    || die "numpy is not importable from $PY (it comes with requirements.txt)"
  [ -f "$py_inc/Python.h" ] || die "Python headers not found in $py_inc (Debian: python3.11-dev)"
  log "pointing $(echo "$files" | wc -l) wheel CMake files at $py_inc and $np_inc"
  # shellcheck disable=SC2086  # one file per word; site-packages paths contain no spaces
  sed -i \
    -e "s|/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include|$np_inc|g" \
    -e "s|/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/core/include|$np_inc|g" \
    -e "s|/opt/python/cp311-cp311/include/python3.11|$py_inc|g" \
    $files
}

inputs_hash() {
  (cd "$RIPT_ROOT" && cat scripts/build_interfaces.sh ros2_ws/requirements-build.txt \
     && find ros2_ws/src/ript_interfaces -type f \( -name '*.msg' -o -name '*.srv' \
          -o -name CMakeLists.txt -o -name package.xml \) -print0 | sort -z | xargs -0 cat \
     && "$PY" --version) | sha256sum | cut -d' ' -f1
}

is_installed() {
  local site
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [ -f "$site/ript_interfaces/msg/__init__.py" ] \
    && [ -f "$RIPT_VENV/share/ament_index/resource_index/packages/ript_interfaces" ]
}

rewrite_wheel_include_paths

want=$(inputs_hash)
if [ "${1:-}" != "--force" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && is_installed; then
  exit 0
fi

# The build tools: skipped when their pins are unchanged since the last install into this venv.
tools_want=$(cat "$BUILD_REQS" "$RIPT_ROOT/constraints.txt" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$TOOLS_STAMP" ] || [ "$(cat "$TOOLS_STAMP")" != "$tools_want" ]; then
  log "installing the ROS 2 build tools (ros2_ws/requirements-build.txt)"
  pip_args=(-r "$BUILD_REQS")
  # Keep everything else at the project's lock.
  [ -f "$RIPT_ROOT/constraints.txt" ] && pip_args+=(-c "$RIPT_ROOT/constraints.txt")
  "$PY" -m pip --disable-pip-version-check -q install "${pip_args[@]}" \
    || die "pip could not install the build tools from $BUILD_REQS"
  echo "$tools_want" >"$TOOLS_STAMP"
  rewrite_wheel_include_paths  # again: pip may just have (re)installed a message wheel
fi

log "building ript_interfaces into $RIPT_VENV"
start=$SECONDS
# Quote the venv as the CMake prefix (find_package of ament_cmake, rosidl_*, builtin_interfaces)
# and as the install prefix; ament_cmake_python then installs into the venv's site-packages.
export AMENT_PREFIX_PATH="$RIPT_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$RIPT_VENV/bin:$PATH"
jobs=$(nproc 2>/dev/null || echo 2)
build_log="$BUILD_DIR/build.log"
mkdir -p "$BUILD_DIR"
if ! {
  cmake -S "$PKG_DIR" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$RIPT_VENV" \
    -DCMAKE_PREFIX_PATH="$RIPT_VENV" \
    -DPython3_EXECUTABLE="$PY" \
    -DPython3_FIND_VIRTUALENV=ONLY \
    -DBUILD_TESTING=OFF \
  && cmake --build "$BUILD_DIR" -j "$jobs" \
  && cmake --install "$BUILD_DIR"
} >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  die "CMake build failed; full log: $build_log"
fi

# Prove the result loads, in a fresh interpreter (so the LD_LIBRARY_PATH hook runs): the Python
# classes and the C type support behind them. (The fastrtps type support is looked up when a
# publisher is created; tests/ros/test_interfaces.py covers that over real DDS.)
if ! "$PY" - >>"$build_log" 2>&1 <<'EOF'
from rclpy.type_support import check_for_type_support
from ript_interfaces.msg import (ActionChunk, ActionCommand, Reward, RobotState, TrainerStatus, TrialRecord,
                                 TrialStart, WeightsUpdate)
from ript_interfaces.srv import AbortTrial, StartTrial
for t in (ActionChunk, ActionCommand, Reward, RobotState, TrainerStatus, TrialRecord, TrialStart, WeightsUpdate,
          AbortTrial, StartTrial):
    check_for_type_support(t)
EOF
then
  tail -n 20 "$build_log" >&2
  die "built, but ript_interfaces does not import from $PY; log: $build_log"
fi

echo "$want" >"$STAMP"
log "ript_interfaces ready ($((SECONDS - start)) s build)"
