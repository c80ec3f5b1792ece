#!/usr/bin/env bash
# Builds the real Dockerfile and runs the image, with no Docker engine and no
# registry (CI runs this; so can you, as root):
#
#   1. tools:  installs podman, buildah and debootstrap with apt if missing;
#   2. bases:  creates docker.io/library/debian:bookworm{,-slim} locally with
#              debootstrap (from this machine's Debian mirror) unless podman
#              already has them (they are cached in podman's storage);
#   3. build:  podman build --isolation=chroot --pull=never -t IMAGE .
#              (ccache in a build cache mount keeps rebuilds short);
#   4. size:   prints the image size and FAILS at >= MAX_IMAGE_MB (150 MB);
#   5. image:  checks the config (numeric non-root USER, ENTRYPOINT, EXPOSE
#              50051 and 9090) and, on the image mounted with buildah mount,
#              that it holds no shell, package manager, compiler or setuid
#              file (distroless-style: the binaries, their libraries, CA
#              certificates, tzdata, /etc/passwd);
#   6. run:    buildah from + buildah run --isolation=chroot --network=host
#              (the binaries themselves: there is no shell to run):
#              starts campaign-gateway in sandbox mode on free loopback ports,
#              waits until `campaignctl health` answers SERVING, prints
#              `campaignctl health` (overall and for campaigns.v1.CampaignService,
#              as the probes ask) and `campaignctl lists`, checks the
#              process runs as a non-root uid and /metrics answers on the
#              admin port, then sends SIGTERM and expects exit status 0;
#   7. cleanup (trap): stops the gateway, removes the working container.
#
# Environment: IMAGE (default localhost/campaign-gateway:dev), MAX_IMAGE_MB
# (150), BUILD_TIMEOUT (seconds, 2400), REBUILD_BASE=1 (recreate the bases).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/campaign-gateway:dev}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-150}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-2400}
BASE=docker.io/library/debian:bookworm
BASE_SLIM=docker.io/library/debian:bookworm-slim
SUITE=bookworm

step() { printf '\n==> %s\n' "$*"; }
descendants() { local p; for p in $(pgrep -P "$1" || true); do echo "$p"; descendants "$p"; done; }
fail() { printf 'container-test: FAIL: %s\n' "$*" >&2; exit 1; }
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo   # podman/buildah/debootstrap run rootful

ctr="" gw_pid="" rootfs="" log=$(mktemp /tmp/cg-container-test.XXXXXX.log)
cleanup() {
  local rc=$? p
  if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
    for p in $(descendants "$gw_pid"); do kill -TERM "$p" 2>/dev/null || true; done
    timeout 20 tail --pid="$gw_pid" -f /dev/null 2>/dev/null || kill -KILL "$gw_pid" 2>/dev/null || true
  fi
  [ -z "$ctr" ] || $sudo buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -z "$rootfs" ] || $sudo rm -rf "$rootfs" "$rootfs.log"
  rm -f "$log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. tools -------------------------------------------------------------
step "tools: podman, buildah, debootstrap"
missing=()
for tool in podman:podman buildah:buildah debootstrap:debootstrap; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] ||
    missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin
podman --version
buildah --version

# --- 2. base images -------------------------------------------------------
# The host's Debian mirror (deb822 sources or a classic sources.list line).
host_uri() { # $1: regex that the URI must match
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/^deb (\[[^]]*\] )?([^ ]+).*/\2/'
  } | grep -E "$1" | head -n1
}

make_bases() {
  local mirror security root f old_bases
  old_bases=$($sudo podman image inspect --format '{{.Id}}' "$BASE" "$BASE_SLIM" 2>/dev/null || true)
  mirror=$(host_uri '/debian/?$' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  security=$(host_uri '/debian-security/?$' || true)
  security=${security:-${mirror%/debian}/debian-security}
  root=$(mktemp -d /var/tmp/cg-rootfs.XXXXXX)
  rootfs=$root   # removed by cleanup, also on failure
  echo "debootstrap --variant=minbase $SUITE from $mirror (a few minutes)"
  timeout 1200 $sudo debootstrap --variant=minbase "$SUITE" "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; fail "debootstrap"; }
  rm -f "$root.log"

  # What the official images carry: deb822 sources with security updates,
  # and apt settings that keep layers small.
  $sudo rm -f "$root/etc/apt/sources.list"
  $sudo tee "$root/etc/apt/sources.list.d/debian.sources" >/dev/null <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $sudo tee "$root/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' |
    $sudo tee "$root/etc/apt/apt.conf.d/docker-no-languages" >/dev/null
  printf 'APT::AutoRemove::SuggestsImportant "false";\n' |
    $sudo tee "$root/etc/apt/apt.conf.d/docker-autoremove-suggests" >/dev/null
  # Site apt settings this machine needs to reach its mirror (a proxy, or a
  # snapshot mirror whose Release files are past Valid-Until).
  for f in /etc/apt/apt.conf.d/*; do
    [ -f "$f" ] && grep -qiE 'Proxy|Check-Valid-Until|Check-Date' "$f" &&
      $sudo cp "$f" "$root/etc/apt/apt.conf.d/"
  done
  $sudo chroot "$root" apt-get clean
  $sudo rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.cache
  $sudo tar -C "$root" --numeric-owner -c . |
    $sudo podman import --change 'CMD ["bash"]' - "$BASE" >/dev/null

  # The -slim variant: no docs, man pages or locales, now or later (the same
  # dpkg path-excludes as the official slim image).
  $sudo tee "$root/etc/dpkg/dpkg.cfg.d/docker" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  $sudo find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  $sudo find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  $sudo rm -rf "$root"/usr/share/{groff,info,linda,locale,man}/* \
    "$root"/usr/share/lintian/overrides/*
  $sudo tar -C "$root" --numeric-owner -c . |
    $sudo podman import --change 'CMD ["bash"]' - "$BASE_SLIM" >/dev/null
  $sudo rm -rf "$root"
  rootfs=""
  # Base images replaced by REBUILD_BASE=1 (fails harmlessly while in use).
  # shellcheck disable=SC2086 # one ID per word
  [ -z "$old_bases" ] || $sudo podman rmi $old_bases >/dev/null 2>&1 || true
}

step "base images: $BASE, $BASE_SLIM"
if [ "${REBUILD_BASE:-0}" = 1 ] || ! $sudo podman image exists "$BASE" ||
   ! $sudo podman image exists "$BASE_SLIM"; then
  make_bases
else
  echo "reusing the cached base images (REBUILD_BASE=1 recreates them)"
fi
$sudo podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -F library/debian:

# --- 3. build -------------------------------------------------------------
step "build: podman build --isolation=chroot --pull=never -t $IMAGE ."
old_id=$($sudo podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
version=$(sed -nE 's/^project\([^)]*VERSION ([0-9.]+).*/\1/p' CMakeLists.txt | head -n1)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
start=$SECONDS
timeout "$BUILD_TIMEOUT" $sudo podman build --isolation=chroot --pull=never \
  --build-arg "VERSION=${version:-0.0.0}" --build-arg "REVISION=$revision" \
  -t "$IMAGE" . || fail "podman build (exit $?)"
echo "built $IMAGE in $((SECONDS - start)) s"
new_id=$($sudo podman image inspect --format '{{.Id}}' "$IMAGE")
# Disk hygiene on a machine that is kept: drop the previous image and the
# build stage's layers (~650 MB a build). The bases stay; the next build
# reinstalls the build packages (about 30 s here) and ccache, in a build
# cache mount, keeps its recompile short.
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  $sudo podman rmi "$old_id" >/dev/null 2>&1 || true
fi
$sudo podman image prune -f --filter label=io.connyline.campaign-gateway.stage=build >/dev/null 2>&1 || true

# --- 4. size --------------------------------------------------------------
step "size"
bytes=$($sudo podman image inspect --format '{{.Size}}' "$IMAGE")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
echo "image size: $IMAGE = $bytes bytes = $mb MB (limit $MAX_IMAGE_MB MB)"
((bytes < MAX_IMAGE_MB * 1000000)) || fail "image is $mb MB, limit $MAX_IMAGE_MB MB"

# --- 5. image config ------------------------------------------------------
step "image config"
user=$($sudo podman image inspect --format '{{.Config.User}}' "$IMAGE")
entrypoint=$($sudo podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")
ports=$($sudo podman image inspect --format '{{json .Config.ExposedPorts}}' "$IMAGE")
echo "USER=$user ENTRYPOINT=$entrypoint EXPOSE=$ports"
[[ $user =~ ^[0-9]+(:[0-9]+)?$ && ${user%%:*} != 0 ]] || fail "USER must be a numeric non-root uid, got '$user'"
[ "$entrypoint" = '["/usr/local/bin/campaign-gateway"]' ] || fail "ENTRYPOINT is $entrypoint"
[[ $ports == *50051/tcp* && $ports == *9090/tcp* ]] || fail "EXPOSE must list 50051 and 9090"

# --- 6. run ---------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60000 -n 1
}

step "run: buildah from $IMAGE; buildah run --isolation=chroot --network=host"
ctr=$($sudo buildah from --pull-never "$IMAGE")
grpc_port=$(free_port) admin_port=$(free_port)
while [ "$admin_port" = "$grpc_port" ]; do admin_port=$(free_port); done
addr=127.0.0.1:$grpc_port

# No shell in the image, so its file system is inspected from the host.
mnt=$($sudo buildah mount "$ctr")
echo "\$ find <image> -type f | wc -l  (mounted at $mnt)"
$sudo find "$mnt" -xdev -type f | wc -l
for f in bin/sh bin/bash usr/bin/sh usr/bin/bash bin/busybox usr/bin/apt \
  usr/bin/apt-get usr/bin/dpkg bin/su usr/bin/sudo usr/bin/cc usr/bin/gcc \
  usr/bin/ld usr/bin/clang; do
  if $sudo test -e "$mnt/$f" || $sudo test -L "$mnt/$f"; then
    $sudo buildah umount "$ctr" >/dev/null; fail "/$f is in the runtime image"
  fi
done
setuid=$($sudo find "$mnt" -xdev -perm /6000 -type f)
packages=$($sudo find "$mnt/var/lib/dpkg" -maxdepth 0 2>/dev/null || true)
$sudo buildah umount "$ctr" >/dev/null
[ -z "$setuid" ] || fail "setuid/setgid files in the image: $setuid"
[ -z "$packages" ] || fail "a dpkg database is in the image"
echo "no shell, package manager, compiler or setuid file in the image"

# Sandbox mode (--sandbox); the time zone comes from the environment
# like in Kubernetes, which also proves tzdata is in the image.
echo "\$ campaign-gateway --listen $addr --admin_listen 127.0.0.1:$admin_port  (sandbox mode, CAMPAIGN_GATEWAY_TIME_ZONE=Europe/Athens)"
$sudo buildah run --isolation=chroot --network=host \
  --env CAMPAIGN_GATEWAY_TIME_ZONE=Europe/Athens "$ctr" -- \
  /usr/local/bin/campaign-gateway --sandbox --listen "$addr" \
  --admin_listen "127.0.0.1:$admin_port" --shutdown_drain 1s --shutdown_timeout 5s \
  >"$log" 2>&1 &
gw_pid=$!

ctl() { timeout 15 $sudo buildah run --isolation=chroot --network=host "$ctr" -- \
  /usr/local/bin/campaignctl --addr "$addr" "$@"; }
deadline=$((SECONDS + 60))
until ctl health >/dev/null 2>&1; do
  if ! kill -0 "$gw_pid" 2>/dev/null; then cat "$log" >&2; fail "the gateway exited early"; fi
  if ((SECONDS > deadline)); then cat "$log" >&2; fail "no healthy answer within 60 s"; fi
  sleep 1
done

echo "\$ campaignctl --addr $addr health"
ctl health || fail "campaignctl health"
echo "\$ campaignctl --addr $addr --service campaigns.v1.CampaignService health  (what the readinessProbe asks)"
ctl --service campaigns.v1.CampaignService health || fail "campaignctl health for campaigns.v1.CampaignService"
echo "\$ campaignctl --addr $addr lists"
ctl lists || fail "campaignctl lists"

# The gateway process, seen from the host: a descendant of buildah run.
gw_proc=""
for p in $(descendants "$gw_pid"); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = campaign-gatewa ] && gw_proc=$p
done
[ -n "$gw_proc" ] || fail "cannot find the campaign-gateway process"
proc_uid=$(awk '/^Uid:/ {print $2}' "/proc/$gw_proc/status")
echo "campaign-gateway runs as pid $gw_proc, uid $proc_uid"
[ "$proc_uid" != 0 ] || fail "campaign-gateway runs as root"

if command -v curl >/dev/null; then
  echo "\$ curl http://127.0.0.1:$admin_port/metrics | head"
  metrics=$(curl -fsS --max-time 10 "http://127.0.0.1:$admin_port/metrics") ||
    fail "no /metrics on the admin port"
  head -n 5 <<<"$metrics"
  echo "... ($(wc -l <<<"$metrics") lines)"
fi

step "stop: SIGTERM to campaign-gateway, expecting exit 0"
kill -TERM "$gw_proc"
rc=0
timeout 30 tail --pid="$gw_proc" -f /dev/null || fail "still running 30 s after SIGTERM"
wait "$gw_pid" || rc=$?
gw_pid=""
echo "--- gateway log (last lines) ---"
tail -n 8 "$log"
echo "---"
[ "$rc" = 0 ] || fail "campaign-gateway exited with status $rc after SIGTERM"

step "container-test: OK ($IMAGE, $mb MB, uid $proc_uid)"
