package labtest

// Checks of the Grafana side of the lab as a user meets it, as strictly as a machine can without
// running Grafana: every dashboard opens with working panels (data sources provisioned, panel types,
// options and units that Grafana 12 has, PromQL that parses and reads series that exist, from the job
// that produces them), the MiniShop dashboard links to the Telemetry pipeline dashboard, an anonymous
// visitor may use Explore (else every log -> trace and exemplar -> trace link is hidden), and the links
// between metrics, logs and traces use the keys Grafana reads and match what the shop emits.
//
// Grafana itself is AGPL and not run or imported here. The keys and values below were read in
// Grafana's source (grafana/grafana, 12.x; the files are named next to each list) and are compared
// with the provisioning files read as YAML and JSON. Grafana's "$$" escaping is reproduced by
// grafanaInterpolate (pkg/services/provisioning/values.interpolateValue: split on "$$", expand env
// vars, join with "$").

import (
	"encoding/json"
	"fmt"
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
// dashboard may query about the shop. Classic histogram names: a native-histogram name would silently
// show nothing. The minishop_fault_* gauges are the fault-injection settings (faults.go).
var contractRawMetrics = []string{
	"request_total", "error_total",
	"request_duration_seconds_bucket", "request_duration_seconds_sum", "request_duration_seconds_count",
	"ALERTS", "ALERTS_FOR_STATE", "up",
	"minishop_fault_payment_failure_rate", "minishop_fault_out_of_stock_rate",
	"minishop_fault_inventory_delay_seconds", "minishop_fault_route_latency_seconds",
	"minishop_fault_payment_timeout_rate", // exported by the payment gateway, which holds the payment settings
	// The Collector's span_metrics connector (collector/config.yaml), the names Jaeger's Monitor tab reads.
	"traces_span_metrics_calls_total", "traces_span_metrics_duration_milliseconds_bucket",
	// The Go SDK v1.47's own metrics (OTEL_GO_X_OBSERVABILITY), remote-written with the shop's: what it lost.
	"otel_sdk_processor_span_processed_total", "otel_sdk_processor_log_processed_total",
	"otel_sdk_exporter_span_exported_total", "otel_sdk_exporter_log_exported_total",
	"otel_sdk_processor_span_queue_size", "otel_sdk_processor_span_queue_capacity",
	"otel_sdk_processor_log_queue_size", "otel_sdk_processor_log_queue_capacity",
}

// pipelineMetrics are the observability stack's own metrics the Telemetry pipeline dashboard reads, each
// with the scrape job (prometheus/prometheus.yml) that brings it in. Names as Prometheus stores them,
// read in the sources of the versions the lab runs:
//   - job otel-collector: Collector v0.161 (go.opentelemetry.io/collector/... internal/metadata/
//     generated_telemetry.go of receiverhelper, exporterhelper, processorhelper, batchprocessor,
//     memorylimiterprocessor and service; contrib prometheusremotewriteexporter). collector/config.yaml
//     sets without_type_suffix and without_units, which otelconf v0.25 (prometheusReaderOpts) turns
//     into the NoTranslation strategy: no _total, no unit suffix, and attribute names keep their dots
//     (otel.signal).
//   - job jaeger: Jaeger 2.13's older Collector core keeps the default suffixes, so counters end in _total.
//   - job prometheus: Prometheus v3.16 (web/web.go newMetrics, tsdb/head.go newHeadMetrics).
//   - job loki: Loki 3.7.8 (pkg/loghttp/push/push.go, pkg/validation/validate.go).
var pipelineMetrics = map[string]string{
	"otelcol_receiver_accepted_spans":                               "otel-collector",
	"otelcol_receiver_refused_spans":                                "otel-collector",
	"otelcol_receiver_accepted_metric_points":                       "otel-collector",
	"otelcol_receiver_refused_metric_points":                        "otel-collector",
	"otelcol_receiver_accepted_log_records":                         "otel-collector",
	"otelcol_receiver_refused_log_records":                          "otel-collector",
	"otelcol_exporter_sent_spans":                                   "otel-collector",
	"otelcol_exporter_send_failed_spans":                            "otel-collector",
	"otelcol_exporter_enqueue_failed_spans":                         "otel-collector",
	"otelcol_exporter_sent_metric_points":                           "otel-collector",
	"otelcol_exporter_send_failed_metric_points":                    "otel-collector",
	"otelcol_exporter_enqueue_failed_metric_points":                 "otel-collector",
	"otelcol_exporter_sent_log_records":                             "otel-collector",
	"otelcol_exporter_send_failed_log_records":                      "otel-collector",
	"otelcol_exporter_enqueue_failed_log_records":                   "otel-collector",
	"otelcol_exporter_queue_size":                                   "otel-collector",
	"otelcol_exporter_queue_capacity":                               "otel-collector",
	"otelcol_exporter_prometheusremotewrite_translated_time_series": "otel-collector",
	"otelcol_processor_incoming_items":                              "otel-collector",
	"otelcol_processor_outgoing_items":                              "otel-collector",
	"otelcol_processor_batch_batch_send_size_bucket":                "otel-collector",
	"otelcol_processor_batch_batch_send_size_sum":                   "otel-collector",
	"otelcol_processor_batch_batch_send_size_count":                 "otel-collector",
	"otelcol_processor_batch_timeout_trigger_send":                  "otel-collector",
	"otelcol_processor_batch_batch_size_trigger_send":               "otel-collector",
	"otelcol_processor_memory_limiter_refused_spans":                "otel-collector",
	"otelcol_processor_memory_limiter_refused_metric_points":        "otel-collector",
	"otelcol_processor_memory_limiter_refused_log_records":          "otel-collector",
	"otelcol_process_runtime_heap_alloc_bytes":                      "otel-collector",
	"otelcol_receiver_accepted_spans_total":                         "jaeger",
	"otelcol_receiver_refused_spans_total":                          "jaeger",
	"otelcol_exporter_sent_spans_total":                             "jaeger",
	"otelcol_exporter_send_failed_spans_total":                      "jaeger",
	"prometheus_http_requests_total":                                "prometheus",
	"prometheus_tsdb_out_of_order_samples_total":                    "prometheus",
	"prometheus_tsdb_too_old_samples_total":                         "prometheus",
	"prometheus_tsdb_out_of_bound_samples_total":                    "prometheus",
	"loki_distributor_lines_received_total":                         "loki",
	"loki_discarded_samples_total":                                  "loki",
}

// Recording rules named by the lab contract; used only while prometheus/rules/*.yml is absent.
var contractRecordingRules = []string{
	"job_route:request_total:rate1m", "job:request_total:rate1m", "job:error_total:rate1m",
	"job:error_ratio:rate1m", "job_reason:error_total:rate1m", "job_route:request_duration_seconds:p95_1m",
}

// provisionedDatasource is one entry of grafana/provisioning/datasources/*.yaml, after Grafana's
// environment interpolation.
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

// readDatasourcesTree reads the data source provisioning file as a YAML tree, before interpolation.
func readDatasourcesTree(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, DatasourcesFile))
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatalf("%s: %v", DatasourcesFile, err)
	}
	return tree
}

// grafanaEnv is the environment the grafana service of docker-compose.yml gives Grafana (with
// .env.example's values), which the provisioning file's ${VAR}s expand from.
func grafanaEnv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range loadCompose(t).Services["grafana"].Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// loadProvisionedDatasources reads the data source provisioning file as Grafana in the compose lab
// does, keyed by uid.
func loadProvisionedDatasources(t *testing.T) map[string]provisionedDatasource {
	t.Helper()
	tree := readDatasourcesTree(t)
	if v, _ := tree["apiVersion"].(int); v != 1 {
		t.Errorf("%s: apiVersion = %v, want 1", DatasourcesFile, tree["apiVersion"])
	}
	// Round-trip the interpolated tree into the typed struct.
	out, err := yaml.Marshal(interpolateAll(tree, grafanaEnv(t)))
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

// scrapeJobs returns the job names of prometheus/prometheus.yml.
func scrapeJobs(t *testing.T) map[string]bool {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
	}
	return jobs
}

func loadDashboardsT(t *testing.T) map[string]Dashboard {
	t.Helper()
	ds, err := LoadDashboards(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// dashboardByUID returns the provisioned dashboard with that uid, failing the test if there is none.
func dashboardByUID(t *testing.T, uid string) Dashboard {
	t.Helper()
	for _, d := range loadDashboardsT(t) {
		if d.UID == uid {
			return d
		}
	}
	t.Fatalf("no dashboard with uid %q in %s", uid, DashboardsDir)
	return Dashboard{}
}

func TestDashboardsParseWithStableUIDs(t *testing.T) {
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
	// The lab's two dashboards, moving while you watch: short refresh, short default range.
	for uid, title := range map[string]string{"minishop": "MiniShop", "pipeline": "Telemetry pipeline"} {
		f, ok := uids[uid]
		if !ok {
			t.Errorf("no dashboard with uid %s among %v", uid, uids)
			continue
		}
		d := dashboards[f]
		if d.Title != title {
			t.Errorf("dashboard %s title = %q, want %q", uid, d.Title, title)
		}
		if d.Refresh != "5s" {
			t.Errorf("dashboard %s refresh = %q, want 5s", uid, d.Refresh)
		}
		if d.Time.From != "now-15m" || d.Time.To != "now" {
			t.Errorf("dashboard %s time = %+v, want now-15m..now", uid, d.Time)
		}
	}
}

// The pipeline dashboard is one click away from the MiniShop dashboard (and back), and every
// dashboard link opens a provisioned dashboard (Grafana's route /d/:uid/:slug?,
// public/app/routes/routes.tsx).
func TestPipelineDashboardIsLinkedFromMiniShop(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range loadDashboardsT(t) {
		uids[d.UID] = true
	}
	linkRe := regexp.MustCompile(`^/d/([A-Za-z0-9_-]+)(/[^?]*)?(\?.*)?$`)
	linksTo := func(d Dashboard, uid string) bool {
		for _, l := range d.Links {
			if m := linkRe.FindStringSubmatch(l.URL); m != nil && m[1] == uid {
				return true
			}
		}
		return false
	}
	for f, d := range loadDashboardsT(t) {
		for _, l := range d.Links {
			// DashboardLink.type is "link" or "dashboards" (DashboardLinkType, dashboard schema).
			if l.Type != "link" && l.Type != "dashboards" {
				t.Errorf("%s: link %q has type %q, want link or dashboards", f, l.Title, l.Type)
			}
			if l.Type != "link" {
				continue
			}
			if l.Title == "" {
				t.Errorf("%s: link to %s has no title", f, l.URL)
			}
			if m := linkRe.FindStringSubmatch(l.URL); m == nil || !uids[m[1]] {
				t.Errorf("%s: link %q goes to %q, which is not /d/<uid> of a provisioned dashboard", f, l.Title, l.URL)
			}
		}
	}
	if !linksTo(dashboardByUID(t, "minishop"), "pipeline") {
		t.Error("the MiniShop dashboard has no link to the Telemetry pipeline dashboard (/d/pipeline)")
	}
	if !linksTo(dashboardByUID(t, "pipeline"), "minishop") {
		t.Error("the Telemetry pipeline dashboard has no link back to the MiniShop dashboard (/d/minishop)")
	}
}

func TestGrafanaEveryPanelSaysWhyItIsThere(t *testing.T) {
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

func TestGrafanaEveryPanelDatasourceIsProvisioned(t *testing.T) {
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
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				where := f + " panel " + p.Title + " target " + tg.RefID
				if tg.Datasource != nil {
					check(where, tg.Datasource)
				}
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: empty query", where)
				}
				if tg.RefID == "" || refIDs[tg.RefID] {
					t.Errorf("%s: refId empty or used twice in the panel (overrides match queries by refId)", where)
				}
				refIDs[tg.RefID] = true
			}
		}
	}
}

// --- Panel types, options and units that Grafana 12 has ----------------------------------------------

// panelOptionKeys are the option keys of each panel type the lab uses, from the panels' generated
// configuration types: public/app/plugins/panel/{timeseries,logs}/panelcfg.gen.ts and
// public/app/plugins/panel/stat/panelcfg.cue, with the common types of
// packages/grafana-schema/src/common/common.gen.ts (OptionsWithTimezones, SingleStatBaseOptions,
// OptionsWithTextFormatting). "row" panels have no options.
var panelOptionKeys = map[string][]string{
	"timeseries": {"legend", "orientation", "timeCompare", "tooltip", "timezone"},
	"stat": {"graphMode", "colorMode", "justifyMode", "textMode", "wideLayout", "showPercentChange",
		"percentChangeColorMode", "reduceOptions", "orientation", "text"},
	"logs": {"controlsStorageKey", "dedupStrategy", "detailsMode", "displayedFields", "enableInfiniteScrolling",
		"enableLogDetails", "fontSize", "listStyle", "noInteractions", "prettifyLogMessage", "showCommonLabels",
		"showControls", "showFieldSelector", "showLabels", "showLogAttributes", "showLogContextToggle", "showTime",
		"sortOrder", "syntaxHighlighting", "timestampResolution", "wrapLogMessage"},
	"row": nil,
}

// Nested option objects (common.gen.ts: VizLegendOptions, VizTooltipOptions, ReduceDataOptions).
var (
	legendKeys        = []string{"asTable", "calcs", "displayMode", "isVisible", "placement", "showLegend", "sortBy", "sortDesc", "width"}
	tooltipKeys       = []string{"hideZeros", "maxHeight", "maxWidth", "mode", "sort"}
	reduceOptionsKeys = []string{"calcs", "fields", "limit", "values"}
	// Enum values: LegendDisplayMode, LegendPlacement, TooltipDisplayMode, SortOrder, GraphThresholdsStyleMode.
	legendDisplayModes   = []string{"hidden", "list", "table"}
	legendPlacements     = []string{"bottom", "right"}
	tooltipModes         = []string{"multi", "none", "single"}
	sortOrders           = []string{"asc", "desc", "none"}
	thresholdsStyleModes = []string{"area", "dashed", "dashed+area", "line", "line+area", "off", "series"}
)

// fieldConfigKeys are FieldConfig's keys (packages/grafana-data/src/types/dataFrame.ts).
var fieldConfigKeys = []string{"displayName", "displayNameFromDS", "description", "filterable", "writeable", "unit",
	"decimals", "min", "max", "interval", "mappings", "thresholds", "color", "nullValueMode", "links", "actions",
	"noValue", "type", "custom", "fieldMinMax"}

// graphFieldConfigKeys are the timeseries panel's fieldConfig.custom keys: GraphFieldConfig and the
// configs it extends (LineConfig, FillConfig, PointsConfig, AxisConfig, BarConfig, StackableFieldConfig,
// HideableFieldConfig) in packages/grafana-schema/src/common/common.gen.ts.
var graphFieldConfigKeys = []string{"drawStyle", "gradientMode", "insertNulls", "thresholdsStyle", "transform", "showValues",
	"lineColor", "lineInterpolation", "lineStyle", "lineWidth", "spanNulls",
	"fillBelowTo", "fillColor", "fillOpacity",
	"pointColor", "pointSize", "pointSymbol", "showPoints",
	"axisBorderShow", "axisCenteredZero", "axisColorMode", "axisGridShow", "axisLabel", "axisPlacement",
	"axisSoftMax", "axisSoftMin", "axisWidth", "scaleDistribution",
	"barAlignment", "barMaxWidth", "barWidthFactor", "stacking", "hideFrom"}

// grafanaUnits are the unit ids the lab's panels may use, from getCategories in
// packages/grafana-data/src/valueFormats/categories.ts; "suffix:<text>" is a custom unit.
var grafanaUnits = []string{"none", "short", "percent", "percentunit", "s", "ms", "bytes", "reqps", "cps", "ops"}

// overrideMatchers are the FieldMatcherID values (packages/grafana-data/src/transformations/matchers/ids.ts)
// the lab uses.
var overrideMatchers = []string{"byName", "byFrameRefID", "byRegexp", "byType"}

// unknownKeys returns the keys of m that are not in known.
func unknownKeys(m map[string]any, known []string) []string {
	var out []string
	for k := range m {
		if !slices.Contains(known, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func validUnit(u string) bool {
	return slices.Contains(grafanaUnits, u) || (strings.HasPrefix(u, "suffix:") && len(u) > len("suffix:"))
}

func TestGrafanaPanelTypesAndOptionsExistInGrafana12(t *testing.T) {
	for f, d := range loadDashboardsT(t) {
		var walk func([]Panel)
		walk = func(ps []Panel) {
			for _, p := range ps {
				where := fmt.Sprintf("%s panel %q", f, p.Title)
				known, ok := panelOptionKeys[p.Type]
				if !ok {
					t.Errorf("%s: panel type %q is not one the lab checks against Grafana 12 (%v)", where, p.Type, sortedKeys(boolSet(panelOptionKeys)))
					continue
				}
				if p.Type == "row" {
					walk(p.Panels)
					continue
				}
				var opts map[string]any
				if len(p.Options) > 0 {
					if err := json.Unmarshal(p.Options, &opts); err != nil {
						t.Errorf("%s: options: %v", where, err)
					}
				}
				if u := unknownKeys(opts, known); len(u) > 0 {
					t.Errorf("%s: options %v do not exist for a %s panel in Grafana 12", where, u, p.Type)
				}
				checkVizOptions(t, where, opts)
				checkFieldConfig(t, where, p.Type, p.FieldConfig)
			}
		}
		walk(d.Panels)
	}
}

func boolSet[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func checkVizOptions(t *testing.T, where string, opts map[string]any) {
	t.Helper()
	if legend, ok := opts["legend"].(map[string]any); ok {
		if u := unknownKeys(legend, legendKeys); len(u) > 0 {
			t.Errorf("%s: legend keys %v do not exist (VizLegendOptions)", where, u)
		}
		if m, _ := legend["displayMode"].(string); !slices.Contains(legendDisplayModes, m) {
			t.Errorf("%s: legend.displayMode %q, want one of %v", where, m, legendDisplayModes)
		}
		if p, _ := legend["placement"].(string); !slices.Contains(legendPlacements, p) {
			t.Errorf("%s: legend.placement %q, want one of %v", where, p, legendPlacements)
		}
	}
	if tooltip, ok := opts["tooltip"].(map[string]any); ok {
		if u := unknownKeys(tooltip, tooltipKeys); len(u) > 0 {
			t.Errorf("%s: tooltip keys %v do not exist (VizTooltipOptions)", where, u)
		}
		if m, _ := tooltip["mode"].(string); !slices.Contains(tooltipModes, m) {
			t.Errorf("%s: tooltip.mode %q, want one of %v", where, m, tooltipModes)
		}
		if s, _ := tooltip["sort"].(string); !slices.Contains(sortOrders, s) {
			t.Errorf("%s: tooltip.sort %q, want one of %v", where, s, sortOrders)
		}
	}
	if ro, ok := opts["reduceOptions"].(map[string]any); ok {
		if u := unknownKeys(ro, reduceOptionsKeys); len(u) > 0 {
			t.Errorf("%s: reduceOptions keys %v do not exist (ReduceDataOptions)", where, u)
		}
	}
}

func checkFieldConfig(t *testing.T, where, panelType string, raw json.RawMessage) {
	t.Helper()
	var fc struct {
		Defaults  map[string]any `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID string `json:"id"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	}
	if len(raw) == 0 {
		return
	}
	if err := json.Unmarshal(raw, &fc); err != nil {
		t.Errorf("%s: fieldConfig: %v", where, err)
		return
	}
	if u := unknownKeys(fc.Defaults, fieldConfigKeys); len(u) > 0 {
		t.Errorf("%s: fieldConfig.defaults keys %v do not exist (FieldConfig)", where, u)
	}
	if unit, ok := fc.Defaults["unit"].(string); ok && !validUnit(unit) {
		t.Errorf("%s: unit %q is not a Grafana unit id", where, unit)
	}
	custom, _ := fc.Defaults["custom"].(map[string]any)
	if panelType == "timeseries" {
		if u := unknownKeys(custom, graphFieldConfigKeys); len(u) > 0 {
			t.Errorf("%s: fieldConfig.defaults.custom keys %v do not exist (GraphFieldConfig)", where, u)
		}
		if ts, ok := custom["thresholdsStyle"].(map[string]any); ok {
			if m, _ := ts["mode"].(string); !slices.Contains(thresholdsStyleModes, m) {
				t.Errorf("%s: thresholdsStyle.mode %q, want one of %v", where, m, thresholdsStyleModes)
			}
		}
	}
	for _, o := range fc.Overrides {
		if !slices.Contains(overrideMatchers, o.Matcher.ID) {
			t.Errorf("%s: override matcher %q is not a FieldMatcherID", where, o.Matcher.ID)
		}
		for _, prop := range o.Properties {
			name, isCustom := strings.CutPrefix(prop.ID, "custom.")
			switch {
			case isCustom && panelType == "timeseries" && !slices.Contains(graphFieldConfigKeys, name):
				t.Errorf("%s: override property %q is not a GraphFieldConfig key", where, prop.ID)
			case !isCustom && !slices.Contains(fieldConfigKeys, prop.ID):
				t.Errorf("%s: override property %q is not a FieldConfig key", where, prop.ID)
			case prop.ID == "unit":
				if u, _ := prop.Value.(string); !validUnit(u) {
					t.Errorf("%s: override unit %v is not a Grafana unit id", where, prop.Value)
				}
			}
		}
	}
}

// --- Queries ------------------------------------------------------------------------------------------

// findPanel returns the only panel of the minishop dashboard one of whose queries contains substr.
func findPanel(t *testing.T, substr string) Panel {
	t.Helper()
	var found []Panel
	for _, p := range dashboardByUID(t, "minishop").AllPanels() {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, substr) {
				found = append(found, p)
				break
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one minishop panel querying %s, found %d", substr, len(found))
	}
	return found[0]
}

func TestGrafanaErrorRatePanelDrawsRedThresholdLineAtTenPercent(t *testing.T) {
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

func TestGrafanaAlertStatePanelWatchesTheContractAlert(t *testing.T) {
	p := findPanel(t, "ALERTS{")
	for _, tg := range p.Targets {
		if !strings.Contains(tg.Expr, `alertname="MiniShopHighErrorRate"`) {
			t.Errorf("panel %q target %s does not select alertname=\"MiniShopHighErrorRate\": %s", p.Title, tg.RefID, tg.Expr)
		}
	}
}

func TestGrafanaFailureLogsPanelQueriesLoki(t *testing.T) {
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

// promSelector is one vector/matrix selector of a PromQL expression: its metric name and its
// equality matchers.
type promSelector struct {
	Name   string
	Equals map[string]string
}

// promSelectors returns the selectors of expr (metric name and label=value matchers of each).
func promSelectors(t *testing.T, where, expr string) []promSelector {
	t.Helper()
	e, err := promQLParser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: PromQL does not parse: %v\n  %s", where, err, expr)
		return nil
	}
	var out []promSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := promSelector{Name: vs.Name, Equals: map[string]string{}}
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" && s.Name == "" {
				s.Name = m.Value
			}
			if m.Type.String() == "=" {
				s.Equals[m.Name] = m.Value
			}
		}
		if s.Name == "" {
			t.Errorf("%s: selector %s has no metric name", where, vs)
		}
		out = append(out, s)
		return nil
	})
	return out
}

// metricNames returns the metric names of every selector in expr, and the values of every alertname
// matcher.
func metricNames(t *testing.T, where, expr string) (names, alertnames []string) {
	t.Helper()
	for _, s := range promSelectors(t, where, expr) {
		names = append(names, s.Name)
		if a, ok := s.Equals["alertname"]; ok {
			alertnames = append(alertnames, a)
		}
	}
	return names, alertnames
}

// checkPromQL parses expr and checks that every metric it reads exists in the lab: a recording rule
// defined in prometheus/rules, one of the contract's raw series, or one of the stack's own metrics
// selected by the job that produces it (a Collector name under job="jaeger" or without its job would
// show nothing: Jaeger's names end in _total, the Collector's do not).
func checkPromQL(t *testing.T, where, expr string, records, alerts, jobs map[string]bool) {
	t.Helper()
	for _, s := range promSelectors(t, where, expr) {
		switch job, stack := pipelineMetrics[s.Name]; {
		case strings.Contains(s.Name, ":"):
			if !records[s.Name] {
				t.Errorf("%s: recording rule %q is not defined in prometheus/rules/*.yml", where, s.Name)
			}
		case stack:
			if s.Equals["job"] != job {
				t.Errorf("%s: %s comes from scrape job %q, but the selector has job=%q", where, s.Name, job, s.Equals["job"])
			}
			if !jobs[job] {
				t.Errorf("%s: %s needs the scrape job %q, which prometheus/prometheus.yml lacks", where, s.Name, job)
			}
		case !slices.Contains(contractRawMetrics, s.Name):
			t.Errorf("%s: metric %q is neither a recording rule, one of the shop's series %v, nor a verified metric of the stack", where, s.Name, contractRawMetrics)
		}
		if a, ok := s.Equals["alertname"]; ok && len(alerts) > 0 && !alerts[a] {
			t.Errorf("%s: alert %q is not defined in prometheus/rules/*.yml", where, a)
		}
	}
}

func TestDashboardPromQLParsesAndUsesExistingRules(t *testing.T) {
	records, alerts := recordingRules(t)
	jobs := scrapeJobs(t)
	queries, err := DashboardPromQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatal("no PromQL queries found in the dashboards")
	}
	used := map[string]map[string]bool{}
	for _, q := range queries {
		checkPromQL(t, q.String(), q.Expr, records, alerts, jobs)
		names, _ := metricNames(t, q.String(), q.Expr)
		for _, n := range names {
			if used[q.DashboardUID] == nil {
				used[q.DashboardUID] = map[string]bool{}
			}
			used[q.DashboardUID][n] = true
		}
	}
	// The panels the lab promises (contract): QPS total and by route, P95 by route, error ratio,
	// errors by reason, alert state.
	for _, want := range []string{
		"job:request_total:rate1m", "job_route:request_total:rate1m", "job_route:request_duration_seconds:p95_1m",
		"job:error_ratio:rate1m", "job_reason:error_total:rate1m", "ALERTS",
	} {
		if !used["minishop"][want] {
			t.Errorf("no MiniShop dashboard query reads %s", want)
		}
	}
	// The pipeline dashboard, per signal: accepted, refused, sent, failed to send, dropped on a full queue;
	// and what each backend says it ingested.
	for _, signal := range []string{"spans", "metric_points", "log_records"} {
		for _, m := range []string{"receiver_accepted", "receiver_refused", "exporter_sent", "exporter_send_failed", "exporter_enqueue_failed", "processor_memory_limiter_refused"} {
			if name := "otelcol_" + m + "_" + signal; !used["pipeline"][name] {
				t.Errorf("the pipeline dashboard does not read %s", name)
			}
		}
	}
	for _, want := range []string{
		"otelcol_exporter_queue_size", "otelcol_exporter_queue_capacity", "otelcol_processor_batch_batch_send_size_bucket",
		"otelcol_receiver_accepted_spans_total", "otelcol_exporter_sent_spans_total", // Jaeger
		"prometheus_http_requests_total", "loki_distributor_lines_received_total",
	} {
		if !used["pipeline"][want] {
			t.Errorf("the pipeline dashboard does not read %s", want)
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

// --- Data sources: the keys Grafana reads ---------------------------------------------------------------

// jsonShape describes the JSON a Grafana data source reads: per key, nil (a value), a jsonShape (an
// object) or a jsonList (a list of objects).
type (
	jsonShape map[string]any
	jsonList  struct{ Of jsonShape }
)

// datasourceEntryKeys are the keys of one provisioned data source: the yaml tags of
// upsertDataSourceFromConfigV1 in pkg/services/provisioning/datasources/types.go.
var datasourceEntryKeys = []string{"orgId", "version", "name", "type", "access", "url", "user", "database", "basicAuth",
	"basicAuthUser", "withCredentials", "isDefault", "correlations", "jsonData", "secureJsonData", "editable", "uid"}

// commonJSONData is DataSourceJsonData (packages/grafana-schema/src/common/common.gen.ts).
var commonJSONData = jsonShape{"alertmanagerUid": nil, "authType": nil, "defaultRegion": nil, "manageAlerts": nil, "profile": nil}

// datasourceJSONData is what each data source type reads from jsonData.
var datasourceJSONData = map[string]jsonShape{
	// PromOptions and ExemplarTraceIdDestination, packages/grafana-prometheus/src/types.ts.
	"prometheus": {
		"timeInterval": nil, "queryTimeout": nil, "httpMethod": nil, "directUrl": nil, "customQueryParameters": nil,
		"disableMetricsLookup": nil, "prometheusType": nil, "prometheusVersion": nil, "cacheLevel": nil,
		"defaultEditor": nil, "incrementalQuerying": nil, "incrementalQueryOverlapWindow": nil,
		"disableRecordingRules": nil, "allowAsRecordingRulesTarget": nil, "sigV4Auth": nil, "oauthPassThru": nil,
		"codeModeMetricNamesSuggestionLimit": nil, "seriesEndpoint": nil, "seriesLimit": nil,
		"exemplarTraceIdDestinations": jsonList{jsonShape{"name": nil, "url": nil, "urlDisplayLabel": nil, "datasourceUid": nil}},
	},
	// LokiOptions and DerivedFieldConfig, public/app/plugins/datasource/loki/types.ts.
	"loki": {
		"maxLines": nil, "alertmanager": nil, "keepCookies": nil, "predefinedOperations": nil,
		"derivedFields": jsonList{jsonShape{"matcherRegex": nil, "name": nil, "url": nil, "urlDisplayLabel": nil,
			"datasourceUid": nil, "matcherType": nil, "targetBlank": nil}},
	},
	// JaegerJsonData (public/app/plugins/datasource/jaeger/datasource.ts), NodeGraphOptions, SpanBarOptions,
	// TraceToLogsOptionsV2 and TraceToMetricsOptions (packages/grafana-o11y-ds-frontend/src/...).
	"jaeger": {
		"nodeGraph": jsonShape{"enabled": nil},
		"spanBar":   jsonShape{"type": nil, "tag": nil},
		"tracesToLogsV2": jsonShape{"datasourceUid": nil, "tags": jsonList{jsonShape{"key": nil, "value": nil}},
			"spanStartTimeShift": nil, "spanEndTimeShift": nil, "filterByTraceID": nil, "filterBySpanID": nil,
			"query": nil, "customQuery": nil},
		"tracesToMetrics": jsonShape{"datasourceUid": nil, "tags": jsonList{jsonShape{"key": nil, "value": nil}},
			"queries": jsonList{jsonShape{"name": nil, "query": nil}}, "spanStartTimeShift": nil, "spanEndTimeShift": nil},
	},
}

// datasourceEnums are the values Grafana accepts for the enumerated keys (PromApplication, the HTTP
// method, DerivedFieldConfig.matcherType).
var datasourceEnums = map[string][]string{
	"prometheusType": {"Prometheus", "Cortex", "Mimir", "Thanos"},
	"httpMethod":     {"POST", "GET"},
	"matcherType":    {"label", "regex"},
}

// checkJSONShape reports every key of v that shape does not have, and enumerated values Grafana does
// not know.
func checkJSONShape(t *testing.T, where string, v any, shape jsonShape) {
	t.Helper()
	obj, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s: want an object, got %T", where, v)
		return
	}
	for k, val := range obj {
		sub, known := shape[k]
		if !known {
			t.Errorf("%s: Grafana reads no key %q here (known: %v)", where, k, sortedKeys(boolSet(shape)))
			continue
		}
		if allowed, enum := datasourceEnums[k]; enum && !slices.Contains(allowed, fmt.Sprint(val)) {
			t.Errorf("%s.%s = %v, want one of %v", where, k, val, allowed)
		}
		switch s := sub.(type) {
		case jsonShape:
			checkJSONShape(t, where+"."+k, val, s)
		case jsonList:
			list, ok := val.([]any)
			if !ok {
				t.Errorf("%s.%s: want a list, got %T", where, k, val)
				continue
			}
			for i, e := range list {
				checkJSONShape(t, fmt.Sprintf("%s.%s[%d]", where, k, i), e, s.Of)
			}
		}
	}
}

func TestGrafanaDatasourceKeysAreSpelledAsGrafanaReadsThem(t *testing.T) {
	tree := readDatasourcesTree(t)
	list, _ := tree["datasources"].([]any)
	if len(list) == 0 {
		t.Fatalf("%s: no datasources", DatasourcesFile)
	}
	for i, e := range list {
		ds, _ := e.(map[string]any)
		typ, _ := ds["type"].(string)
		where := fmt.Sprintf("%s datasources[%d] (%s)", DatasourcesFile, i, typ)
		if u := unknownKeys(ds, datasourceEntryKeys); len(u) > 0 {
			t.Errorf("%s: keys %v are not data source provisioning keys", where, u)
		}
		shape, ok := datasourceJSONData[typ]
		if !ok {
			t.Errorf("%s: no verified jsonData keys for type %q", where, typ)
			continue
		}
		full := jsonShape{}
		for k, v := range commonJSONData {
			full[k] = v
		}
		for k, v := range shape {
			full[k] = v
		}
		if jd, ok := ds["jsonData"]; ok {
			checkJSONShape(t, where+" jsonData", jd, full)
		}
	}
}

// --- Anonymous users: Explore and the links it draws -------------------------------------------------

// exploreRoles are the org roles that have datasources:explore: FixedRoleRegistrations in
// pkg/api/accesscontrol.go grants fixed:datasources:explorer to Editor (and Viewer only with the
// deprecated viewers_can_edit); Admin includes everything Editor has.
var exploreRoles = []string{"Editor", "Admin"}

func TestGrafanaAnonymousVisitorsCanUseExplore(t *testing.T) {
	env := grafanaEnv(t)
	if env["GF_AUTH_ANONYMOUS_ENABLED"] != "true" {
		t.Errorf("GF_AUTH_ANONYMOUS_ENABLED = %q: visitors would have to log in first", env["GF_AUTH_ANONYMOUS_ENABLED"])
	}
	role := env["GF_AUTH_ANONYMOUS_ORG_ROLE"]
	if !slices.Contains(exploreRoles, role) && !(role == "Viewer" && env["GF_USERS_VIEWERS_CAN_EDIT"] == "true") {
		t.Errorf("anonymous org role %q has no datasources:explore: Explore and every log/exemplar -> trace link are hidden from visitors", role)
	}
	// Explore itself is on ([explore] enabled defaults to true) and the admin can still sign in.
	if env["GF_EXPLORE_ENABLED"] == "false" {
		t.Error("GF_EXPLORE_ENABLED=false switches Explore off for everyone")
	}
	if env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true" || env["GF_SECURITY_ADMIN_USER"] == "" {
		t.Errorf("admin login: GF_AUTH_DISABLE_LOGIN_FORM=%q GF_SECURITY_ADMIN_USER=%q", env["GF_AUTH_DISABLE_LOGIN_FORM"], env["GF_SECURITY_ADMIN_USER"])
	}
	// Whoever opens Grafana to their network can take the role back to Viewer.
	g := loadCompose(t, "GRAFANA_ANONYMOUS_ROLE=Viewer").Services["grafana"]
	if v := g.Environment["GF_AUTH_ANONYMOUS_ORG_ROLE"]; v == nil || *v != "Viewer" {
		t.Errorf("GRAFANA_ANONYMOUS_ROLE=Viewer gives GF_AUTH_ANONYMOUS_ORG_ROLE=%v", v)
	}
	// Grafana 12 installs plugins from grafana.com at start unless told not to (setting_plugins.go).
	if env["GF_PLUGINS_PREINSTALL_DISABLED"] != "true" {
		t.Error("GF_PLUGINS_PREINSTALL_DISABLED is not true: Grafana downloads its default plugins from the internet at start")
	}
}

// --- Links between the signals ----------------------------------------------------------------------------

// shopSpanAttribute reports whether the shop's code sets the attribute key on its spans or resource.
func shopSpanAttribute(t *testing.T, key string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `attribute.String("`+key+`",`) {
			return true
		}
	}
	return false
}

func TestGrafanaSignalLinksPointAtTheRightDatasources(t *testing.T) {
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

	// Metrics -> traces: exemplars labelled trace_id open their trace. The Explore link alone would open
	// an empty Jaeger query (queryType traceql, grafana/grafana#111448), so one destination must be a URL
	// into Jaeger's UI (route /trace/:id), reachable from the browser.
	dests, _ := ds["prometheus"].JSONData["exemplarTraceIdDestinations"].([]any)
	if len(dests) == 0 {
		t.Error("prometheus: no exemplarTraceIdDestinations")
	}
	jaegerUI := "http://localhost:" + loadCompose(t).Services["jaeger"].Ports[0].Published
	external := false
	for i := range dests {
		name, _ := jsonPath(dests, i, "name").(string)
		if name != "trace_id" {
			t.Errorf("prometheus exemplar destination %d reads exemplar label %q; the shop's exemplars carry trace_id", i, name)
		}
		if uid, _ := jsonPath(dests, i, "datasourceUid").(string); uid != "" {
			wantType("prometheus exemplar destination", uid, "jaeger")
		}
		if url, _ := jsonPath(dests, i, "url").(string); url != "" {
			if want := jaegerUI + "/trace/${__value.raw}"; url != want {
				t.Errorf("prometheus exemplar destination %d url = %q after Grafana's interpolation, want %q", i, url, want)
			}
			external = true
		}
	}
	if !external {
		t.Error("prometheus: no exemplar destination with a url into Jaeger's UI: exemplar -> trace opens an empty query")
	}

	// Logs -> traces: the structured-metadata key trace_id becomes a link to Jaeger. getDerivedFields
	// takes the first key matching new RegExp(matcherRegex): it must match trace_id and nothing else.
	fields, _ := ds["loki"].JSONData["derivedFields"].([]any)
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
		expr, _ := jsonPath(fields, i, "matcherRegex").(string)
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Errorf("loki derived field %d matcherRegex %q: %v", i, expr, err)
			continue
		}
		if !re.MatchString("trace_id") {
			t.Errorf("loki derived field %d matcherRegex %q does not match the key trace_id", i, expr)
		}
		for _, other := range []string{"parent_trace_id", "trace_id_hi", "span_id", "trace_flags"} {
			if re.MatchString(other) {
				t.Errorf("loki derived field %d matcherRegex %q also matches the key %s: anchor it (^trace_id$)", i, expr, other)
			}
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

	// Traces -> metrics: $__tags becomes label="value" for the mapped tags the span has among its process
	// and span tags. Each mapped tag must be one the shop's spans carry (service.name never is: Jaeger
	// keeps it only as the process' serviceName), and each label it maps to must be on every series the
	// queries read, or the filter matches nothing.
	t2m, _ := jaeger.JSONData["tracesToMetrics"].(map[string]any)
	if t2m == nil {
		t.Fatal("jaeger: no tracesToMetrics")
	}
	uid, _ = t2m["datasourceUid"].(string)
	wantType("jaeger tracesToMetrics", uid, "prometheus")
	tags, _ := t2m["tags"].([]any)
	var mapped []string // label="value" pairs a shop server span yields
	for i := range tags {
		key, _ := jsonPath(tags, i, "key").(string)
		label, _ := jsonPath(tags, i, "value").(string)
		if label == "" {
			label = key
		}
		switch {
		case key == "service.name":
			t.Errorf("jaeger tracesToMetrics maps service.name, which a Jaeger span never has as a tag (it is the process' serviceName)")
		case !shopSpanAttribute(t, key):
			t.Errorf("jaeger tracesToMetrics maps %q, an attribute the shop never sets", key)
		}
		mapped = append(mapped, label+`="x"`)
	}
	if len(mapped) == 0 {
		t.Error("jaeger tracesToMetrics maps no tags: every span's metrics query would be unfiltered")
	}
	qs, _ := t2m["queries"].([]any)
	if len(qs) == 0 {
		t.Error("jaeger tracesToMetrics has no queries")
	}
	jobs := scrapeJobs(t)
	for i := range qs {
		q, _ := jsonPath(qs, i, "query").(string)
		name, _ := jsonPath(qs, i, "name").(string)
		where := "jaeger tracesToMetrics query " + name
		if !strings.Contains(q, "$__tags") {
			t.Errorf("%s does not filter by $__tags: %s", where, q)
		}
		expr := strings.ReplaceAll(q, "$__tags", strings.Join(mapped, ", "))
		checkPromQL(t, where, expr, records, alerts, jobs)
		for _, s := range promSelectors(t, where, expr) {
			have, ok := e2eContractMetrics[s.Name]
			if !ok {
				t.Errorf("%s reads %s, not one of the shop's raw series (recording rules drop the app label)", where, s.Name)
				continue
			}
			for l := range s.Equals {
				if l != "__name__" && l != "job" && l != "app" && l != "instance" && !slices.Contains(strings.Split(have, ","), l) {
					t.Errorf("%s filters %s by %q, a label it does not have (%s plus job, app, instance)", where, s.Name, l, have)
				}
			}
		}
	}
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

func TestGrafanaDatasourceURLsUseComposeServiceNames(t *testing.T) {
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
