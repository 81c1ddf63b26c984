package nativelab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The native lab runs the repo's own config files. Where a program expands environment variables itself
// (Collector, Jaeger: ${env:NAME:-default}) the file is used in place. Prometheus and Alertmanager cannot, so
// they get a rendered copy: the real file with nothing but the compose host:port (or path) values replaced.

// PrometheusTargets are the compose host:port values in prometheus/prometheus.yml, in the order of
// Ports fields that replace them.
var composePrometheusTargets = []string{"localhost:9090", "otel-collector:8888", "jaeger:8888", "alertmanager:9093", "loki:3100"}

// RenderPrometheus copies prometheus/prometheus.yml (from repoRoot) and its rules directory into dir,
// replacing each quoted compose target with the address in targets (keys are composePrometheusTargets).
// Every compose target must occur, else the file has drifted from what the lab knows and rendering fails.
// If alertFor is non-zero, the rules copy gets every `for:` duration replaced by it (a TEST copy: the alert
// expressions are untouched); the copy says so in a comment on top.
// It returns the rendered config file's path.
func RenderPrometheus(repoRoot, dir string, targets map[string]string, alertFor time.Duration) (string, error) {
	src := filepath.Join(repoRoot, "prometheus", "prometheus.yml")
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	text := string(b)
	for _, from := range composePrometheusTargets {
		to, ok := targets[from]
		if !ok {
			return "", fmt.Errorf("render %s: no address given for target %s", src, from)
		}
		quoted := `"` + from + `"`
		if !strings.Contains(text, quoted) {
			return "", fmt.Errorf("render %s: target %s not found; the native lab must learn the new target list", src, quoted)
		}
		text = strings.ReplaceAll(text, quoted, `"`+to+`"`)
	}
	header := "# RENDERED by labtest/nativelab from " + src + " for the native lab on 127.0.0.1:\n" +
		"# only the compose host:port of each target was replaced. Edit the original, not this copy.\n"
	outDir := filepath.Join(dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(outDir, "rules"), 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, "prometheus.yml")
	if err := os.WriteFile(out, []byte(header+text), 0o644); err != nil {
		return "", err
	}

	rules, err := filepath.Glob(filepath.Join(repoRoot, "prometheus", "rules", "*.y*ml"))
	if err != nil {
		return "", err
	}
	if len(rules) == 0 {
		return "", fmt.Errorf("no rule files in %s", filepath.Join(repoRoot, "prometheus", "rules"))
	}
	for _, r := range rules {
		rb, err := os.ReadFile(r)
		if err != nil {
			return "", err
		}
		rtext := string(rb)
		if alertFor > 0 {
			rtext, err = shortenFor(rtext, alertFor)
			if err != nil {
				return "", fmt.Errorf("%s: %w", r, err)
			}
			rtext = fmt.Sprintf("# TEST COPY rendered by labtest/nativelab from %s: every alert's `for:` is %s instead of\n"+
				"# the real value so that a test sees the alert fire within seconds. Expressions are unchanged.\n", r, alertFor) + rtext
		}
		if err := os.WriteFile(filepath.Join(outDir, "rules", filepath.Base(r)), []byte(rtext), 0o644); err != nil {
			return "", err
		}
	}
	return out, nil
}

var forLine = regexp.MustCompile(`(?m)^(\s+for:\s*)(\S+)(\s*(?:#.*)?)$`)

// shortenFor replaces the duration of every `for:` line.
func shortenFor(text string, d time.Duration) (string, error) {
	if !forLine.MatchString(text) {
		return text, nil
	}
	return forLine.ReplaceAllString(text, "${1}"+promDuration(d)+"${3}"), nil
}

// promDuration formats d in Prometheus' duration syntax (e.g. 10s, 1m30s, 500ms).
func promDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%ds", int64(d/time.Second))
}

// composeWebhookFile is where alertmanager/alertmanager.yml reads the Slack webhook URL from
// (compose's entrypoint writes it there).
const composeWebhookFile = "/tmp/slack_webhook_url"

// RenderAlertmanager copies alertmanager/alertmanager.yml into dir with the webhook URL file path replaced
// by one in dir, and writes webhookURL into that file (as compose's entrypoint does). It returns the config path.
func RenderAlertmanager(repoRoot, dir, webhookURL string) (string, error) {
	src := filepath.Join(repoRoot, "alertmanager", "alertmanager.yml")
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	text := string(b)
	if !strings.Contains(text, composeWebhookFile) {
		return "", fmt.Errorf("render %s: %s not found; the native lab must learn where the webhook URL is read from", src, composeWebhookFile)
	}
	outDir := filepath.Join(dir, "alertmanager")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	urlFile := filepath.Join(outDir, "slack_webhook_url")
	if err := os.WriteFile(urlFile, []byte(webhookURL), 0o600); err != nil {
		return "", err
	}
	text = strings.ReplaceAll(text, composeWebhookFile, urlFile)
	header := "# RENDERED by labtest/nativelab from " + src + " for the native lab:\n" +
		"# only the webhook URL file path was replaced. Edit the original, not this copy.\n"
	out := filepath.Join(outDir, "alertmanager.yml")
	if err := os.WriteFile(out, []byte(header+text), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

var promFlagLine = regexp.MustCompile(`(?m)^#\s+(--[a-z][a-z0-9.-]*(?:=\S+)?)`)

// PrometheusFlags returns the flags documented in the comment at the top of prometheus/prometheus.yml
// (those lines that start with "--"), without --config.file, whose path differs natively.
func PrometheusFlags(repoRoot string) ([]string, error) {
	src := filepath.Join(repoRoot, "prometheus", "prometheus.yml")
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	// Only the leading comment block.
	var head strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") && strings.TrimSpace(line) != "" {
			break
		}
		head.WriteString(line + "\n")
	}
	var flags []string
	for _, m := range promFlagLine.FindAllStringSubmatch(head.String(), -1) {
		if strings.HasPrefix(m[1], "--config.file") {
			continue
		}
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("%s: no --flags in the leading comment", src)
	}
	return flags, nil
}

// composeLokiValues are the lines of loki/loki.yaml that hold a container port or path; RenderLoki replaces
// each (all must occur: a drifted file fails the render instead of running with a container path).
var composeLokiValues = []string{"http_listen_port: 3100", "grpc_listen_port: 9096", " /loki"}

// RenderLoki copies loki/loki.yaml into dir with only the listen ports (now on 127.0.0.1) and the data
// directory (/loki becomes dir/loki) replaced. It returns the config path.
func RenderLoki(repoRoot, dir string, httpPort, grpcPort int) (string, error) {
	src := filepath.Join(repoRoot, "loki", "loki.yaml")
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	text := string(b)
	for _, v := range composeLokiValues {
		if !strings.Contains(text, v) {
			return "", fmt.Errorf("render %s: %q not found; the native lab must learn the new layout", src, v)
		}
	}
	data := filepath.Join(dir, "loki")
	text = strings.NewReplacer(
		"http_listen_port: 3100", fmt.Sprintf("http_listen_port: %d\n  http_listen_address: 127.0.0.1", httpPort),
		"grpc_listen_port: 9096", fmt.Sprintf("grpc_listen_port: %d\n  grpc_listen_address: 127.0.0.1", grpcPort),
		" /loki", " "+data,
	).Replace(text)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	header := "# RENDERED by labtest/nativelab from " + src + " for the native lab on 127.0.0.1:\n" +
		"# only the listen ports (and address) and the data directory were replaced. Edit the original, not this copy.\n"
	out := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(out, []byte(header+text), 0o644); err != nil {
		return "", err
	}
	return out, nil
}
