package nativelab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const repo = "../.."

// The rendered prometheus.yml differs from the real one only in the target host:port values (and a
// header comment); the rules are copied unchanged unless a test asks for a shorter `for`.
func TestRenderPrometheusOnlyReplacesTargets(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{
		"localhost:9090":      "127.0.0.1:19090",
		"otel-collector:8888": "127.0.0.1:18888",
		"jaeger:8888":         "127.0.0.1:18889",
		"alertmanager:9093":   "127.0.0.1:19093",
		"loki:3100":           "127.0.0.1:13100",
	}
	out, err := RenderPrometheus(repo, dir, targets, 0)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(repo, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	gotLines := strings.Split(string(got), "\n")
	for len(gotLines) > 0 && strings.HasPrefix(gotLines[0], "# RENDERED") || len(gotLines) > 0 && strings.HasPrefix(gotLines[0], "# only the compose") {
		gotLines = gotLines[1:]
	}
	origLines := strings.Split(string(orig), "\n")
	if len(gotLines) != len(origLines) {
		t.Fatalf("rendered config has %d lines after its header, the original %d", len(gotLines), len(origLines))
	}
	changed, withTarget := 0, 0
	for i := range origLines {
		for from := range targets {
			if strings.Contains(origLines[i], `"`+from+`"`) {
				withTarget++
				break
			}
		}
		if origLines[i] == gotLines[i] {
			continue
		}
		changed++
		want := origLines[i]
		for from, to := range targets {
			want = strings.ReplaceAll(want, `"`+from+`"`, `"`+to+`"`)
		}
		if gotLines[i] != want {
			t.Errorf("line %d: %q became %q; only target addresses may change", i+1, origLines[i], gotLines[i])
		}
	}
	if changed != withTarget || changed < len(targets) {
		t.Errorf("%d lines changed, want the %d lines with a compose target (at least one per target)", changed, withTarget)
	}
	for from := range targets {
		if strings.Contains(string(got), `"`+from+`"`) {
			t.Errorf("compose target %s still in the rendered config", from)
		}
	}
	rules, _ := filepath.Glob(filepath.Join(repo, "prometheus", "rules", "*.yml"))
	for _, r := range rules {
		a, _ := os.ReadFile(r)
		b, err := os.ReadFile(filepath.Join(dir, "prometheus", "rules", filepath.Base(r)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("rules copy %s differs from the original", filepath.Base(r))
		}
	}

	// A drifted config (a target the lab does not know how to replace) is an error, not a silent skip.
	if _, err := RenderPrometheus(repo, t.TempDir(), map[string]string{"localhost:9090": "x"}, 0); err == nil {
		t.Error("rendering without every target's address succeeded")
	}
}

func TestRenderPrometheusTestRulesShortenOnlyFor(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{}
	for _, k := range composePrometheusTargets {
		targets[k] = "127.0.0.1:1"
	}
	if _, err := RenderPrometheus(repo, dir, targets, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(filepath.Join(repo, "prometheus", "rules", "minishop.yml"))
	got, _ := os.ReadFile(filepath.Join(dir, "prometheus", "rules", "minishop.yml"))
	if !strings.Contains(string(got), "for: 10s") || !strings.Contains(string(got), "# TEST COPY") {
		t.Fatalf("test rules copy has no `for: 10s` or no TEST COPY note:\n%s", got)
	}
	// Undo the only change: the original comes back.
	body := string(got[strings.Index(string(got), "\n# the real value")+1:])
	body = body[strings.Index(body, "\n")+1:]
	if strings.ReplaceAll(body, "for: 10s", "for: 1m") != string(orig) {
		t.Errorf("test rules copy changes more than `for:`")
	}
}

func TestRenderAlertmanagerWebhookFile(t *testing.T) {
	dir := t.TempDir()
	out, err := RenderAlertmanager(repo, dir, "http://127.0.0.1:8070"+SlackWebhookPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if strings.Contains(string(b), composeWebhookFile) {
		t.Errorf("rendered alertmanager.yml still reads %s", composeWebhookFile)
	}
	urlFile := filepath.Join(dir, "alertmanager", "slack_webhook_url")
	if !strings.Contains(string(b), "api_url_file: "+urlFile) {
		t.Errorf("rendered alertmanager.yml does not read %s", urlFile)
	}
	u, _ := os.ReadFile(urlFile)
	if string(u) != "http://127.0.0.1:8070"+SlackWebhookPath {
		t.Errorf("webhook file holds %q", u)
	}
}

func TestPrometheusFlagsFromConfigComment(t *testing.T) {
	flags, err := PrometheusFlags(repo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"--web.enable-remote-write-receiver": false, "--enable-feature=exemplar-storage": false}
	for _, f := range flags {
		if strings.HasPrefix(f, "--config.file") {
			t.Errorf("flags include %s", f)
		}
		if _, ok := want[f]; ok {
			want[f] = true
		}
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("flag %s not found in prometheus.yml's comment (got %v)", f, flags)
		}
	}
}

func TestPortsFill(t *testing.T) {
	p := Ports{Shop: 8080}
	if err := p.fill(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, f := range p.all() {
		if *f.ptr == 0 || seen[*f.ptr] {
			t.Errorf("%s: port %d zero or duplicate", f.name, *f.ptr)
		}
		seen[*f.ptr] = true
	}
	if p.Shop != 8080 {
		t.Errorf("given port changed to %d", p.Shop)
	}
	dup := Ports{Shop: 8080, Prometheus: 8080}
	if err := dup.fill(); err == nil {
		t.Error("duplicate ports accepted")
	}
	env, err := PortsFromEnv(func(k string) string { return map[string]string{"PROMETHEUS_PORT": "19090"}[k] })
	if err != nil || env.Prometheus != 19090 || env.Shop != 8080 || env.JaegerUI != 16686 {
		t.Errorf("PortsFromEnv = %+v, %v", env, err)
	}
	if _, err := PortsFromEnv(func(k string) string { return "x" }); err == nil {
		t.Error("PortsFromEnv accepted a non-number")
	}
}

// The rendered loki.yaml listens on the given loopback ports and keeps its data under the lab directory;
// nothing else changes.
func TestRenderLokiPortsAndDataDir(t *testing.T) {
	dir := t.TempDir()
	out, err := RenderLoki(repo, dir, 13100, 19096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"http_listen_port: 13100", "http_listen_address: 127.0.0.1", "grpc_listen_port: 19096",
		"grpc_listen_address: 127.0.0.1", "path_prefix: " + filepath.Join(dir, "loki"), "chunks_directory: " + filepath.Join(dir, "loki", "chunks")} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered loki.yaml lacks %q", want)
		}
	}
	for _, gone := range []string{": /loki", "_port: 3100", "_port: 9096"} {
		if strings.Contains(got, gone) {
			t.Errorf("rendered loki.yaml still has %q", gone)
		}
	}
}
