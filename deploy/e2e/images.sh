#!/usr/bin/env bash
# deploy/e2e/images.sh: Docker Compose v2 and every image deploy/compose.yaml
# pins, on a host that may have no registry.
#
#   deploy/e2e/images.sh [-o REPORT]
#   deploy/e2e/images.sh --compose-only   # only the Compose plugin (.ci/run,
#                                         # before make test needs it)
#
# For each third-party image compose.yaml pins, in this order:
#   1. the image already present under that exact tag is used as it is;
#   2. else `docker pull` is tried;
#   3. else, where the image is built from an Apache-2.0 Go module, a local
#      image is built under that exact tag from the same release's module:
#      a static binary (CGO_ENABLED=0) FROM scratch, with the upstream
#      image's user, entrypoint, paths, default flags and version, so the
#      stack's own configuration runs unchanged (deploy/e2e/images/);
#   4. else the service is a stand-in (Loki: the in-repo Loki test server,
#      under its own name) or is left out (Grafana, Tempo, Pyroscope: AGPL,
#      never built from source here; cAdvisor: its command module is not on
#      the module proxy).
# Built images carry org.hy-home.e2e.key, a hash of the module version and
# the recipe; they are rebuilt only when that changes, and never removed by
# the e2e run. When `docker compose version` fails, the Compose plugin is
# built from github.com/docker/compose/v5 into the docker CLI's plugin
# directory, once.
#
# REPORT gets one line per service: "<service> <real|built|stand-in|left-out>
# <image> <why>"; deploy/e2e/e2e.sh reads it to write the run's override.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
deploy=$(dirname "$here")
root=$(dirname "$deploy")
compose_file=$deploy/compose.yaml
report=/dev/stdout
compose_only=
while [ $# -gt 0 ]; do
  case $1 in
    -o) report=$2; shift 2 ;;
    --compose-only) compose_only=1; shift ;;
    *) echo "usage: $0 [-o REPORT] | --compose-only" >&2; exit 2 ;;
  esac
done

DOCKER=${DOCKER:-docker}
GO=${GO:-go}
COMPOSE_MODULE_VERSION=${HYHOME_COMPOSE_VERSION:-v5.6.0}
BUSYBOX=${HYHOME_BUSYBOX:-/bin/busybox}
# Module copies and build contexts; removed when the script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/hyhome-e2e-images.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

log() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

# pinned SERVICE prints the image compose.yaml pins for SERVICE.
pinned() {
  awk -v svc="$1" '
    /^  [a-z0-9-]+:$/ { in_svc = ($1 == svc ":") }
    in_svc && /^    image: / { print $2; exit }
  ' "$compose_file"
}

# ---------------------------------------------------------------------------
# Docker Compose v2

plugin_dir() {
  # The docker CLI looks in $DOCKER_CONFIG/cli-plugins first, then the
  # system directories; the user's own directory needs no root.
  printf '%s/cli-plugins' "${DOCKER_CONFIG:-$HOME/.docker}"
}

ensure_compose() {
  if $DOCKER compose version >/dev/null 2>&1; then
    log "compose: $($DOCKER compose version --short 2>/dev/null || $DOCKER compose version)"
    return
  fi
  local dir mod src start=$SECONDS
  dir=$(plugin_dir)
  mod=github.com/docker/compose/v5
  log "compose: \`$DOCKER compose\` is missing; building $mod@$COMPOSE_MODULE_VERSION into $dir"
  src=$(module_copy "$mod" "$COMPOSE_MODULE_VERSION")
  mkdir -p "$dir"
  (cd "$src" && go_build "$work/docker-compose" "" \
    "-X $mod/internal.Version=$COMPOSE_MODULE_VERSION" ./cmd)
  install -m 0755 "$work/docker-compose" "$dir/docker-compose"
  $DOCKER compose version >/dev/null || die "compose: built, but \`$DOCKER compose version\` still fails"
  log "compose: $($DOCKER compose version), built in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------
# Building from Go modules

# module_copy MODULE VERSION downloads the module and prints a writable copy
# of its source: modules with replace or exclude directives only build as the
# main module, inside their own tree.
module_copy() {
  local mod=$1 ver=$2 dir dst
  dir=$(GOWORK=off GOFLAGS=-mod=mod $GO mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ] || die "$mod@$ver: go mod download gave no source directory (is this version on the module proxy?)"
  dst=$work/src/$(echo "$mod@$ver" | tr '/@' '__')
  mkdir -p "$(dirname "$dst")"
  cp -r "$dir" "$dst"
  chmod -R u+w "$dst"
  printf '%s\n' "$dst"
}

# go_build OUT TAGS LDFLAGS PKG... builds static binaries as the upstream
# release does (promu and the Traefik Makefile: -trimpath, -s -w, the
# version through -X). OUT is a file for one package, a directory for more.
go_build() {
  local out=$1 tags=$2 ldflags=$3
  shift 3
  GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
    $GO build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$out" "$@"
}

# A busybox for the images whose upstream base has one (Prometheus' busybox
# base, Traefik's Alpine): sh and wget for the stack's healthchecks.
stage_busybox() {
  local ctx=$1
  [ -x "$BUSYBOX" ] || die "no static busybox at $BUSYBOX (Debian: apt-get install busybox-static; or set HYHOME_BUSYBOX)"
  mkdir -p "$ctx/rootfs/bin"
  cp "$BUSYBOX" "$ctx/rootfs/bin/busybox"
  local applet
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$ctx/rootfs/bin/$applet"
  done
}

# The passwd and group files of Prometheus' busybox base: USER nobody
# resolves through them.
stage_passwd() {
  local ctx=$1
  mkdir -p "$ctx/rootfs/etc"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$ctx/rootfs/etc/group"
}

# recipe_key NAME MODULE VERSION: what a built image is keyed on: the
# module version, the Dockerfile and every function that shapes the image's
# content. The Go toolchain is not part of it: a new Go does not make a
# release different.
recipe_key() {
  {
    printf '%s %s %s\n' "$1" "$2" "$3"
    cat "$here/images/$1.Dockerfile"
    declare -f "build_$1" module_copy go_build stage_busybox stage_passwd prom_ldflags
  } | sha256sum | cut -c1-16
}

image_key() {
  $DOCKER image inspect -f '{{index .Config.Labels "org.hy-home.e2e.key"}}' "$1" 2>/dev/null || true
}

# ensure_image SERVICE NAME MODULE VERSION: the pinned image of SERVICE,
# present, pulled or built by build_NAME.
ensure_image() {
  local svc=$1 name=$2 mod=$3 ver=$4 image key have
  image=$(pinned "$svc")
  [ -n "$image" ] || die "$svc: no image: line in $compose_file"
  key=$(recipe_key "$name" "$mod" "$ver")
  if $DOCKER image inspect "$image" >/dev/null 2>&1; then
    have=$(image_key "$image")
    if [ -z "$have" ]; then
      log "$svc: $image present (not built here): used as it is"
      echo "$svc real $image present" >>"$report"
      return
    fi
    if [ "$have" = "$key" ]; then
      log "$svc: $image built here earlier from $mod@$ver (key $key)"
      echo "$svc built $image from $mod@$ver, cached" >>"$report"
      return
    fi
    log "$svc: $image was built from another recipe (key $have, want $key): rebuilding"
  elif try_pull "$image"; then
    echo "$svc real $image pulled" >>"$report"
    return
  fi
  local ctx=$work/ctx-$name start=$SECONDS
  mkdir -p "$ctx/rootfs"
  log "$svc: building $image from $mod@$ver"
  "build_$name" "$ctx" "$mod" "$ver"
  docker_build "$image" "$name" "$ctx" \
    --label "org.hy-home.e2e.key=$key" \
    --label "org.hy-home.e2e.source=$mod@$ver" \
    --label "org.opencontainers.image.version=$ver"
  log "$svc: built $image in $((SECONDS - start)) s"
  echo "$svc built $image from $mod@$ver, in $((SECONDS - start)) s" >>"$report"
}

# docker_build TAG NAME CONTEXT [ARGS...]: the image from
# images/NAME.Dockerfile. The image the tag named before, when this script
# built it, is removed once the tag has moved: rebuilding after a version
# change leaves no dangling image behind.
docker_build() {
  local tag=$1 name=$2 ctx=$3 old
  shift 3
  old=$($DOCKER image inspect -f '{{.Id}} {{index .Config.Labels "org.hy-home.e2e.key"}}' "$tag" 2>/dev/null || true)
  if ! $DOCKER build -q -t "$tag" -f "$here/images/$name.Dockerfile" "$@" "$ctx" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    die "building $tag failed"
  fi
  # Every image has a busybox: it must run in the image, which has no
  # dynamic loader (a dynamically linked busybox would not).
  if ! $DOCKER run --rm --network none --entrypoint /bin/busybox "$tag" true >/dev/null 2>&1; then
    $DOCKER image rm "$tag" >/dev/null 2>&1 || true
    die "$tag: /bin/busybox does not run in the image: is $BUSYBOX statically linked?"
  fi
  set -- $old
  if [ $# -eq 2 ] && [ "$1" != "$($DOCKER image inspect -f '{{.Id}}' "$tag")" ]; then
    $DOCKER image rm "$1" >/dev/null 2>&1 || true
  fi
}

try_pull() {
  # A registry that is not there fails fast; a slow one gets a minute.
  if [ "${HYHOME_E2E_PULL:-1}" = 0 ]; then return 1; fi
  if timeout 60 $DOCKER pull -q "$1" >/dev/null 2>&1; then
    log "pulled $1"
    return 0
  fi
  log "$1: not present and not pullable"
  return 1
}

# prometheus/common/version, as promu sets it.
prom_ldflags() {
  local v=github.com/prometheus/common/version
  printf -- '-X %s.Version=%s -X %s.Revision=%s -X %s.Branch=HEAD -X %s.BuildUser=hyhome-e2e -X %s.BuildDate=%s' \
    "$v" "$1" "$v" "module-$2" "$v" "$v" "$v" "$(date -u +%Y%m%d-%H:%M:%S)"
}

# Prometheus: the module's v0.MMmmm.p is release vM.mm.p. Built without
# the builtinassets tag: the web UI's npm-built assets are not in the module,
# so /graph and the other UI pages are empty (the API and /metrics work).
build_prometheus() {
  local ctx=$1 src
  src=$(module_copy "$2" "$3")
  mkdir -p "$ctx/rootfs/bin" "$ctx/config" "$ctx/data/prometheus"
  chmod 0775 "$ctx/data/prometheus"
  (cd "$src" && go_build "$ctx/rootfs/bin/" netgo "$(prom_ldflags "${PROMETHEUS_VERSION#v}" "$3")" ./cmd/prometheus ./cmd/promtool)
  cp "$src/documentation/examples/prometheus.yml" "$ctx/config/prometheus.yml"
  cp "$src/LICENSE" "$src/NOTICE" "$ctx/rootfs/"
  stage_busybox "$ctx"
  stage_passwd "$ctx"
}

# Alertmanager: its UI is built with npm and is not in the module, so the
# web UI is empty (the API, /metrics and notifications work).
build_alertmanager() {
  local ctx=$1 src
  src=$(module_copy "$2" "$3")
  # ui/web.go embeds ui/app/dist, which npm builds: one page saying so.
  mkdir -p "$src/ui/app/dist"
  printf '<!doctype html><title>Alertmanager</title><p>This Alertmanager was built from its Go module without its web UI (npm-built assets are not in the module). The API is at <a href="api/v2/status">api/v2</a>.\n' >"$src/ui/app/dist/index.html"
  mkdir -p "$ctx/rootfs/bin" "$ctx/config" "$ctx/data/alertmanager"
  chmod 0775 "$ctx/data/alertmanager"
  (cd "$src" && go_build "$ctx/rootfs/bin/" netgo "$(prom_ldflags "${3#v}" "$3")" ./cmd/alertmanager ./cmd/amtool)
  cp "$src/examples/ha/alertmanager.yml" "$ctx/config/alertmanager.yml"
  stage_busybox "$ctx"
  stage_passwd "$ctx"
}

build_node_exporter() {
  local ctx=$1 src
  src=$(module_copy "$2" "$3")
  mkdir -p "$ctx/rootfs/bin"
  (cd "$src" && go_build "$ctx/rootfs/bin/node_exporter" netgo "$(prom_ldflags "${3#v}" "$3")" .)
  stage_busybox "$ctx"
  stage_passwd "$ctx"
}

# Traefik: the Docker library image (Alpine, /usr/local/bin/traefik, its
# /entrypoint.sh, CA certificates and tzdata), with the version, codename and
# date the Traefik Makefile sets.
build_traefik() {
  local ctx=$1 src codename
  src=$(module_copy "$2" "$3")
  codename=$(sed -n 's/^CODENAME ?= *//p' "$src/Makefile")
  mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/usr/share"
  local v=github.com/traefik/traefik/v3/pkg/version
  (cd "$src" && go_build "$ctx/rootfs/usr/local/bin/traefik" "" \
    "-X $v.Version=$3 -X $v.Codename=${codename:-cheddar} -X $v.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/traefik)
  cp "$here/images/traefik-entrypoint.sh" "$ctx/rootfs/entrypoint.sh"
  chmod 0755 "$ctx/rootfs/entrypoint.sh"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt" ||
    die "no /etc/ssl/certs/ca-certificates.crt (Debian: apt-get install ca-certificates)"
  if [ -d /usr/share/zoneinfo ]; then cp -r /usr/share/zoneinfo "$ctx/rootfs/usr/share/zoneinfo"; fi
  stage_busybox "$ctx"
}

# The Loki stand-in: the in-repo Loki test server (internal/lokitest) behind
# a small command, under its own image name, never grafana/loki's.
build_loki_standin() {
  local ctx=$1
  mkdir -p "$ctx/rootfs"
  (cd "$root" && CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w" -o "$ctx/rootfs/loki-standin" ./deploy/tools/loki-standin)
  stage_busybox "$ctx"
}

# ---------------------------------------------------------------------------

if [ -n "$compose_only" ]; then
  ensure_compose
  exit 0
fi
: >"$report"
ensure_compose

PROMETHEUS_VERSION=$(pinned prometheus | sed 's/.*://')
prom_module_version() { # v3.13.1 -> v0.313.1
  local v=${1#v} maj min patch
  IFS=. read -r maj min patch <<<"$v"
  printf 'v0.%d%02d.%s' "$maj" "$min" "$patch"
}
ensure_image prometheus prometheus github.com/prometheus/prometheus "$(prom_module_version "$PROMETHEUS_VERSION")"
ensure_image alertmanager alertmanager github.com/prometheus/alertmanager "$(pinned alertmanager | sed 's/.*://')"
ensure_image node-exporter node_exporter github.com/prometheus/node_exporter "$(pinned node-exporter | sed 's/.*://')"
traefik_version=$(pinned traefik | sed 's/.*://')
ensure_image traefik traefik "github.com/traefik/traefik/v${traefik_version:1:1}" "$traefik_version"

# hyhome's own image: `make image` builds it (the e2e target depends on it).
hy=${HYHOME_IMAGE:-hyhome:$(sed -n 's/^const Release = "\(.*\)"$/\1/p' "$root/internal/version/version.go")}
$DOCKER image inspect "$hy" >/dev/null 2>&1 || die "$hy is missing: run \`make image\` first"
for svc in guard ship audit; do echo "$svc real $hy the project's image" >>"$report"; done

# Not built from source here: the image as pinned, or nothing.
for svc in loki grafana tempo pyroscope cadvisor; do
  image=$(pinned "$svc")
  if $DOCKER image inspect "$image" >/dev/null 2>&1 || try_pull "$image"; then
    echo "$svc real $image present" >>"$report"
    continue
  fi
  case $svc in
    loki)
      standin=hyhome-loki-standin:local
      key=$(recipe_key loki_standin in-repo "$(cd "$root" && cat internal/lokitest/*.go deploy/tools/loki-standin/*.go | sha256sum | cut -c1-16)")
      if [ "$(image_key "$standin")" != "$key" ]; then
        ctx=$work/ctx-loki-standin
        mkdir -p "$ctx"
        build_loki_standin "$ctx"
        docker_build "$standin" loki_standin "$ctx" --label "org.hy-home.e2e.key=$key"
        log "loki: built the stand-in $standin"
      fi
      echo "loki stand-in $standin $image is absent: the in-repo Loki test server (memory only) takes its place" >>"$report"
      ;;
    cadvisor) echo "cadvisor left-out $image absent, and its command module is not on the module proxy" >>"$report" ;;
    *) echo "$svc left-out $image absent; AGPL, never built from source here" >>"$report" ;;
  esac
done
