package labtest

// Checks of collector/: the Collector config the shop pushes OTLP to, its recipes and the manifest of our own
// Collector distribution (otelcol-minishop, built by scripts/native-tools.sh). Every check runs the real
// program: `otelcol-minishop validate`, `otelcol-minishop components`, and the Collector itself on free
// loopback ports.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

const (
	collectorConfig   = "collector/config.yaml"
	collectorManifest = "collector/manifest.yaml"
	collectorRecipes  = "collector/recipes"
)

// collectorRecipeFiles returns collector/recipes/*.yaml (repo-relative paths) but none.yaml, the empty
// recipe compose merges when COLLECTOR_RECIPE is unset.
func collectorRecipeFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, collectorRecipes, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "none.yaml" })
	if len(files) == 0 {
		t.Fatalf("no recipes in %s", collectorRecipes)
	}
	return files
}

// otelcolRun runs otelcol-minishop with args and returns its combined output.
func otelcolRun(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// deprecationWarning matches the Collector's log lines about deprecated component names or settings.
var deprecationWarning = regexp.MustCompile(`(?i).*deprecat.*`)

func TestCollectorConfigValidates(t *testing.T) {
	bin := toolPath(t, "otelcol-minishop")
	out, err := otelcolRun(t, bin, "validate", "--config", collectorConfig)
	if err != nil {
		t.Fatalf("otelcol-minishop validate --config %s: %v\n%s", collectorConfig, err, out)
	}
	if w := deprecationWarning.FindAllString(out, -1); len(w) > 0 {
		t.Errorf("%s uses deprecated names or settings (v0.161 names: otlp_grpc, otlp_http, prometheus_remote_write...):\n%s",
			collectorConfig, strings.Join(w, "\n"))
	}
}

// Each recipe merged on top of config.yaml validates and runs.
func TestCollectorRecipesValidate(t *testing.T) {
	bin := toolPath(t, "otelcol-minishop")
	for _, recipe := range collectorRecipeFiles(t) {
		rel, _ := filepath.Rel(repoRoot, recipe)
		t.Run(filepath.Base(recipe), func(t *testing.T) {
			out, err := otelcolRun(t, bin, "validate", "--config", collectorConfig, "--config", rel)
			if err != nil {
				t.Fatalf("otelcol-minishop validate --config %s --config %s: %v\n%s", collectorConfig, rel, err, out)
			}
			// validate does not report deprecated aliases; the running Collector logs them at start.
			p, _ := startCollector(t, nil, rel)
			if w := deprecationWarning.FindAllString(p.out.String(), -1); len(w) > 0 {
				t.Errorf("%s uses deprecated names or settings:\n%s", rel, strings.Join(w, "\n"))
			}
		})
	}
}

func TestCollectorRejectsUnknownExporter(t *testing.T) {
	bin := toolPath(t, "otelcol-minishop")
	const bad = "collector/testdata/bad-unknown-exporter.yaml"
	out, err := otelcolRun(t, bin, "validate", "--config", bad)
	if err == nil {
		t.Fatalf("validate accepted %s:\n%s", bad, out)
	}
	// The message must name the problem, so that a learner can fix it.
	if !strings.Contains(out, `unknown type: "jaeger"`) || !strings.Contains(out, "exporters") {
		t.Errorf("validate failed, but without naming the unknown exporter type:\n%s", out)
	}
}

// collectorComponents is the output of `otelcol-minishop components`.
type collectorComponents struct {
	BuildInfo struct {
		Command string `yaml:"command"`
		Version string `yaml:"version"`
	} `yaml:"buildinfo"`
	Receivers  []collectorComponent `yaml:"receivers"`
	Processors []collectorComponent `yaml:"processors"`
	Exporters  []collectorComponent `yaml:"exporters"`
	Connectors []collectorComponent `yaml:"connectors"`
	Extensions []collectorComponent `yaml:"extensions"`
	Providers  []struct {
		Scheme string `yaml:"scheme"`
		Module string `yaml:"module"`
	} `yaml:"providers"`
}

type collectorComponent struct {
	Name   string `yaml:"name"`
	Module string `yaml:"module"`
}

// collectorKinds lists the component kinds of a Collector config, in config order.
var collectorKinds = []string{"receivers", "processors", "exporters", "connectors", "extensions"}

func (c collectorComponents) byKind(kind string) []collectorComponent {
	switch kind {
	case "receivers":
		return c.Receivers
	case "processors":
		return c.Processors
	case "exporters":
		return c.Exporters
	case "connectors":
		return c.Connectors
	case "extensions":
		return c.Extensions
	}
	return nil
}

// usedComponentTypes returns, per kind, the component types ("otlp_grpc" for "otlp_grpc/jaeger") that
// collector/config.yaml and the recipes define.
func usedComponentTypes(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string]map[string]bool{}
	files := append([]string{filepath.Join(repoRoot, collectorConfig)}, collectorRecipeFiles(t)...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, kind := range collectorKinds {
			m, _ := cfg[kind].(map[string]any)
			for id := range m {
				typ, _, _ := strings.Cut(id, "/")
				if used[kind] == nil {
					used[kind] = map[string]bool{}
				}
				used[kind][typ] = true
			}
		}
	}
	out := map[string][]string{}
	for kind, set := range used {
		for typ := range set {
			out[kind] = append(out[kind], typ)
		}
		sort.Strings(out[kind])
	}
	return out
}

// manifestModules returns the module paths (without versions) the builder manifest lists per section.
func manifestModules(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, collectorManifest))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", collectorManifest, err)
	}
	out := map[string][]string{}
	for _, section := range append(slices.Clone(collectorKinds), "providers") {
		list, _ := m[section].([]any)
		for _, e := range list {
			entry, _ := e.(map[string]any)
			gomod, _ := entry["gomod"].(string)
			mod, version, ok := strings.Cut(gomod, " ")
			if !ok || !strings.HasPrefix(version, "v") {
				t.Errorf("%s: %s entry %q is not `module vX.Y.Z`", collectorManifest, section, gomod)
			}
			out[section] = append(out[section], mod)
		}
		sort.Strings(out[section])
	}
	return out
}

// The distribution contains exactly the components that our configs use: nothing missing (validate would
// fail), nothing extra (the manifest documents what the lab needs, and a smaller binary builds faster).
// It also catches a stale binary: one built from an older manifest.
func TestCollectorComponentsMatchManifest(t *testing.T) {
	bin := toolPath(t, "otelcol-minishop")
	out, err := otelcolRun(t, bin, "components")
	if err != nil {
		t.Fatalf("otelcol-minishop components: %v\n%s", err, out)
	}
	var comps collectorComponents
	if err := yaml.Unmarshal([]byte(out), &comps); err != nil {
		t.Fatalf("parse `components` output: %v\n%s", err, out)
	}
	if comps.BuildInfo.Command != "otelcol-minishop" {
		t.Errorf("buildinfo.command = %q, want otelcol-minishop", comps.BuildInfo.Command)
	}

	used := usedComponentTypes(t)
	manifest := manifestModules(t)
	for _, kind := range collectorKinds {
		var names, modules []string
		for _, c := range comps.byKind(kind) {
			names = append(names, c.Name)
			mod, _, _ := strings.Cut(c.Module, " ")
			modules = append(modules, mod)
		}
		sort.Strings(names)
		sort.Strings(modules)
		if !slices.Equal(names, used[kind]) {
			t.Errorf("%s: the binary has %v, the configs use %v (manifest and configs must agree; rebuild with scripts/native-tools.sh otelcol after editing the manifest)",
				kind, names, used[kind])
		}
		if !slices.Equal(modules, manifest[kind]) {
			t.Errorf("%s: the binary was built from %v, %s lists %v (stale binary? run scripts/native-tools.sh otelcol)",
				kind, modules, collectorManifest, manifest[kind])
		}
	}
	var schemes []string
	for _, p := range comps.Providers {
		schemes = append(schemes, p.Scheme)
	}
	for _, want := range []string{"env", "file", "yaml"} {
		if !slices.Contains(schemes, want) {
			t.Errorf("confmap provider %q missing (have %v)", want, schemes)
		}
	}
}

// Configs are documentation: every receiver, processor, exporter, connector and extension block carries
// a comment saying why it is there.
func TestCollectorConfigBlocksAreCommented(t *testing.T) {
	files := append([]string{filepath.Join(repoRoot, collectorConfig), filepath.Join(repoRoot, "jaeger/config.yaml")},
		collectorRecipeFiles(t)...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			t.Fatalf("%s: not a YAML mapping", f)
		}
		top := doc.Content[0]
		blocks := 0
		for i := 0; i+1 < len(top.Content); i += 2 {
			if !slices.Contains(collectorKinds, top.Content[i].Value) {
				continue
			}
			section := top.Content[i+1]
			for j := 0; j+1 < len(section.Content); j += 2 {
				key := section.Content[j]
				blocks++
				if strings.TrimSpace(strings.TrimLeft(key.HeadComment, "# ")) == "" {
					t.Errorf("%s:%d: %s.%s has no comment saying why it is there", filepath.Base(f), key.Line, top.Content[i].Value, key.Value)
				}
			}
		}
		if blocks == 0 {
			t.Errorf("%s: no component blocks found", f)
		}
	}
}

// The remote-write exporter settings in config.yaml are what makes the contract's metric names and labels.
func TestCollectorRemoteWriteSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, collectorConfig))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Exporters map[string]map[string]any `yaml:"exporters"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	prw := cfg.Exporters["prometheus_remote_write"]
	if prw == nil {
		t.Fatal("no prometheus_remote_write exporter")
	}
	if got := prw["translation_strategy"]; got != "UnderscoreEscapingWithSuffixes" {
		t.Errorf("translation_strategy = %v, want UnderscoreEscapingWithSuffixes (request -> request_total, request_duration s -> request_duration_seconds)", got)
	}
	labels, _ := prw["resource_constant_labels"].(map[string]any)
	included, _ := labels["included"].([]any)
	if !slices.Contains(included, any("app")) {
		t.Errorf("resource_constant_labels.included = %v: the `app` resource attribute must become a label", included)
	}
}

// --- running the real programs ---

// labProcess is a program a test started; it is stopped by its own PID (SIGTERM, then SIGKILL after a
// deadline) and waited for at cleanup, so its ports are free again when the test returns.
type labProcess struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error
}

// startLabProcess starts bin with args and extra environment in the repo root.
func startLabProcess(t *testing.T, name, bin string, env []string, args ...string) *labProcess {
	t.Helper()
	p := &labProcess{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = repoRoot
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM to the process (by PID) and waits for it to exit; Jaeger takes several seconds to
// release its ports, so the wait is generous before falling back to SIGKILL.
func (p *labProcess) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s (PID %d) still running 30s after SIGTERM; killing it", p.name, p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// pollUntil calls check until it returns nil; it fails the test at the deadline or when a process exits.
func pollUntil(t *testing.T, what string, timeout time.Duration, procs []*labProcess, check func() error) {
	t.Helper()
	err := poll(timeout, 200*time.Millisecond, func() error {
		err := check()
		if err == nil {
			return nil
		}
		for _, p := range procs {
			select {
			case <-p.exited:
				t.Fatalf("%s exited (%v) while waiting for %s; output:\n%s", p.name, p.err, what, p.out.String())
			default:
			}
		}
		return err
	})
	if err != nil {
		var logs strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&logs, "--- %s output:\n%s\n", p.name, p.out.String())
		}
		t.Fatalf("%s: still failing after %s: %v\n%s", what, timeout, err, logs.String())
	}
}

// closedLoopbackAddr returns a loopback address nothing listens on (exporters may point there).
func closedLoopbackAddr(t *testing.T) string { return freeAddr(t) }

// collectorEnv are the addresses of a Collector run on free loopback ports.
type collectorEnv struct {
	grpc, http, health, metrics string
}

// startCollector runs otelcol-minishop with collector/config.yaml (plus extra --config files) on free
// loopback ports, with exporters pointing where exportTo says, and waits until health_check says healthy.
func startCollector(t *testing.T, exportTo map[string]string, extraConfigs ...string) (*labProcess, collectorEnv) {
	t.Helper()
	bin := toolPath(t, "otelcol-minishop")
	e := collectorEnv{
		grpc:    freeAddr(t),
		http:    freeAddr(t),
		health:  freeAddr(t),
		metrics: freeAddr(t),
	}
	_, metricsPort, _ := net.SplitHostPort(e.metrics)
	env := []string{
		"OTLP_GRPC_LISTEN=" + e.grpc,
		"OTLP_HTTP_LISTEN=" + e.http,
		"COLLECTOR_HEALTH_LISTEN=" + e.health,
		"COLLECTOR_METRICS_HOST=127.0.0.1",
		"COLLECTOR_METRICS_PORT=" + metricsPort,
		// Nothing listens here unless the test says otherwise: exports fail and are retried, which is fine.
		"JAEGER_OTLP_ENDPOINT=" + closedLoopbackAddr(t),
		"LOKI_OTLP_ENDPOINT=http://" + closedLoopbackAddr(t) + "/otlp",
		"PROMETHEUS_REMOTE_WRITE_ENDPOINT=http://" + closedLoopbackAddr(t) + "/api/v1/write",
	}
	for k, v := range exportTo {
		env = append(env, k+"="+v)
	}
	args := []string{"--config", collectorConfig}
	for _, c := range extraConfigs {
		args = append(args, "--config", c)
	}
	p := startLabProcess(t, "otelcol-minishop", bin, env, args...)
	pollUntil(t, "collector health_check", 30*time.Second, []*labProcess{p}, func() error {
		return wantHTTPOK("http://" + e.health + "/")
	})
	return p, e
}

// The Collector starts with config.yaml on loopback ports, reports healthy, serves its own metrics for
// Prometheus, and stops cleanly on SIGTERM.
func TestCollectorStartsHealthyAndStops(t *testing.T) {
	p, e := startCollector(t, nil)
	pollUntil(t, "collector own metrics", 15*time.Second, []*labProcess{p}, func() error {
		body, err := httpGetOK("http://" + e.metrics + "/metrics")
		if err != nil {
			return err
		}
		// Names as config.yaml promises them (no _total/unit suffixes): dashboards and docs rely on them.
		if !regexp.MustCompile(`(?m)^otelcol_process_uptime[{ ]`).Match(body) {
			return fmt.Errorf("no otelcol_process_uptime series (without suffixes) in /metrics yet")
		}
		return nil
	})
	if w := deprecationWarning.FindAllString(p.out.String(), -1); len(w) > 0 {
		t.Errorf("the Collector logs deprecation warnings for config.yaml:\n%s", strings.Join(w, "\n"))
	}
	p.stop(t)
	if p.err != nil {
		t.Errorf("collector exited with %v after SIGTERM; output:\n%s", p.err, p.out.String())
	}
}

// otlpJSONPost POSTs an OTLP/HTTP JSON request to the Collector.
func otlpJSONPost(t *testing.T, httpAddr, signal string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := labHTTP.Post("http://"+httpAddr+"/v1/"+signal, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST /v1/%s: %v", signal, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/%s: %s: %s", signal, resp.Status, out)
	}
}

// shopResource is the resource the shop reports (see contract), SDK attributes included.
func shopResource() map[string]any {
	attr := func(k, v string) map[string]any {
		return map[string]any{"key": k, "value": map[string]any{"stringValue": v}}
	}
	return map[string]any{"attributes": []any{
		attr("service.name", "minishop"),
		attr("app", "minishop"),
		attr("telemetry.sdk.name", "opentelemetry"),
		attr("telemetry.sdk.language", "go"),
		attr("telemetry.sdk.version", "1.47.0"),
	}}
}

// shopMetrics is one export of the shop's three instruments, named and typed as the shop's code does
// (request {request} counter, error {error} counter, request_duration s histogram), with an exemplar.
func shopMetrics(traceID, spanID string, now time.Time) map[string]any {
	ts := fmt.Sprint(now.UnixNano())
	start := fmt.Sprint(now.Add(-time.Minute).UnixNano())
	attr := func(k, v string) map[string]any {
		return map[string]any{"key": k, "value": map[string]any{"stringValue": v}}
	}
	labels := []any{attr("method", "POST"), attr("route", "/payment/pay"), attr("status_code", "402")}
	sum := func(name, unit string, extra ...any) map[string]any {
		return map[string]any{"name": name, "unit": unit, "sum": map[string]any{
			"aggregationTemporality": 2, "isMonotonic": true,
			"dataPoints": []any{map[string]any{"attributes": append(slices.Clone(labels), extra...),
				"startTimeUnixNano": start, "timeUnixNano": ts, "asInt": "3"}},
		}}
	}
	return map[string]any{"resourceMetrics": []any{map[string]any{
		"resource": shopResource(),
		"scopeMetrics": []any{map[string]any{
			"scope": map[string]any{"name": "minishop"},
			"metrics": []any{
				sum("request", "{request}"),
				sum("error", "{error}", attr("reason", "card_declined")),
				map[string]any{"name": "request_duration", "unit": "s", "histogram": map[string]any{
					"aggregationTemporality": 2,
					"dataPoints": []any{map[string]any{
						"attributes": labels, "startTimeUnixNano": start, "timeUnixNano": ts,
						"count": "3", "sum": 0.9, "explicitBounds": []float64{0.1, 0.5, 1},
						"bucketCounts": []string{"1", "1", "1", "0"},
						"exemplars":    []any{map[string]any{"timeUnixNano": ts, "asDouble": 0.7, "traceId": traceID, "spanId": spanID}},
					}},
				}},
			},
		}},
	}}}
}

// promQuery runs an instant query against a Prometheus and returns the result's label sets.
func promQuery(base, query string) ([]map[string]string, error) {
	body, err := httpGetOK(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, s := range r.Data.Result {
		out = append(out, s.Metric)
	}
	return out, nil
}

// startRemoteWritePrometheus starts a real Prometheus on a free loopback port that accepts remote write and
// stores exemplars (as compose runs it), with nothing to scrape; it returns the process and its base URL.
func startRemoteWritePrometheus(t *testing.T) (*labProcess, string) {
	t.Helper()
	promBin := toolPath(t, "prometheus")
	dir := t.TempDir()
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	prom := startLabProcess(t, "prometheus", promBin, nil,
		"--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--web.enable-remote-write-receiver",
		"--enable-feature=exemplar-storage")
	promURL := "http://" + promAddr
	pollUntil(t, "prometheus ready", 60*time.Second, []*labProcess{prom}, func() error {
		return wantHTTPOK(promURL + "/-/ready")
	})
	return prom, promURL
}

// The contract's metric names and labels, checked end to end with the real programs: OTLP in, through
// collector/config.yaml's remote-write exporter, into a real Prometheus 3 with exemplar storage.
func TestCollectorRemoteWriteNamesMatchContract(t *testing.T) {
	prom, promURL := startRemoteWritePrometheus(t)
	col, e := startCollector(t, map[string]string{"PROMETHEUS_REMOTE_WRITE_ENDPOINT": promURL + "/api/v1/write"})
	const traceID, spanID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	otlpJSONPost(t, e.http, "metrics", shopMetrics(traceID, spanID, time.Now()))

	procs := []*labProcess{prom, col}
	want := map[string]string{
		`request_total`:                   "method,route,status_code",
		`error_total`:                     "method,reason,route,status_code",
		`request_duration_seconds_bucket`: "le,method,route,status_code",
		`request_duration_seconds_sum`:    "method,route,status_code",
		`request_duration_seconds_count`:  "method,route,status_code",
	}
	for name, labels := range want {
		pollUntil(t, name+" in Prometheus", 30*time.Second, procs, func() error {
			series, err := promQuery(promURL, name)
			if err != nil {
				return err
			}
			if len(series) == 0 {
				return fmt.Errorf("no %s series", name)
			}
			s := series[0]
			if s["job"] != "minishop" || s["app"] != "minishop" {
				return fmt.Errorf("%s labels %v: want job=minishop and app=minishop", name, s)
			}
			var got []string
			for k := range s {
				switch k {
				case "__name__", "job", "app", "instance":
				default:
					got = append(got, k)
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != labels {
				return fmt.Errorf("%s has labels %v, want exactly %s (+ job, app, instance)", name, s, labels)
			}
			return nil
		})
	}
	// The exemplar links the latency bucket to the trace.
	pollUntil(t, "exemplar in Prometheus", 30*time.Second, procs, func() error {
		now := time.Now()
		body, err := httpGetOK(fmt.Sprintf("%s/api/v1/query_exemplars?query=%s&start=%d&end=%d", promURL,
			url.QueryEscape("request_duration_seconds_bucket"), now.Add(-time.Hour).Unix(), now.Add(time.Minute).Unix()))
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), traceID) {
			return fmt.Errorf("no exemplar with trace_id %s: %s", traceID, body)
		}
		return nil
	})
	// No SDK noise as labels; target_info carries the rest of the resource.
	series, err := promQuery(promURL, `{__name__=~".+", telemetry_sdk_language!=""}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 0 {
		t.Errorf("telemetry.sdk.* became labels: %v", series)
	}
}

// recipes/add-environment.yaml: the new resource attribute reaches Prometheus as a label (docs/labs.md 5d).
func TestCollectorEnvironmentRecipeAddsLabel(t *testing.T) {
	prom, promURL := startRemoteWritePrometheus(t)
	col, e := startCollector(t, map[string]string{"PROMETHEUS_REMOTE_WRITE_ENDPOINT": promURL + "/api/v1/write"},
		"collector/recipes/add-environment.yaml")
	otlpJSONPost(t, e.http, "metrics", shopMetrics("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", time.Now()))
	pollUntil(t, "request_total with deployment_environment_name", 30*time.Second, []*labProcess{prom, col}, func() error {
		series, err := promQuery(promURL, `request_total{deployment_environment_name="lab", app="minishop"}`)
		if err != nil {
			return err
		}
		if len(series) == 0 {
			return fmt.Errorf("no request_total{deployment_environment_name=\"lab\"} yet")
		}
		return nil
	})
}
