#!/usr/bin/env bash
# native-tools.sh: install the MiniShop lab's programs natively (no Docker needed), cached.
#
# Usage: scripts/native-tools.sh [--force] [TOOL...]
#   TOOL is any of: prometheus (also promtool), amtool, alertmanager, otelcol (otelcol-minishop),
#   jaeger, task. Default: all of them.
#   --force rebuilds even when the cache stamp says a tool is up to date.
#
# Installs into ${MINISHOP_TOOLS_DIR:-$HOME/.cache/minishop-lab}/bin:
#   prometheus, promtool  go install github.com/prometheus/prometheus/cmd/...@v0.316.0 (= Prometheus 3.16.0)
#   amtool                go install github.com/prometheus/alertmanager/cmd/amtool@v0.35.0
#   alertmanager          symlink to Debian's /usr/bin/prometheus-alertmanager (0.25; apt-get, needs root or sudo;
#                         `go install` of the alertmanager module does not work: its UI assets are not in the module)
#   otelcol-minishop      our Collector distribution: OpenTelemetry Collector Builder v0.161.0 + collector/manifest.yaml
#   jaeger                Jaeger v2 (module v1.76.0 = release 2.13.0), pinned by tools/jaeger/go.mod
#   task                  go-task v3.54.0, pinned by tools/task/go.mod (./task at the repo root runs it without this)
#
# Each tool has a stamp in $MINISHOP_TOOLS_DIR/stamps keyed on its version (and on the hash of the manifest or
# go.mod/go.sum that pins it), so a second run takes seconds and editing collector/manifest.yaml rebuilds the
# Collector. Cold builds take minutes (on 2 cores: prometheus ~6 min, jaeger ~4.5 min, collector ~2.5 min,
# task ~1.5 min); Go's build cache makes rebuilds much quicker.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${MINISHOP_TOOLS_DIR:-$HOME/.cache/minishop-lab}
BIN=$TOOLS_DIR/bin
STAMPS=$TOOLS_DIR/stamps
WORK=$TOOLS_DIR/work

PROMETHEUS_VERSION=v0.316.0 # Prometheus 3.16.0 (Go module versions are v0.3MM.P for 3.MM.P)
AMTOOL_VERSION=v0.35.0
BUILDER_VERSION=v0.161.0 # go.opentelemetry.io/collector/cmd/builder
ALERTMANAGER_DEB=prometheus-alertmanager

ALL_TOOLS=(prometheus amtool alertmanager otelcol jaeger task)

# The tools' own modules must not be affected by a go.work file a user may have.
export GOWORK=off

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

# go_build_tool DIR OUT PKG: build PKG as pinned by the tool module in DIR, atomically into $BIN/OUT.
go_build_tool() {
	local dir=$1 out=$2 pkg=$3
	(cd "$dir" && go build -o "$BIN/.$out.tmp" "$pkg")
	mv -f "$BIN/.$out.tmp" "$BIN/$out"
}

install_prometheus() {
	local key="prometheus+promtool $PROMETHEUS_VERSION"
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
	local key="amtool $AMTOOL_VERSION"
	if stamp_ok amtool "$key" amtool; then
		note "up to date ($AMTOOL_VERSION)"
		return
	fi
	note "go install amtool $AMTOOL_VERSION"
	GOBIN=$BIN go install "github.com/prometheus/alertmanager/cmd/amtool@$AMTOOL_VERSION"
	write_stamp amtool "$key"
}

deb_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# packaged_alertmanager_pids prints the PIDs of Debian-service-style alertmanagers: the packaged binary,
# a daemon (parent PID 1), started without --config.file (the lab always passes one). Only such a process
# can come from the package install; lab or test alertmanagers never match.
packaged_alertmanager_pids() {
	local p exe ppid
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null || true)
		[[ $exe == /usr/bin/prometheus-alertmanager ]] || continue
		ppid=$(awk '/^PPid:/ { print $2 }' "$p/status" 2>/dev/null || true)
		[[ $ppid == 1 ]] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- '--config.file' && continue
		printf '%s\n' "${p#/proc/}"
	done
	return 0
}

install_alertmanager() {
	local target=/usr/bin/prometheus-alertmanager
	if ! deb_installed "$ALERTMANAGER_DEB"; then
		command -v apt-get >/dev/null || die "alertmanager: needs Debian's $ALERTMANAGER_DEB package, and apt-get is not available here"
		local sudo=()
		if [[ $(id -u) != 0 ]]; then
			command -v sudo >/dev/null || die "alertmanager: installing $ALERTMANAGER_DEB needs root (or sudo)"
			sudo=(sudo)
		fi
		local before
		before=$(packaged_alertmanager_pids)
		# The package's maintainer scripts would start a system service; a policy-rc.d that says
		# "101 = action forbidden" stops invoke-rc.d from doing so. Only add one if there is none.
		local policy=/usr/sbin/policy-rc.d added_policy=0
		if [[ ! -e $policy ]]; then
			printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
			"${sudo[@]}" chmod 755 "$policy"
			added_policy=1
		fi
		note "apt-get update && apt-get install -y $ALERTMANAGER_DEB (service start suppressed)"
		local rc=0
		{
			"${sudo[@]}" apt-get update -qq &&
				"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$ALERTMANAGER_DEB"
		} || rc=$?
		if [[ $added_policy == 1 ]]; then
			"${sudo[@]}" rm -f "$policy"
		fi
		[[ $rc == 0 ]] || die "alertmanager: apt-get failed (exit $rc)"
		# If systemd is running, make sure the packaged service neither runs nor starts at boot: the lab starts
		# its own alertmanager with its own config and ports.
		if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
			"${sudo[@]}" systemctl disable --now prometheus-alertmanager.service >/dev/null 2>&1 || true
		fi
		local p
		for p in $(packaged_alertmanager_pids); do
			if ! grep -qx "$p" <<<"$before"; then
				note "stopping the packaged alertmanager service (PID $p) that the install started"
				"${sudo[@]}" kill "$p" || true
			fi
		done
	else
		note "$ALERTMANAGER_DEB already installed ($(dpkg-query -W -f='${Version}' "$ALERTMANAGER_DEB"))"
	fi
	[[ -x $target ]] || die "alertmanager: $target missing after install"
	ln -sfn "$target" "$BIN/alertmanager"
	note "$BIN/alertmanager -> $target"
}

install_otelcol() {
	local manifest=$REPO/collector/manifest.yaml
	[[ -f $manifest ]] || die "otelcol: $manifest not found"
	local key
	key="otelcol-minishop builder $BUILDER_VERSION manifest $(hash_files "$manifest")"
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
	key="$name $(hash_files "$mod/go.mod" "$mod/go.sum")"
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
		task) selected+=(task) ;;
		*)
			usage >&2
			die "unknown tool '$1'"
			;;
		esac
		shift
	done
	[[ ${#selected[@]} -gt 0 ]] || selected=("${ALL_TOOLS[@]}")

	command -v go >/dev/null || die "Go is required (https://go.dev/dl/); it builds every tool but alertmanager"
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
	for f in prometheus promtool amtool alertmanager otelcol-minishop jaeger task; do
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

main "$@"
