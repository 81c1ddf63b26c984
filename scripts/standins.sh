#!/usr/bin/env bash
# standins.sh: build the lab's stand-in images for a Docker engine that cannot pull (no registry), cached.
#
# Usage: scripts/standins.sh [--force] [IMAGE...]
#   IMAGE is any of: otelcol-contrib, prometheus, alertmanager, loki, jaeger (tagged exactly as
#   docker-compose.yml pins them) and minishop, payment-gateway, loadgen, slack-mock, healthprobe (tagged minishop-lab/NAME:standin,
#   used through standins/compose.yaml). Default: all of them.
#   --force rebuilds even when an image's inputs did not change.
#
# Then: COMPOSE_FILE=docker-compose.yml:standins/compose.yaml ./task up   (every service but grafana)
#
# Each image is standins/NAME.Dockerfile: FROM scratch, built with the classic builder (DOCKER_BUILDKIT=0:
# no buildx needed, nothing pulled) from a context directory laid out here under
# ${MINISHOP_TOOLS_DIR:-$HOME/.cache/minishop-lab}/standins/NAME. The programs are the native builds of
# scripts/native-tools.sh (static), and this repo's own programs built here with CGO_ENABLED=0; busybox (for
# prometheus, alertmanager, jaeger) is Debian's busybox-static, /bin/busybox (apt-get install busybox-static).
#
# Cache: every image carries a label with the hash of its Dockerfile and of its whole context (file contents,
# modes, links). An image whose label matches is not rebuilt, so a second run takes seconds; a change in this
# repo's code rebuilds only its images (go build + docker build, seconds).
# shellcheck disable=SC2317 # functions called by name ("prepare_$name") are reachable
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${MINISHOP_TOOLS_DIR:-$HOME/.cache/minishop-lab}
BIN=$TOOLS_DIR/bin
CTX_ROOT=$TOOLS_DIR/standins
DOCKERFILES=$REPO/standins
BUSYBOX=${BUSYBOX:-/bin/busybox}
CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL=org.minishop-lab.standin.inputs

ALL_IMAGES=(otelcol-contrib prometheus alertmanager loki jaeger minishop payment-gateway loadgen slack-mock healthprobe)

# The classic builder: buildx is not required, and FROM scratch needs no registry.
export DOCKER_BUILDKIT=0
export CGO_ENABLED=0 GOWORK=off

force=0

usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
log() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'standins.sh: error: %s\n' "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# tag_of NAME: the tag of the stand-in for NAME.
tag_of() {
	case $1 in
	otelcol-contrib) echo otel/opentelemetry-collector-contrib:0.161.0 ;;
	prometheus) echo prom/prometheus:v3.16.0 ;;
	alertmanager) echo prom/alertmanager:v0.35.0 ;;
	loki) echo grafana/loki:3.7.8 ;;
	jaeger) echo jaegertracing/jaeger:2.13.0 ;;
	minishop | payment-gateway | loadgen | slack-mock | healthprobe) echo "minishop-lab/$1:standin" ;;
	*) return 1 ;;
	esac
}

# put SRC DEST: DEST (in a context) gets SRC's content and mode; a hard link where possible (binaries are big;
# nothing here changes a file it put).
put() {
	mkdir -p "$(dirname "$2")"
	rm -f "$2"
	ln "$1" "$2" 2>/dev/null || cp -p "$1" "$2"
}

# write DEST MODE: DEST gets stdin, with MODE.
write() {
	mkdir -p "$(dirname "$1")"
	cat >"$1"
	chmod "$2" "$1"
}

# emptydir DIR MODE
emptydir() {
	mkdir -p "$1"
	chmod "$2" "$1"
}

certs() { put "$CA_CERTS" "$1/etc/ssl/certs/ca-certificates.crt"; }

# busybox ROOT: /bin/busybox and a link to it for every applet (sh, wget, ls, ...), as in the busybox image.
busybox() {
	local root=$1 applet
	put "$BUSYBOX" "$root/bin/busybox"
	for applet in $("$BUSYBOX" --list); do
		[[ $applet == busybox ]] || ln -sfn busybox "$root/bin/$applet"
	done
}

# users ROOT LINE...: /etc/passwd with root, nobody and the given lines; /etc/group to match.
users() {
	local root=$1 line name gid
	shift
	{
		echo 'root:x:0:0:root:/root:/bin/sh'
		echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false'
		for line in "$@"; do echo "$line"; done
	} | write "$root/etc/passwd" 644
	{
		echo 'root:x:0:'
		echo 'nobody:x:65534:'
		for line in "$@"; do
			IFS=: read -r name _ _ gid _ <<<"$line"
			echo "$name:x:$gid:"
		done
	} | write "$root/etc/group" 644
}

# module_dir MODULE@VERSION: the module's directory in the Go module cache (downloaded if needed).
module_dir() {
	go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

# A context has rootfs/ (COPY rootfs/ /: root-owned, modes kept, e.g. /tmp 1777) and, where the image has
# directories owned by its user, owned/ (COPY --chown owned/ /: the top-level data directory) and config/
# (COPY --chown config/ /etc/NAME/).

# The busybox base of quay.io/prometheus/busybox: busybox, CA certificates, nsswitch.conf, root and nobody.
prometheus_base() {
	local root=$1
	busybox "$root"
	certs "$root"
	users "$root"
	printf 'hosts: files dns\nnetworks: files\n' | write "$root/etc/nsswitch.conf" 644
	[[ ! -f /etc/services ]] || put /etc/services "$root/etc/services"
}

# distroless static: CA certificates, /tmp, root, nobody and nonroot (65532).
distroless_base() {
	local root=$1
	shift
	certs "$root"
	users "$root" 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' "$@"
	emptydir "$root/tmp" 1777
}

prepare_otelcol-contrib() {
	local root=$1/rootfs
	certs "$root"
	install -D -m 755 "$BIN/otelcol-minishop" "$root/otelcol-contrib"
	write "$root/etc/otelcol-contrib/config.yaml" 644 <<-'EOF'
		# Default config of the stand-in (docker-compose.yml mounts collector/config.yaml over it).
		receivers:
		  otlp:
		    protocols:
		      grpc:
		        endpoint: 0.0.0.0:4317
		      http:
		        endpoint: 0.0.0.0:4318
		exporters:
		  debug: {}
		service:
		  pipelines:
		    traces: { receivers: [otlp], exporters: [debug] }
		    metrics: { receivers: [otlp], exporters: [debug] }
		    logs: { receivers: [otlp], exporters: [debug] }
	EOF
}

prepare_prometheus() {
	local ctx=$1 mod
	prometheus_base "$ctx/rootfs"
	put "$BIN/prometheus" "$ctx/rootfs/bin/prometheus"
	put "$BIN/promtool" "$ctx/rootfs/bin/promtool"
	mod=$(module_dir github.com/prometheus/prometheus@v0.316.0)
	install -D -m 644 "$mod/documentation/examples/prometheus.yml" "$ctx/config/prometheus.yml"
	emptydir "$ctx/owned/prometheus" 775
}

prepare_alertmanager() {
	local ctx=$1 mod
	prometheus_base "$ctx/rootfs"
	put "$BIN/alertmanager" "$ctx/rootfs/bin/alertmanager"
	put "$BIN/amtool" "$ctx/rootfs/bin/amtool"
	mod=$(module_dir github.com/prometheus/alertmanager@v0.35.0)
	install -D -m 644 "$mod/examples/ha/alertmanager.yml" "$ctx/config/alertmanager.yml"
	emptydir "$ctx/owned/alertmanager" 775
}

prepare_loki() {
	local ctx=$1 mod
	distroless_base "$ctx/rootfs" 'loki:x:10001:10001::/home/loki:/bin/sh'
	put "$BIN/loki" "$ctx/rootfs/usr/bin/loki"
	mod=$(module_dir github.com/grafana/loki/v3@v3.7.8)
	install -D -m 644 "$mod/cmd/loki/loki-docker-config.yaml" "$ctx/config/local-config.yaml"
	emptydir "$ctx/owned/loki/rules" 755
	emptydir "$ctx/owned/loki/rules-temp" 755
	chmod 755 "$ctx/owned/loki"
}

prepare_jaeger() {
	local root=$1/rootfs mod
	busybox "$root"
	certs "$root"
	users "$root"
	[[ ! -f /etc/mime.types ]] || put /etc/mime.types "$root/etc/mime.types"
	emptydir "$root/tmp" 1777
	put "$BIN/jaeger" "$root/cmd/jaeger/jaeger-linux"
	# The version tools/jaeger/go.mod pins (the one native-tools.sh built).
	mod=$(cd "$REPO/tools/jaeger" && go list -m -f '{{.Dir}}' github.com/jaegertracing/jaeger)
	[[ -n $mod ]] || die "jaeger: module directory not found (run scripts/native-tools.sh jaeger)"
	install -D -m 644 "$mod/cmd/jaeger/sampling-strategies.json" "$root/cmd/jaeger/sampling-strategies.json"
}

# This repo's programs, built as the Dockerfile builds them. Go's cache makes an unchanged build take seconds,
# and the same sources give the same binary, so the image is rebuilt only when the program changed.
go_build_own() {
	local out=$1 pkg=$2
	(cd "$REPO" && go build -trimpath -ldflags="-s -w" -o "$out" "$pkg")
}

prepare_own() {
	local root=$1/rootfs name=$2 pkg=$3
	distroless_base "$root"
	go_build_own "$root/healthprobe" ./healthprobe
	[[ $name == healthprobe ]] || go_build_own "$root/$name" "$pkg"
}

prepare_minishop() { prepare_own "$1" minishop .; }
prepare_payment-gateway() { prepare_own "$1" payment-gateway ./paymentgw; }
prepare_loadgen() { prepare_own "$1" loadgen ./loadgen; }
prepare_slack-mock() { prepare_own "$1" slack-mock ./slackmock; }
prepare_healthprobe() { prepare_own "$1" healthprobe ./healthprobe; }

# inputs_hash CTX DOCKERFILE: hash of the Dockerfile and of every path in the context (type, mode, link
# target, content).
inputs_hash() {
	local ctx=$1 dockerfile=$2
	{
		sha256sum <"$dockerfile"
		(cd "$ctx" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %F %a %N' &&
			find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -c1-32
}

build_image() {
	local name=$1 tag ctx dockerfile key have old
	tag=$(tag_of "$name")
	dockerfile=$DOCKERFILES/$name.Dockerfile
	[[ -f $dockerfile ]] || die "$dockerfile not found"
	ctx=$CTX_ROOT/$name
	rm -rf "$ctx"
	mkdir -p "$ctx"
	"prepare_$name" "$ctx"
	key=$(inputs_hash "$ctx" "$dockerfile")
	have=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$tag" 2>/dev/null || true)
	if [[ $force == 0 && $have == "$key" ]]; then
		note "$tag up to date"
		return
	fi
	old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
	note "docker build $tag"
	# Output to a log (the classic builder's deprecation notice is noise here), shown if the build fails.
	docker build -f "$dockerfile" --label "$LABEL=$key" -t "$tag" "$ctx" >"$ctx.build.log" 2>&1 || {
		cat "$ctx.build.log" >&2
		die "docker build $tag failed"
	}
	# The replaced stand-in, if nothing else uses it (rmi refuses images that a container or tag still uses).
	if [[ -n $old && $old != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
		docker rmi "$old" >/dev/null 2>&1 || true
	fi
}

# check_pins: the third-party tags must be the ones docker-compose.yml pins (else the stand-ins would not be used).
check_pins() {
	local name tag
	for name in otelcol-contrib prometheus alertmanager loki jaeger; do
		tag=$(tag_of "$name")
		grep -q "^[[:space:]]*image: $tag\$" "$REPO/docker-compose.yml" ||
			die "docker-compose.yml does not pin $tag: update scripts/standins.sh and scripts/native-tools.sh to its version"
	done
}

main() {
	local selected=() name start total_start
	while [[ $# -gt 0 ]]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		-f | --force) force=1 ;;
		*)
			tag_of "$1" >/dev/null || {
				usage >&2
				die "unknown image '$1'"
			}
			selected+=("$1")
			;;
		esac
		shift
	done
	[[ ${#selected[@]} -gt 0 ]] || selected=("${ALL_IMAGES[@]}")

	command -v docker >/dev/null || die "docker is required"
	docker version --format '{{.Server.Version}}' >/dev/null || die "no Docker engine answers (docker version)"
	[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: apt-get install busybox-static (or set BUSYBOX to a static busybox)"
	# Debian's plain busybox package is linked against libc, which a FROM-scratch image does not have.
	! ldd "$BUSYBOX" >/dev/null 2>&1 || die "$BUSYBOX is dynamically linked: apt-get install busybox-static (or set BUSYBOX)"
	[[ -f $CA_CERTS ]] || die "$CA_CERTS not found: apt-get install ca-certificates"
	check_pins

	# The native programs the third-party stand-ins carry (cached: seconds when built already).
	local tools=()
	for name in "${selected[@]}"; do
		case $name in
		otelcol-contrib) tools+=(otelcol) ;;
		prometheus) tools+=(prometheus) ;;
		alertmanager) tools+=(alertmanager amtool) ;;
		loki | jaeger) tools+=("$name") ;;
		esac
	done
	if [[ ${#tools[@]} -gt 0 ]]; then
		"$REPO/scripts/native-tools.sh" "${tools[@]}"
	fi

	log "stand-in images (docker $(docker version --format '{{.Server.Version}}'), contexts in $CTX_ROOT)"
	total_start=$(now)
	for name in "${selected[@]}"; do
		start=$(now)
		build_image "$name"
		note "$name done in $(elapsed "$start")"
	done
	log "stand-ins done in $(elapsed "$total_start")"
	note "run the lab on them: COMPOSE_FILE=docker-compose.yml:standins/compose.yaml ./task up"
}

# One compound command: bash has read all of it before main runs, so an edit to this file during a long run
# (a git pull) cannot make bash read on into changed bytes afterwards.
{ main "$@"; exit; }
