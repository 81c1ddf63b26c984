#!/usr/bin/env bash
# native-tools.sh: install the MiniShop lab's programs natively (no Docker needed), cached.
#
# Usage: scripts/native-tools.sh [--force] [TOOL...]
#   TOOL is any of: prometheus (also promtool), amtool, alertmanager, otelcol (otelcol-minishop),
#   jaeger, loki, task, compose (docker-compose). Default: all of them.
#   --force rebuilds even when the cache stamp says a tool is up to date.
#
# Installs into ${MINISHOP_TOOLS_DIR:-$HOME/.cache/minishop-lab}/bin:
#   prometheus, promtool  go install github.com/prometheus/prometheus/cmd/...@v0.316.0 (= Prometheus 3.16.0)
#   amtool                go install github.com/prometheus/alertmanager/cmd/amtool@v0.35.0
#   alertmanager          Alertmanager v0.35.0, built inside its downloaded module (`go install` does not work: the
#                         UI assets it embeds are not in the module, so a placeholder page stands in for the UI)
#   otelcol-minishop      our Collector distribution: OpenTelemetry Collector Builder v0.161.0 + collector/manifest.yaml
#   jaeger                Jaeger v2 (module v1.76.0 = release 2.13.0), pinned by tools/jaeger/go.mod
#   loki                  Loki 3.7.8, built inside its downloaded module (a separate program, AGPL: never imported
#                         by our modules, its code never committed)
#   task                  go-task v3.54.0, pinned by tools/task/go.mod (./task at the repo root runs it without this)
#   docker-compose        the Compose v2 plugin v2.40.3, built inside its downloaded module (`go install` refuses:
#                         its go.mod has exclude directives), also installed as the docker CLI plugin
#                         (${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose). Skipped when there is no docker
#                         CLI or `docker compose` already is v2.40.3; a compose plugin of another version that
#                         is not ours is left alone (--force replaces it).
#
# Every tool is built with CGO_ENABLED=0: static binaries, like the projects' releases, so the same files
# also go into the FROM-scratch stand-in images (scripts/standins.sh).
#
# Each tool has a stamp in $MINISHOP_TOOLS_DIR/stamps keyed on its version (and on the hash of the manifest or
# go.mod/go.sum that pins it), so a second run takes seconds and editing collector/manifest.yaml rebuilds the
# Collector. Cold builds take minutes (on 2 cores: prometheus ~6 min, jaeger ~4.5 min, loki ~4.5 min,
# collector ~2.5 min, task ~1.5 min, compose ~1.5 min); Go's build cache makes rebuilds much quicker.
# shellcheck disable=SC2317 # functions called by name ("install_$tool") are reachable
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${MINISHOP_TOOLS_DIR:-$HOME/.cache/minishop-lab}
BIN=$TOOLS_DIR/bin
STAMPS=$TOOLS_DIR/stamps
WORK=$TOOLS_DIR/work

PROMETHEUS_VERSION=v0.316.0 # Prometheus 3.16.0 (Go module versions are v0.3MM.P for 3.MM.P)
AMTOOL_VERSION=v0.35.0
ALERTMANAGER_VERSION=v0.35.0
BUILDER_VERSION=v0.161.0 # go.opentelemetry.io/collector/cmd/builder
LOKI_VERSION=v3.7.8
COMPOSE_VERSION=v2.40.3

ALL_TOOLS=(prometheus amtool alertmanager otelcol jaeger loki task compose)

# The tools' own modules must not be affected by a go.work file a user may have.
export GOWORK=off
# Static binaries (see above). Part of every stamp key, so binaries built with cgo get rebuilt once.
export CGO_ENABLED=0
LINK=static

force=0

usage() {
	sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

log() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
	printf 'native-tools.sh: error: %s\n' "$*" >&2
	exit 1
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

hash_files() {
	cat "$@" | sha256sum | cut -c1-16
}

# stamp_ok NAME KEY BINARY...: true when the stamp holds KEY and every binary is executable.
stamp_ok() {
	local name=$1 key=$2
	shift 2
	[[ $force == 0 ]] || return 1
	[[ -f $STAMPS/$name ]] || return 1
	[[ "$(cat "$STAMPS/$name")" == "$key" ]] || return 1
	local b
	for b in "$@"; do
		[[ -x $BIN/$b ]] || return 1
	done
}

write_stamp() { printf '%s\n' "$2" >"$STAMPS/$1"; }

# go_build_tool DIR OUT PKG [FLAG...]: build PKG as pinned by the tool module in DIR, atomically into $BIN/OUT.
go_build_tool() {
	local dir=$1 out=$2 pkg=$3
	shift 3
	(cd "$dir" && go build "$@" -o "$BIN/.$out.tmp" "$pkg")
	mv -f "$BIN/.$out.tmp" "$BIN/$out"
}

install_prometheus() {
	local key="prometheus+promtool $PROMETHEUS_VERSION $LINK"
	if stamp_ok prometheus "$key" prometheus promtool; then
		note "up to date ($PROMETHEUS_VERSION)"
		return
	fi
	note "go install prometheus, promtool $PROMETHEUS_VERSION (cold: ~6 min on 2 cores)"
	GOBIN=$BIN go install \
		"github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
		"github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
	write_stamp prometheus "$key"
}

install_amtool() {
	local key="amtool $AMTOOL_VERSION $LINK"
	if stamp_ok amtool "$key" amtool; then
		note "up to date ($AMTOOL_VERSION)"
		return
	fi
	note "go install amtool $AMTOOL_VERSION"
	GOBIN=$BIN go install "github.com/prometheus/alertmanager/cmd/amtool@$AMTOOL_VERSION"
	write_stamp amtool "$key"
}

# module_copy MODULE@VERSION DIR: download a module from the Go module proxy and copy its files to DIR, writable
# (the module cache is read-only), so it can be built in place with its own go.mod and go.sum.
module_copy() {
	local mod=$1 dir=$2 src
	src=$(go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[[ -n $src && -d $src ]] || die "go mod download $mod: no module directory"
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")"
	cp -R "$src" "$dir"
	chmod -R u+w "$dir"
}

install_alertmanager() {
	local key="alertmanager $ALERTMANAGER_VERSION $LINK"
	if stamp_ok alertmanager "$key" alertmanager; then
		note "up to date ($ALERTMANAGER_VERSION)"
		return
	fi
	local dir=$WORK/alertmanager
	note "go build alertmanager $ALERTMANAGER_VERSION inside its module (cold: ~1.5 min on 2 cores)"
	module_copy "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" "$dir"
	# ui/web.go embeds app/dist (built by npm in a release, not in the module): a placeholder page instead, as
	# index.html.gz (the form ui/web.go serves).
	local ui
	for ui in elm mantine; do
		mkdir -p "$dir/ui/app/dist/$ui"
		printf '<!DOCTYPE html><title>Alertmanager</title><p>Alertmanager %s (MiniShop lab build: no web UI; the API is at <a href="/api/v2/status">/api/v2/</a>).\n' \
			"$ALERTMANAGER_VERSION" | gzip -9n >"$dir/ui/app/dist/$ui/index.html.gz"
	done
	go_build_tool "$dir" alertmanager ./cmd/alertmanager \
		-ldflags "-X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}"
	write_stamp alertmanager "$key"
}

install_loki() {
	local key="loki $LOKI_VERSION $LINK"
	if stamp_ok loki "$key" loki; then
		note "up to date ($LOKI_VERSION)"
		return
	fi
	local dir=$WORK/loki
	note "go build loki $LOKI_VERSION inside its module (cold: ~4.5 min on 2 cores)"
	module_copy "github.com/grafana/loki/v3@$LOKI_VERSION" "$dir"
	# The nested module pkg/push is replaced by ./pkg/push, which is not in the module zip: take the version
	# that go.mod requires from the proxy instead (-mod=mod lets go.sum gain its line).
	(cd "$dir" && go mod edit -dropreplace github.com/grafana/loki/pkg/push)
	go_build_tool "$dir" loki ./cmd/loki -mod=mod -tags netgo \
		-ldflags "-X github.com/grafana/loki/v3/pkg/util/build.Version=${LOKI_VERSION#v}"
	write_stamp loki "$key"
}

install_compose() {
	local want=${COMPOSE_VERSION#v} plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins have
	if ! command -v docker >/dev/null; then
		note "no docker CLI here: skipped (only the compose lab needs it)"
		return
	fi
	have=$(docker compose version --short 2>/dev/null || true)
	if [[ $force == 0 && ${have#v} == "$want" ]]; then
		note "docker compose ${have#v} already installed"
		return
	fi
	if [[ $force == 0 && -n $have ]] && ! cmp -s "$plugins/docker-compose" "$BIN/docker-compose"; then
		note "docker compose ${have#v} is installed and not ours: left alone (the lab is tested with $want; --force installs it)"
		return
	fi
	local key="docker-compose $COMPOSE_VERSION $LINK"
	if ! stamp_ok compose "$key" docker-compose; then
		local dir=$WORK/compose
		note "go build docker compose $COMPOSE_VERSION inside its module (cold: ~1.5 min on 2 cores)"
		module_copy "github.com/docker/compose/v2@$COMPOSE_VERSION" "$dir"
		go_build_tool "$dir" docker-compose ./cmd -trimpath \
			-ldflags "-w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION"
		write_stamp compose "$key"
	fi
	mkdir -p "$plugins"
	cp -f "$BIN/docker-compose" "$plugins/.docker-compose.tmp"
	mv -f "$plugins/.docker-compose.tmp" "$plugins/docker-compose"
	note "installed the docker CLI plugin: $plugins/docker-compose ($(docker compose version --short 2>/dev/null || echo '?'))"
}

install_otelcol() {
	local manifest=$REPO/collector/manifest.yaml
	[[ -f $manifest ]] || die "otelcol: $manifest not found"
	local key
	key="otelcol-minishop builder $BUILDER_VERSION manifest $(hash_files "$manifest") $LINK"
	if stamp_ok otelcol "$key" otelcol-minishop; then
		note "up to date (builder $BUILDER_VERSION, manifest unchanged)"
		return
	fi
	local libexec=$TOOLS_DIR/libexec
	mkdir -p "$libexec"
	if [[ ! -x $libexec/builder ]] || [[ "$(cat "$STAMPS/builder" 2>/dev/null || true)" != "$BUILDER_VERSION" ]]; then
		note "go install go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
		GOBIN=$libexec go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
		write_stamp builder "$BUILDER_VERSION"
	fi
	# The builder writes the generated sources and the binary to dist.output_path; point it at our work dir
	# (a copy of the manifest, so the repo's file stays untouched and the repo tree stays clean).
	local dir=$WORK/otelcol
	mkdir -p "$dir"
	sed "s#^\([[:space:]]*output_path:\).*#\1 $dir/dist#" "$manifest" >"$dir/manifest.yaml"
	grep -q "output_path: $dir/dist" "$dir/manifest.yaml" || die "otelcol: manifest needs a dist.output_path line"
	note "builder --config collector/manifest.yaml (cold: ~2.5 min on 2 cores)"
	"$libexec/builder" --config "$dir/manifest.yaml" >"$dir/build.log" 2>&1 || {
		tail -n 30 "$dir/build.log" >&2
		die "otelcol: builder failed (full log: $dir/build.log)"
	}
	cp -f "$dir/dist/otelcol-minishop" "$BIN/.otelcol-minishop.tmp"
	mv -f "$BIN/.otelcol-minishop.tmp" "$BIN/otelcol-minishop"
	write_stamp otelcol "$key"
}

# install_pinned NAME PKG [NOTE]: build PKG as pinned by the tool module tools/NAME (go.mod with a `tool`
# directive) into $BIN/NAME, cached by the hash of that module's go.mod and go.sum.
install_pinned() {
	local name=$1 pkg=$2 cold=${3:-}
	local mod=$REPO/tools/$name
	local key
	key="$name $(hash_files "$mod/go.mod" "$mod/go.sum") $LINK"
	if stamp_ok "$name" "$key" "$name"; then
		note "up to date (tools/$name/go.mod unchanged)"
		return
	fi
	note "go build $name as pinned by tools/$name/go.mod${cold:+ ($cold)}"
	go_build_tool "$mod" "$name" "$pkg"
	write_stamp "$name" "$key"
}

install_jaeger() { install_pinned jaeger github.com/jaegertracing/jaeger/cmd/jaeger "cold: ~4.5 min on 2 cores"; }

install_task() { install_pinned task github.com/go-task/task/v3/cmd/task; }

# Everything runs from main, which bash parses completely before running it: editing this file while it
# runs (e.g. a git pull during a long build) cannot derail the run.
main() {
	local selected=() tool start total_start f
	while [[ $# -gt 0 ]]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		-f | --force) force=1 ;;
		prometheus | promtool) selected+=(prometheus) ;;
		amtool) selected+=(amtool) ;;
		alertmanager) selected+=(alertmanager) ;;
		otelcol | otelcol-minishop | collector) selected+=(otelcol) ;;
		jaeger) selected+=(jaeger) ;;
		loki) selected+=(loki) ;;
		task) selected+=(task) ;;
		compose | docker-compose) selected+=(compose) ;;
		*)
			usage >&2
			die "unknown tool '$1'"
			;;
		esac
		shift
	done
	[[ ${#selected[@]} -gt 0 ]] || selected=("${ALL_TOOLS[@]}")

	command -v go >/dev/null || die "Go is required (https://go.dev/dl/); it builds every tool"
	mkdir -p "$BIN" "$STAMPS" "$WORK"

	log "MiniShop lab tools -> $BIN ($(go version | cut -d' ' -f3))"
	total_start=$(now)
	declare -A seen=()
	for tool in "${selected[@]}"; do
		[[ -z ${seen[$tool]:-} ]] || continue
		seen[$tool]=1
		log "$tool"
		start=$(now)
		"install_$tool"
		note "$tool done in $(elapsed "$start")"
	done

	log "all done in $(elapsed "$total_start"); installed in $BIN:"
	for f in prometheus promtool amtool alertmanager otelcol-minishop jaeger loki task docker-compose; do
		if [[ -e $BIN/$f ]]; then
			if [[ -L $BIN/$f ]]; then
				note "$f -> $(readlink "$BIN/$f")"
			else
				note "$f"
			fi
		fi
	done
	note "use them with: export PATH=\"$BIN:\$PATH\""
}

# One compound command: bash has read all of it before main runs, so an edit to this file during a long run
# (a git pull) cannot make bash read on into changed bytes afterwards.
{ main "$@"; exit; }
