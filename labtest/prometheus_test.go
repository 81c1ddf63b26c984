package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The recording rules and the alert the lab contract fixes (dashboards and the runbook use them).
var promContractRecords = []string{
	"job_route:request_total:rate1m",
	"job:request_total:rate1m",
	"job:error_total:rate1m",
	"job:error_ratio:rate1m",
	"job_reason:error_total:rate1m",
	"job_route:request_duration_seconds:p95_1m",
}

const promContractAlert = "MiniShopHighErrorRate"

// promtoolRun runs promtool with args in dir and returns its combined output and error.
func promtoolRun(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath(t, "promtool"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func promRepoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPrometheusConfigChecks runs `promtool check config` on prometheus.yml from an unrelated
// working directory: the rule files must be found relative to the config file (as in compose,
// where ./prometheus is mounted at /etc/prometheus), and they are checked too.
func TestPrometheusConfigChecks(t *testing.T) {
	out, err := promtoolRun(t, t.TempDir(), "check", "config", "--lint=all", "--lint-fatal", promRepoPath(t, "prometheus/prometheus.yml"))
	if err != nil {
		t.Fatalf("promtool check config failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, filepath.Join("rules", "minishop.yml")) || !regexp.MustCompile(`SUCCESS: \d+ rules found`).MatchString(out) {
		t.Errorf("rules/minishop.yml was not found and checked relative to the config:\n%s", out)
	}
}

func TestPrometheusRulesCheck(t *testing.T) {
	files, err := filepath.Glob(promRepoPath(t, "prometheus/rules/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in prometheus/rules (%v)", err)
	}
	out, err := promtoolRun(t, t.TempDir(), append([]string{"check", "rules", "--lint=all", "--lint-fatal"}, files...)...)
	if err != nil {
		t.Fatalf("promtool check rules failed: %v\n%s", err, out)
	}
}

// TestPrometheusRuleUnitTests runs the promtool unit tests: the alert fires at 20% errors, stays
// silent at 5% and without traffic, resolves, and the recording rules compute the expected values.
func TestPrometheusRuleUnitTests(t *testing.T) {
	files, err := filepath.Glob(promRepoPath(t, "prometheus/tests/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests in prometheus/tests (%v)", err)
	}
	out, err := promtoolRun(t, t.TempDir(), append([]string{"test", "rules"}, files...)...)
	if err != nil {
		t.Fatalf("promtool test rules failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// TestPrometheusRejectsBadFixtures proves the checks above can fail: each fixture is broken in one
// way and promtool must say so.
func TestPrometheusRejectsBadFixtures(t *testing.T) {
	tests := []struct {
		file    string
		command []string
		want    string // part of promtool's complaint
	}{
		{"bad-config.yml", []string{"check", "config"}, "scrape timeout greater than scrape interval"},
		{"bad-config-bad-rules.yml", []string{"check", "config"}, "unclosed left parenthesis"},
		{"bad-rules-promql.yml", []string{"check", "rules"}, "unclosed left parenthesis"},
		{"bad-rules-duplicate-group.yml", []string{"check", "rules"}, "repeated in the same file"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, err := promtoolRun(t, t.TempDir(), append(tt.command, promRepoPath(t, "prometheus/testdata/"+tt.file))...)
			if err == nil {
				t.Fatalf("promtool %s accepted %s:\n%s", strings.Join(tt.command, " "), tt.file, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("promtool rejected %s, but not for the expected reason %q:\n%s", tt.file, tt.want, out)
			}
		})
	}
}

// promRuleFile is the part of a Prometheus rule file these tests read.
type promRuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promRuleFiles parses every prometheus/rules/*.yml (what prometheus.yml's rule_files loads), by path.
func promRuleFiles(t *testing.T) map[string]promRuleFile {
	t.Helper()
	files, err := filepath.Glob(promRepoPath(t, "prometheus/rules/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in prometheus/rules (%v)", err)
	}
	return promParseRuleFiles(t, files)
}

// promParseRuleFiles parses the rule files at paths, by path.
func promParseRuleFiles(t *testing.T, files []string) map[string]promRuleFile {
	t.Helper()
	out := map[string]promRuleFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf promRuleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = rf
	}
	return out
}

// promRuleNames returns the sorted names of every recording rule and every alerting rule (an alert
// name once per rule) in prometheus/rules/*.yml, as Prometheus' /api/v1/rules lists them.
func promRuleNames(t *testing.T) (records, alerts []string) {
	t.Helper()
	for _, rf := range promRuleFiles(t) {
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records = append(records, r.Record)
				} else {
					alerts = append(alerts, r.Alert)
				}
			}
		}
	}
	sort.Strings(records)
	sort.Strings(alerts)
	return records, alerts
}

// TestPrometheusRulesMatchContract checks the rule names, the alert's threshold, labels and
// annotations against the contract, and that the runbook section the alert links to exists.
func TestPrometheusRulesMatchContract(t *testing.T) {
	b, err := os.ReadFile(promRepoPath(t, "prometheus/rules/minishop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf promRuleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	var records []string
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, r.Record)
				continue
			}
			if r.Alert != promContractAlert {
				continue
			}
			alerts++
			if !strings.Contains(r.Expr, "job:error_ratio:rate1m > 0.1") || r.For != "1m" {
				t.Errorf("alert: expr %q for %q, want job:error_ratio:rate1m > 0.10 for 1m", r.Expr, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "page" {
				t.Errorf("alert severity = %q, want critical or page", s)
			}
			for _, a := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[a], "$value") {
					t.Errorf("annotation %s does not show the value: %q", a, r.Annotations[a])
				}
			}
			if !strings.HasSuffix(r.Annotations["runbook_url"], "docs/runbooks.md#minishophigherrorrate") {
				t.Errorf("runbook_url = %q", r.Annotations["runbook_url"])
			}
		}
	}
	sort.Strings(records)
	want := slices.Clone(promContractRecords)
	sort.Strings(want)
	if !slices.Equal(records, want) {
		t.Errorf("recording rules = %v, want %v", records, want)
	}
	if alerts != 1 {
		t.Errorf("found %d %s alerts, want 1", alerts, promContractAlert)
	}
	runbook, err := os.ReadFile(promRepoPath(t, "docs/runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^## MiniShopHighErrorRate$`).Match(runbook) {
		t.Error("docs/runbooks.md has no '## MiniShopHighErrorRate' section (anchor #minishophigherrorrate)")
	}
}

// promFlagsFromConfig returns the flags documented in prometheus.yml's header comment
// ("#   --flag ..."), which compose and the native lab both use.
func promFlagsFromConfig(t *testing.T, config []byte) []string {
	t.Helper()
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^#\s+(--[a-z][a-z0-9.-]*(?:=\S+)?)`).FindAllSubmatch(config, -1) {
		flags = append(flags, string(m[1]))
	}
	return flags
}

// promGetJSON GETs url and decodes the Prometheus API envelope's data into v.
func promGetJSON(url string, v any) error {
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := getJSON(url, &env); err != nil {
		return err
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: status %q", url, env.Status)
	}
	return json.Unmarshal(env.Data, v)
}

// TestPrometheusStartsWithLabConfig starts the real Prometheus 3.16 natively with prometheus.yml
// and the flags written in its header, the compose targets pointed at loopback addresses, and
// checks what compose relies on: it becomes ready, loads and evaluates every rule without error,
// sends alerts to the configured Alertmanager, scrapes only the stack (never the shop), accepts
// remote write and has exemplar storage on.
func TestPrometheusStartsWithLabConfig(t *testing.T) {
	bin := toolPath(t, "prometheus")
	src, err := os.ReadFile(promRepoPath(t, "prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	flags := promFlagsFromConfig(t, src)
	for _, want := range []string{"--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage"} {
		if !slices.Contains(flags, want) {
			t.Fatalf("prometheus.yml header does not document %s (found %v)", want, flags)
		}
	}

	// Same directory layout as the compose mount: prometheus.yml next to rules/.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(promRepoPath(t, "prometheus"))); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	amAddr := freeAddr(t) // nothing listens there: Prometheus only has to know it
	targets := map[string]string{
		"localhost:9090":      promAddr,
		"alertmanager:9093":   amAddr,
		"otel-collector:8888": freeAddr(t),
		"jaeger:8888":         freeAddr(t),
		"loki:3100":           freeAddr(t),
	}
	cfg := string(src)
	for from, to := range targets {
		quoted := `"` + from + `"`
		if strings.Count(cfg, quoted) == 0 {
			t.Fatalf("prometheus.yml has no target %s", quoted)
		}
		cfg = strings.ReplaceAll(cfg, quoted, `"`+to+`"`)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	args := []string{"--web.listen-address=" + promAddr, "--storage.tsdb.path=" + filepath.Join(t.TempDir(), "data")}
	for _, f := range flags {
		if strings.HasPrefix(f, "--config.file") {
			f = "--config.file=" + filepath.Join(dir, "prometheus.yml")
		}
		args = append(args, f)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := "http://" + promAddr

	// promPoll calls check until it returns nil, failing with its last error at the deadline or when
	// Prometheus exits.
	promPoll := func(what string, timeout time.Duration, check func() error) {
		t.Helper()
		err := poll(timeout, 200*time.Millisecond, func() error {
			err := check()
			if err == nil {
				return nil
			}
			select {
			case e := <-exited:
				exited <- e // put it back: the cleanup waits for it
				t.Fatalf("prometheus exited (%v) while waiting for %s; log:\n%s", e, what, logs.String())
			default:
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v; log:\n%s", what, err, logs.String())
		}
	}

	promPoll("ready", 60*time.Second, func() error {
		return wantHTTPOK(base + "/-/ready")
	})

	// Every rule of every rule file loaded (the contract's among them), and evaluated at least once
	// without error.
	wantRecords, wantAlerts := promRuleNames(t)
	for _, r := range promContractRecords {
		if !slices.Contains(wantRecords, r) {
			t.Fatalf("contract recording rule %s is not in prometheus/rules/*.yml", r)
		}
	}
	if !slices.Contains(wantAlerts, promContractAlert) {
		t.Fatalf("contract alert %s is not in prometheus/rules/*.yml", promContractAlert)
	}
	promPoll("rules evaluated", 30*time.Second, func() error {
		var data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name           string `json:"name"`
					Type           string `json:"type"`
					Health         string `json:"health"`
					LastError      string `json:"lastError"`
					LastEvaluation string `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := promGetJSON(base+"/api/v1/rules", &data); err != nil {
			return err
		}
		var records, alerts []string
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return fmt.Errorf("rule %s health %q (%s)", r.Name, r.Health, r.LastError)
				}
				if r.Type == "recording" {
					records = append(records, r.Name)
				} else {
					alerts = append(alerts, r.Name)
				}
			}
		}
		sort.Strings(records)
		sort.Strings(alerts)
		if !slices.Equal(records, wantRecords) || !slices.Equal(alerts, wantAlerts) {
			return fmt.Errorf("loaded records %v alerts %v, want records %v alerts %v", records, alerts, wantRecords, wantAlerts)
		}
		return nil
	})

	// The Alertmanager from the config is the one alerts go to.
	promPoll("alertmanager discovered", 30*time.Second, func() error {
		var data struct {
			Active []struct {
				URL string `json:"url"`
			} `json:"activeAlertmanagers"`
		}
		if err := promGetJSON(base+"/api/v1/alertmanagers", &data); err != nil {
			return err
		}
		if len(data.Active) != 1 || !strings.HasPrefix(data.Active[0].URL, "http://"+amAddr+"/") {
			return fmt.Errorf("active alertmanagers %+v, want http://%s/api/v2/alerts", data.Active, amAddr)
		}
		return nil
	})

	// Scrape jobs: the stack's own metrics only, and Prometheus scrapes itself successfully.
	promPoll("self-scrape up", 30*time.Second, func() error {
		var data struct {
			Active []struct {
				ScrapePool string `json:"scrapePool"`
				ScrapeURL  string `json:"scrapeUrl"`
				Health     string `json:"health"`
			} `json:"activeTargets"`
		}
		if err := promGetJSON(base+"/api/v1/targets", &data); err != nil {
			return err
		}
		var jobs []string
		selfUp := false
		for _, tg := range data.Active {
			jobs = append(jobs, tg.ScrapePool)
			if tg.ScrapePool == "prometheus" && tg.Health == "up" {
				selfUp = true
			}
		}
		sort.Strings(jobs)
		if want := []string{"alertmanager", "jaeger", "loki", "otel-collector", "prometheus"}; !slices.Equal(jobs, want) {
			return fmt.Errorf("scrape jobs %v, want %v (the shop must never be scraped)", jobs, want)
		}
		if !selfUp {
			return fmt.Errorf("prometheus job not up yet: %+v", data.Active)
		}
		return nil
	})

	// Remote write receiver on: an empty write request is rejected as malformed (400), not 404.
	resp, err := http.Post(base+"/api/v1/write", "application/x-protobuf", strings.NewReader("not protobuf"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode/100 != 4 {
		t.Errorf("POST /api/v1/write: %s %s; want a 4xx other than 404 (receiver enabled)", resp.Status, body)
	}

	// Exemplar storage on, sized as configured.
	var cfgData struct {
		YAML string `json:"yaml"`
	}
	if err := promGetJSON(base+"/api/v1/status/config", &cfgData); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfgData.YAML, "max_exemplars: 5000") {
		t.Errorf("loaded config lacks the exemplar storage size:\n%s", cfgData.YAML)
	}
	var flagData map[string]string
	if err := promGetJSON(base+"/api/v1/status/flags", &flagData); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flagData["enable-feature"], "exemplar-storage") || flagData["web.enable-remote-write-receiver"] != "true" {
		t.Errorf("flags: enable-feature=%q web.enable-remote-write-receiver=%q", flagData["enable-feature"], flagData["web.enable-remote-write-receiver"])
	}
}
