package labtest

// Checks of the Grafana side of the lab as a user meets it: the MiniShop dashboard opens with
// working panels (every data source it names is provisioned, every PromQL query parses and only
// uses recording rules that exist), the error-rate panel draws the 10% alert threshold as a red
// line, and the one-click links between metrics, logs and traces point at the right data sources.
//
// Grafana itself is AGPL and not run or imported here: the provisioning files are read as YAML and
// JSON, and Grafana's "$$" escaping is reproduced by grafanaInterpolate (mirroring
// pkg/services/provisioning/values.interpolateValue: split on "$$", expand env vars, join with "$").

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	yaml "go.yaml.in/yaml/v3"
)

// The lab contract's fixed data source uids and their types.
var contractDatasources = map[string]string{"prometheus": "prometheus", "loki": "loki", "jaeger": "jaeger"}

// Series the shop and Prometheus produce (lab contract), i.e. the only non-rule metric names a
// dashboard may query. Classic histogram names: a native-histogram name would silently show nothing.
// The minishop_fault_* gauges are the fault-injection settings (faults.go), as remote write names them.
var contractRawMetrics = []string{
	"request_total", "error_total",
	"request_duration_seconds_bucket", "request_duration_seconds_sum", "request_duration_seconds_count",
	"ALERTS", "ALERTS_FOR_STATE", "up",
	"minishop_fault_payment_failure_rate", "minishop_fault_out_of_stock_rate",
	"minishop_fault_inventory_delay_seconds", "minishop_fault_route_latency_seconds",
}

// Recording rules named by the lab contract; used only while prometheus/rules/*.yml is absent.
var contractRecordingRules = []string{
	"job_route:request_total:rate1m", "job:request_total:rate1m", "job:error_total:rate1m",
	"job:error_ratio:rate1m", "job_reason:error_total:rate1m", "job_route:request_duration_seconds:p95_1m",
}

// provisionedDatasource is one entry of grafana/provisioning/datasources/*.yaml, after Grafana's
// environment interpolation (with an empty environment, as in the compose file).
type provisionedDatasource struct {
	Name      string         `yaml:"name"`
	Type      string         `yaml:"type"`
	UID       string         `yaml:"uid"`
	URL       string         `yaml:"url"`
	Access    string         `yaml:"access"`
	IsDefault bool           `yaml:"isDefault"`
	JSONData  map[string]any `yaml:"jsonData"`
}

// grafanaInterpolate reproduces Grafana's provisioning interpolation of a string value: "$$" is a
// literal "$", anything else that looks like $VAR or ${VAR} is replaced by that environment variable.
func grafanaInterpolate(s string, env map[string]string) string {
	parts := strings.Split(s, "$$")
	for i, p := range parts {
		parts[i] = os.Expand(p, func(k string) string { return env[k] })
	}
	return strings.Join(parts, "$")
}

// interpolateAll applies grafanaInterpolate to every string in a decoded YAML tree.
func interpolateAll(v any, env map[string]string) any {
	switch x := v.(type) {
	case string:
		return grafanaInterpolate(x, env)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = interpolateAll(e, env)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = interpolateAll(e, env)
		}
		return out
	default:
		return v
	}
}

// loadProvisionedDatasources reads the data source provisioning file as Grafana does, keyed by uid.
func loadProvisionedDatasources(t *testing.T) map[string]provisionedDatasource {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, DatasourcesFile))
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatalf("%s: %v", DatasourcesFile, err)
	}
	if v, _ := tree["apiVersion"].(int); v != 1 {
		t.Errorf("%s: apiVersion = %v, want 1", DatasourcesFile, tree["apiVersion"])
	}
	// Round-trip the interpolated tree into the typed struct.
	out, err := yaml.Marshal(interpolateAll(tree, nil))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Datasources []provisionedDatasource `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(out, &file); err != nil {
		t.Fatal(err)
	}
	byUID := map[string]provisionedDatasource{}
	for _, ds := range file.Datasources {
		if ds.UID == "" {
			t.Errorf("data source %q has no fixed uid: Grafana would invent one and dashboard links would break", ds.Name)
			continue
		}
		if _, dup := byUID[ds.UID]; dup {
			t.Errorf("data source uid %q provisioned twice", ds.UID)
		}
		byUID[ds.UID] = ds
	}
	return byUID
}

// recordingRules returns the names of the recording rules and alerts in prometheus/rules/*.yml; if
// that directory has no rule files yet, the contract's recording rule names (and no alerts).
func recordingRules(t *testing.T) (records, alerts map[string]bool) {
	t.Helper()
	records, alerts = map[string]bool{}, map[string]bool{}
	var files []string
	for _, pattern := range []string{"*.yml", "*.yaml"} {
		m, _ := filepath.Glob(filepath.Join(repoRoot, "prometheus", "rules", pattern))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Logf("prometheus/rules/*.yml not found: checking against the contract's rule names")
		for _, r := range contractRecordingRules {
			records[r] = true
		}
		return records, alerts
	}
	for _, rf := range promParseRuleFiles(t, files) {
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records[r.Record] = true
				}
				if r.Alert != "" {
					alerts[r.Alert] = true
				}
			}
		}
	}
	return records, alerts
}

func loadDashboardsT(t *testing.T) map[string]Dashboard {
	t.Helper()
	ds, err := LoadDashboards(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestDashboardsParseAndMiniShopIsThere(t *testing.T) {
	dashboards := loadDashboardsT(t)
	uids := map[string]string{}
	for f, d := range dashboards {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q title %q: both are needed for stable links", f, d.UID, d.Title)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s both use dashboard uid %q", prev, f, d.UID)
		}
		uids[d.UID] = f
		if len(d.AllPanels()) == 0 {
			t.Errorf("%s: no panels", f)
		}
	}
	f, ok := uids["minishop"]
	if !ok {
		t.Fatalf("no dashboard with uid minishop among %v", uids)
	}
	d := dashboards[f]
	if d.Title != "MiniShop" {
		t.Errorf("dashboard minishop title = %q, want MiniShop", d.Title)
	}
	// Data visible while you watch: short refresh, short default range.
	if d.Refresh != "5s" {
		t.Errorf("dashboard minishop refresh = %q, want 5s", d.Refresh)
	}
	if d.Time.From != "now-15m" || d.Time.To != "now" {
		t.Errorf("dashboard minishop time = %+v, want now-15m..now", d.Time)
	}
}

func TestEveryPanelSaysWhyItIsThere(t *testing.T) {
	for f, d := range loadDashboardsT(t) {
		for _, p := range d.AllPanels() {
			desc := strings.TrimSpace(p.Description)
			if desc == "" {
				t.Errorf("%s: panel %q has no description", f, p.Title)
			}
			if strings.Contains(desc, "\n") {
				t.Errorf("%s: panel %q description is not one line", f, p.Title)
			}
			if p.Title == "" {
				t.Errorf("%s: panel id %d has no title", f, p.ID)
			}
		}
	}
}

func TestEveryPanelDatasourceIsProvisioned(t *testing.T) {
	provisioned := loadProvisionedDatasources(t)
	for uid, typ := range contractDatasources {
		ds, ok := provisioned[uid]
		if !ok {
			t.Errorf("contract data source uid %q is not provisioned", uid)
			continue
		}
		if ds.Type != typ {
			t.Errorf("data source %q: type %q, want %q", uid, ds.Type, typ)
		}
	}
	check := func(where string, ref *DatasourceRef) {
		if ref == nil {
			t.Errorf("%s: no data source (Grafana would use whatever is the default)", where)
			return
		}
		ds, ok := provisioned[ref.UID]
		if !ok {
			t.Errorf("%s: data source uid %q is not provisioned (\"Datasource not found\")", where, ref.UID)
			return
		}
		if ref.Type != ds.Type {
			t.Errorf("%s: data source %q has type %q in the dashboard but %q when provisioned", where, ref.UID, ref.Type, ds.Type)
		}
	}
	for f, d := range loadDashboardsT(t) {
		for _, p := range d.AllPanels() {
			if p.Type == "text" {
				continue
			}
			check(f+" panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				where := f + " panel " + p.Title + " target " + tg.RefID
				if tg.Datasource != nil {
					check(where, tg.Datasource)
				}
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: empty query", where)
				}
			}
		}
	}
}

// findPanel returns the only panel of the minishop dashboard one of whose queries contains substr.
func findPanel(t *testing.T, substr string) Panel {
	t.Helper()
	var found []Panel
	for _, d := range loadDashboardsT(t) {
		if d.UID != "minishop" {
			continue
		}
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, substr) {
					found = append(found, p)
					break
				}
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one minishop panel querying %s, found %d", substr, len(found))
	}
	return found[0]
}

func TestErrorRatePanelDrawsRedThresholdLineAtTenPercent(t *testing.T) {
	p := findPanel(t, "job:error_ratio:rate1m")
	var fc panelThresholds
	if err := json.Unmarshal(p.FieldConfig, &fc); err != nil {
		t.Fatalf("panel %q fieldConfig: %v", p.Title, err)
	}
	def := fc.Defaults
	if p.Type != "timeseries" {
		t.Errorf("panel %q is a %q; a threshold line needs a timeseries panel", p.Title, p.Type)
	}
	// The ratio is 0..1: percentunit shows 0.1 as 10%.
	if def.Unit != "percentunit" {
		t.Errorf("panel %q unit = %q, want percentunit", p.Title, def.Unit)
	}
	// Visible as a line (Grafana modes "line", "line+area", "dashed", "dashed+area"), not hidden ("off").
	switch def.Custom.ThresholdsStyle.Mode {
	case "line", "line+area", "dashed", "dashed+area":
	default:
		t.Errorf("panel %q thresholdsStyle.mode = %q, want the threshold drawn as a line", p.Title, def.Custom.ThresholdsStyle.Mode)
	}
	if def.Thresholds.Mode != "absolute" {
		t.Errorf("panel %q thresholds mode = %q, want absolute (0.1 means 10%%, not 10%% of the axis)", p.Title, def.Thresholds.Mode)
	}
	red := false
	for _, s := range def.Thresholds.Steps {
		if s.Value != nil && math.Abs(*s.Value-0.1) < 1e-9 && (s.Color == "red" || strings.Contains(s.Color, "red") || strings.EqualFold(s.Color, "#F2495C")) {
			red = true
		}
	}
	if !red {
		t.Errorf("panel %q has no red threshold step at 0.1 (the MiniShopHighErrorRate threshold): %+v", p.Title, def.Thresholds.Steps)
	}
}

func TestAlertStatePanelWatchesTheContractAlert(t *testing.T) {
	p := findPanel(t, "ALERTS{")
	for _, tg := range p.Targets {
		if !strings.Contains(tg.Expr, `alertname="MiniShopHighErrorRate"`) {
			t.Errorf("panel %q target %s does not select alertname=\"MiniShopHighErrorRate\": %s", p.Title, tg.RefID, tg.Expr)
		}
	}
}

func TestFailureLogsPanelQueriesLoki(t *testing.T) {
	p := findPanel(t, "payment failed")
	if p.Type != "logs" {
		t.Errorf("panel %q type = %q, want logs", p.Title, p.Type)
	}
	if p.Datasource == nil || p.Datasource.UID != "loki" {
		t.Errorf("panel %q data source = %+v, want loki", p.Title, p.Datasource)
	}
}

// promQLParser parses like Prometheus 3.16 with default options.
var promQLParser = parser.NewParser(parser.Options{})

// metricNames returns the metric names of every vector/matrix selector in expr, and the values of
// every alertname matcher.
func metricNames(t *testing.T, where, expr string) (names, alertnames []string) {
	t.Helper()
	e, err := promQLParser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: PromQL does not parse: %v\n  %s", where, err, expr)
		return nil, nil
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" && name == "" {
				name = m.Value
			}
			if m.Name == "alertname" {
				alertnames = append(alertnames, m.Value)
			}
		}
		if name == "" {
			t.Errorf("%s: selector %s has no metric name", where, vs)
		}
		names = append(names, name)
		return nil
	})
	return names, alertnames
}

// checkPromQL parses expr and checks that every metric it reads exists in the lab: a recording rule
// defined in prometheus/rules, or one of the contract's raw series.
func checkPromQL(t *testing.T, where, expr string, records, alerts map[string]bool) {
	t.Helper()
	names, alertnames := metricNames(t, where, expr)
	for _, n := range names {
		if strings.Contains(n, ":") {
			if !records[n] {
				t.Errorf("%s: recording rule %q is not defined in prometheus/rules/*.yml", where, n)
			}
			continue
		}
		if !slices.Contains(contractRawMetrics, n) {
			t.Errorf("%s: metric %q is neither a recording rule nor one of the lab's series %v", where, n, contractRawMetrics)
		}
	}
	if len(alerts) > 0 {
		for _, a := range alertnames {
			if !alerts[a] {
				t.Errorf("%s: alert %q is not defined in prometheus/rules/*.yml", where, a)
			}
		}
	}
}

func TestDashboardPromQLParsesAndUsesExistingRules(t *testing.T) {
	records, alerts := recordingRules(t)
	queries, err := DashboardPromQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatal("no PromQL queries found in the dashboards")
	}
	used := map[string]bool{}
	for _, q := range queries {
		checkPromQL(t, q.String(), q.Expr, records, alerts)
		names, _ := metricNames(t, q.String(), q.Expr)
		for _, n := range names {
			used[n] = true
		}
	}
	// The panels the lab promises (contract): QPS total and by route, P95 by route, error ratio,
	// errors by reason, alert state.
	for _, want := range []string{
		"job:request_total:rate1m", "job_route:request_total:rate1m", "job_route:request_duration_seconds:p95_1m",
		"job:error_ratio:rate1m", "job_reason:error_total:rate1m", "ALERTS",
	} {
		if !used[want] {
			t.Errorf("no dashboard query reads %s", want)
		}
	}
	// At least one query asks for exemplars, on the raw histogram (recording rules carry none).
	exemplars := false
	for _, q := range queries {
		if q.Exemplar && strings.Contains(q.Expr, "request_duration_seconds_bucket") {
			exemplars = true
		}
	}
	if !exemplars {
		t.Error("no query shows exemplars of request_duration_seconds_bucket: the metric -> trace link is unreachable")
	}
}

// streamSelectorLabels returns the label names of the stream selector that starts a LogQL query.
func streamSelectorLabels(logql string) []string {
	s := strings.TrimSpace(logql)
	end := strings.Index(s, "}")
	if !strings.HasPrefix(s, "{") || end < 0 {
		return nil
	}
	var out []string
	for _, m := range regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"`).FindAllStringSubmatch(s[1:end], -1) {
		out = append(out, m[1])
	}
	return out
}

func TestDashboardLogQLSelectsIndexedLabels(t *testing.T) {
	indexed := lokiIndexLabels(t)
	queries, err := DashboardLogQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatal("no Loki queries found in the dashboards")
	}
	for _, q := range queries {
		labels := streamSelectorLabels(q.Expr)
		if len(labels) == 0 {
			t.Errorf("%s: no stream selector {label=\"value\"} at the start of %q", q, q.Expr)
		}
		for _, l := range labels {
			if !indexed[l] {
				t.Errorf("%s: stream selector label %q is not an index label in loki/loki.yaml (index labels: %v)", q, l, sortedKeys(indexed))
			}
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// jsonPath digs into decoded YAML/JSON: maps by key, lists by index (as int).
func jsonPath(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestSignalLinksPointAtTheRightDatasources(t *testing.T) {
	ds := loadProvisionedDatasources(t)
	records, alerts := recordingRules(t)
	wantType := func(what, uid, typ string) {
		t.Helper()
		got, ok := ds[uid]
		if !ok {
			t.Errorf("%s points at data source uid %q, which is not provisioned", what, uid)
			return
		}
		if got.Type != typ {
			t.Errorf("%s points at %q, a %s data source; want %s", what, uid, got.Type, typ)
		}
	}

	// Metrics -> traces: exemplars labelled trace_id open in Jaeger.
	prom := ds["prometheus"]
	dests, _ := prom.JSONData["exemplarTraceIdDestinations"].([]any)
	if len(dests) == 0 {
		t.Error("prometheus: no exemplarTraceIdDestinations")
	}
	for i := range dests {
		name, _ := jsonPath(dests, i, "name").(string)
		uid, _ := jsonPath(dests, i, "datasourceUid").(string)
		if name != "trace_id" {
			t.Errorf("prometheus exemplar destination %d reads exemplar label %q; the shop's exemplars carry trace_id", i, name)
		}
		wantType("prometheus exemplar destination", uid, "jaeger")
	}

	// Logs -> traces: the structured-metadata key trace_id becomes a link to Jaeger.
	loki := ds["loki"]
	fields, _ := loki.JSONData["derivedFields"].([]any)
	found := false
	for i := range fields {
		uid, _ := jsonPath(fields, i, "datasourceUid").(string)
		if uid == "" {
			continue
		}
		found = true
		wantType("loki derived field", uid, "jaeger")
		if mt, _ := jsonPath(fields, i, "matcherType").(string); mt != "label" {
			t.Errorf("loki derived field %d matcherType = %q, want label (trace_id is structured metadata, not in the log line)", i, mt)
		}
		if re, _ := jsonPath(fields, i, "matcherRegex").(string); re != "trace_id" {
			t.Errorf("loki derived field %d matcherRegex = %q, want the key trace_id", i, re)
		}
		// After Grafana's interpolation the internal link's query must be the field value itself.
		if url, _ := jsonPath(fields, i, "url").(string); url != "${__value.raw}" {
			t.Errorf("loki derived field %d url = %q after Grafana interpolation, want ${__value.raw} (write $${__value.raw} in YAML)", i, url)
		}
	}
	if !found {
		t.Error("loki: no derived field links to a trace data source")
	}

	jaeger := ds["jaeger"]
	// Traces -> logs: a span opens the Loki lines of its trace.
	t2l, _ := jaeger.JSONData["tracesToLogsV2"].(map[string]any)
	if t2l == nil {
		t.Fatal("jaeger: no tracesToLogsV2")
	}
	uid, _ := t2l["datasourceUid"].(string)
	wantType("jaeger tracesToLogsV2", uid, "loki")
	filterByTrace, _ := t2l["filterByTraceID"].(bool)
	if custom, _ := t2l["customQuery"].(bool); custom {
		q, _ := t2l["query"].(string)
		if !strings.Contains(q, "trace_id") || !strings.Contains(q, "${__trace.traceId}") {
			t.Errorf("jaeger tracesToLogsV2 query %q does not filter trace_id by ${__trace.traceId} after interpolation", q)
		}
		indexed := lokiIndexLabels(t)
		labels := streamSelectorLabels(q)
		if len(labels) == 0 {
			t.Errorf("jaeger tracesToLogsV2 query %q has no stream selector", q)
		}
		for _, l := range labels {
			if !indexed[l] {
				t.Errorf("jaeger tracesToLogsV2 query selects %q, not an index label in loki/loki.yaml", l)
			}
		}
	} else if !filterByTrace {
		t.Error("jaeger tracesToLogsV2 neither filters by trace id nor uses a custom query that does")
	}

	// Traces -> metrics: queries parse (with $__tags filled in) and use existing rules.
	t2m, _ := jaeger.JSONData["tracesToMetrics"].(map[string]any)
	if t2m == nil {
		t.Fatal("jaeger: no tracesToMetrics")
	}
	uid, _ = t2m["datasourceUid"].(string)
	wantType("jaeger tracesToMetrics", uid, "prometheus")
	// The span's service.name must become the metrics' job label, or $__tags matches no series.
	tags, _ := t2m["tags"].([]any)
	mapsJob := false
	for i := range tags {
		key, _ := jsonPath(tags, i, "key").(string)
		value, _ := jsonPath(tags, i, "value").(string)
		if key == "service.name" && value == "job" {
			mapsJob = true
		}
	}
	if !mapsJob {
		t.Errorf("jaeger tracesToMetrics tags %v do not map service.name to the metrics' job label", tags)
	}
	qs, _ := t2m["queries"].([]any)
	if len(qs) == 0 {
		t.Error("jaeger tracesToMetrics has no queries")
	}
	for i := range qs {
		q, _ := jsonPath(qs, i, "query").(string)
		name, _ := jsonPath(qs, i, "name").(string)
		// Grafana replaces $__tags with the mapped span tags, e.g. job="minishop".
		expr := strings.ReplaceAll(q, "$__tags", `job="minishop"`)
		checkPromQL(t, "jaeger tracesToMetrics query "+name, expr, records, alerts)
	}
}

func TestDatasourceURLsUseComposeServiceNames(t *testing.T) {
	// Grafana runs in the compose network: it reaches the backends by service name and container
	// port (contract), never through localhost or a host port.
	want := map[string]string{
		"prometheus": "http://prometheus:9090",
		"loki":       "http://loki:3100",
		"jaeger":     "http://jaeger:16686",
	}
	ds := loadProvisionedDatasources(t)
	for uid, url := range want {
		if got := strings.TrimSuffix(ds[uid].URL, "/"); got != url {
			t.Errorf("data source %q url = %q, want %q", uid, got, url)
		}
		if a := ds[uid].Access; a != "" && a != "proxy" {
			t.Errorf("data source %q access = %q: the browser cannot resolve compose service names, use proxy", uid, a)
		}
	}
}

func TestGrafanaInterpolateMatchesGrafana(t *testing.T) {
	// The escaping rules the checks above rely on (Grafana's provisioning values_test cases).
	env := map[string]string{"PORT": "9090"}
	for in, want := range map[string]string{
		"$${__value.raw}":              "${__value.raw}",
		"${__value.raw}":               "", // unescaped: silently becomes an empty env var
		"http://prometheus:$PORT":      "http://prometheus:9090",
		"http://prometheus:${PORT}/$$": "http://prometheus:9090/$",
		"{$$__tags}":                   "{$__tags}",
	} {
		if got := grafanaInterpolate(in, env); got != want {
			t.Errorf("grafanaInterpolate(%q) = %q, want %q", in, got, want)
		}
	}
}
