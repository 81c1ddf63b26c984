package labtest

// Checks that tie the 99% availability SLO together: prometheus/rules/slo.yml (its values are tested
// by promtool in prometheus/tests/slo_test.yml), the runbook sections its alerts link to, and the
// dashboard's SLO row and fault-injection panel.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const (
	sloRatioPrefix  = "job:slo_errors_per_request:ratio_rate"
	sloBudgetRecord = "job:slo_error_budget_remaining:ratio_rate1d"
	sloRowTitle     = "SLO: 99% availability"
)

// The fault-injection gauges (faults.go) as they arrive in Prometheus.
var faultGauges = []string{
	"minishop_fault_payment_failure_rate", "minishop_fault_out_of_stock_rate",
	"minishop_fault_inventory_delay_seconds", "minishop_fault_route_latency_seconds",
}

// Every alert of every rule file has a severity, shows its value, and links to its own section of
// docs/runbooks.md, which exists.
func TestPrometheusEveryAlertHasItsRunbookSection(t *testing.T) {
	runbook, err := os.ReadFile(promRepoPath(t, "docs/runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for f, rf := range promRuleFiles(t) {
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts++
				where := filepath.Base(f) + " alert " + r.Alert
				if r.Labels["severity"] == "" {
					t.Errorf("%s: no severity label", where)
				}
				for _, a := range []string{"summary", "description"} {
					if !strings.Contains(r.Annotations[a], "$value") {
						t.Errorf("%s: annotation %s does not show the value: %q", where, a, r.Annotations[a])
					}
				}
				anchor := strings.ToLower(r.Alert)
				if !strings.HasSuffix(r.Annotations["runbook_url"], "docs/runbooks.md#"+anchor) {
					t.Errorf("%s: runbook_url = %q, want .../docs/runbooks.md#%s", where, r.Annotations["runbook_url"], anchor)
				}
				if !regexp.MustCompile(`(?m)^## ` + regexp.QuoteMeta(r.Alert) + `$`).Match(runbook) {
					t.Errorf("%s: docs/runbooks.md has no '## %s' section (anchor #%s)", where, r.Alert, anchor)
				}
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts in prometheus/rules/*.yml")
	}
}

// sloRules reads prometheus/rules/slo.yml: the error-ratio records by window ("5m": expr) and, for
// each alerting rule, its windows and burn-rate thresholds ("1h": 14.4, "5m": 14.4).
func sloRules(t *testing.T) (ratios map[string]string, alerts []map[string]float64, names []string) {
	t.Helper()
	rf, ok := promRuleFiles(t)[promRepoPath(t, "prometheus/rules/slo.yml")]
	if !ok {
		t.Fatal("prometheus/rules/slo.yml not found")
	}
	ratios = map[string]string{}
	cond := regexp.MustCompile(regexp.QuoteMeta(sloRatioPrefix) + `(\w+) / 0\.01 > ([0-9.]+)`)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if w, ok := strings.CutPrefix(r.Record, sloRatioPrefix); ok {
				ratios[w] = r.Expr
			}
			if r.Alert == "" {
				continue
			}
			windows := map[string]float64{}
			for _, m := range cond.FindAllStringSubmatch(r.Expr, -1) {
				v, err := strconv.ParseFloat(m[2], 64)
				if err != nil {
					t.Fatal(err)
				}
				windows[m[1]] = v
			}
			if len(windows) != 2 {
				t.Errorf("alert %s: want a long and a short window (ratio_rateW / 0.01 > N), found %v in %q", r.Alert, windows, r.Expr)
			}
			if r.Labels["long_window"] == "" || r.Labels["short_window"] == "" {
				t.Errorf("alert %s: no long_window/short_window labels", r.Alert)
			} else if _, ok := windows[r.Labels["long_window"]]; !ok {
				t.Errorf("alert %s: long_window label %q is not one of its windows %v", r.Alert, r.Labels["long_window"], windows)
			}
			alerts = append(alerts, windows)
			names = append(names, r.Alert)
		}
	}
	return ratios, alerts, names
}

// Each error-ratio record computes over the window its name says (a copy-paste slip would silently
// make a "1d" window 6h), and every window an alert reads is recorded.
func TestPrometheusSLORatioRecordsUseTheirWindow(t *testing.T) {
	ratios, alerts, names := sloRules(t)
	rng := regexp.MustCompile(`\[([^\]]+)\]`)
	for w, expr := range ratios {
		ranges := rng.FindAllStringSubmatch(expr, -1)
		if len(ranges) == 0 {
			t.Errorf("%s%s: no range in %q", sloRatioPrefix, w, expr)
		}
		for _, m := range ranges {
			if m[1] != w {
				t.Errorf("%s%s reads [%s]: %q", sloRatioPrefix, w, m[1], expr)
			}
		}
		if !strings.Contains(expr, `status_code=~"5.."`) || !strings.Contains(expr, "> 0") {
			t.Errorf("%s%s: not 5xx over requests with the no-traffic guard: %q", sloRatioPrefix, w, expr)
		}
	}
	for i, windows := range alerts {
		for w := range windows {
			if _, ok := ratios[w]; !ok {
				t.Errorf("alert %s reads %s%s, which is not recorded", names[i], sloRatioPrefix, w)
			}
		}
	}
}

// panelThresholds is the part of a timeseries panel's fieldConfig that draws threshold lines.
type panelThresholds struct {
	Defaults struct {
		Unit   string `json:"unit"`
		Custom struct {
			ThresholdsStyle struct {
				Mode string `json:"mode"`
			} `json:"thresholdsStyle"`
		} `json:"custom"`
		Thresholds struct {
			Mode  string `json:"mode"`
			Steps []struct {
				Color string   `json:"color"`
				Value *float64 `json:"value"`
			} `json:"steps"`
		} `json:"thresholds"`
	} `json:"defaults"`
}

func minishopDashboard(t *testing.T) Dashboard {
	t.Helper()
	for _, d := range loadDashboardsT(t) {
		if d.UID == "minishop" {
			return d
		}
	}
	t.Fatal("no dashboard with uid minishop")
	return Dashboard{}
}

// For every SLO alert, one burn-rate panel shows both of its windows (ratio / 0.01) and draws its
// burn-rate threshold as a red line, so that the dashboard says how far each alert is.
func TestDashboardSLOBurnRatePanelsDrawTheAlertThresholds(t *testing.T) {
	_, alerts, names := sloRules(t)
	if len(alerts) == 0 {
		t.Fatal("no alerts in slo.yml")
	}
	d := minishopDashboard(t)
	burnQuery := regexp.MustCompile(`^` + regexp.QuoteMeta(sloRatioPrefix) + `(\w+)\{job="minishop"\} / 0\.01$`)
	for i, windows := range alerts {
		found := false
		for _, p := range d.AllPanels() {
			shown := map[string]bool{}
			for _, tg := range p.Targets {
				if m := burnQuery.FindStringSubmatch(tg.Expr); m != nil {
					shown[m[1]] = true
				}
			}
			covers := true
			for w := range windows {
				covers = covers && shown[w]
			}
			if !covers {
				continue
			}
			var fc panelThresholds
			if err := json.Unmarshal(p.FieldConfig, &fc); err != nil {
				t.Fatalf("panel %q fieldConfig: %v", p.Title, err)
			}
			def := fc.Defaults
			if p.Type != "timeseries" || def.Thresholds.Mode != "absolute" {
				t.Errorf("panel %q: type %q thresholds mode %q, want an absolute-threshold timeseries", p.Title, p.Type, def.Thresholds.Mode)
			}
			switch def.Custom.ThresholdsStyle.Mode {
			case "line", "line+area", "dashed", "dashed+area":
			default:
				t.Errorf("panel %q thresholdsStyle.mode = %q, want the thresholds drawn as lines", p.Title, def.Custom.ThresholdsStyle.Mode)
			}
			wants := map[float64]bool{}
			for _, v := range windows {
				wants[v] = true
			}
			for want := range wants {
				red := false
				for _, s := range def.Thresholds.Steps {
					if s.Value != nil && math.Abs(*s.Value-want) < 1e-9 && strings.Contains(s.Color, "red") {
						red = true
					}
				}
				if !red {
					t.Errorf("panel %q has no red threshold line at %v, the burn rate of %s over %v", p.Title, want, names[i], windows)
				}
			}
			found = true
		}
		if !found {
			t.Errorf("no panel shows the burn rates of %s over %v (%s<window>{job=\"minishop\"} / 0.01)", names[i], windows, sloRatioPrefix)
		}
	}
}

// rawPanel is a panel with its position, for the layout checks.
type rawPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []Target `json:"targets"`
}

// The SLO row exists and holds the budget and burn-rate panels: they are below it, and no other row
// comes in between.
func TestDashboardSLORowHoldsBudgetAndBurnRatePanels(t *testing.T) {
	d := minishopDashboard(t)
	var model struct {
		Panels []rawPanel `json:"panels"`
	}
	if err := json.Unmarshal(d.Raw, &model); err != nil {
		t.Fatal(err)
	}
	panels := model.Panels
	sort.SliceStable(panels, func(i, j int) bool { return panels[i].GridPos.Y < panels[j].GridPos.Y })
	row := ""
	budget, burn := false, 0
	for _, p := range panels {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		for _, tg := range p.Targets {
			isBudget := strings.Contains(tg.Expr, sloBudgetRecord)
			isBurn := strings.Contains(tg.Expr, sloRatioPrefix)
			if (isBudget || isBurn) && row != sloRowTitle {
				t.Errorf("panel %q queries the SLO rules but is not in the row %q (row %q)", p.Title, sloRowTitle, row)
			}
			if isBudget {
				budget = true
			}
			if isBurn {
				burn++
				break
			}
		}
	}
	if !budget {
		t.Errorf("no panel shows %s", sloBudgetRecord)
	}
	if burn == 0 {
		t.Errorf("no burn-rate panel (%s...)", sloRatioPrefix)
	}
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, sloBudgetRecord) {
				var fc panelThresholds
				_ = json.Unmarshal(p.FieldConfig, &fc)
				if fc.Defaults.Unit != "percentunit" {
					t.Errorf("panel %q shows the budget (a share) with unit %q, want percentunit", p.Title, fc.Defaults.Unit)
				}
			}
		}
	}
}

// The "Fault injection" panel shows all four gauges, the route latency with the route in its legend.
func TestDashboardFaultInjectionPanelShowsEveryGauge(t *testing.T) {
	d := minishopDashboard(t)
	var model struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(d.Raw, &model); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range model.Panels {
		if p.Title != "Fault injection" {
			continue
		}
		found = true
		if p.Type != "timeseries" {
			t.Errorf("panel %q type %q, want timeseries (when did the trouble begin?)", p.Title, p.Type)
		}
		for _, g := range faultGauges {
			queried := false
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, g) {
					continue
				}
				queried = true
				if g == "minishop_fault_route_latency_seconds" && !strings.Contains(tg.LegendFormat, "{{route}}") {
					t.Errorf("panel %q: %s legend %q does not name the route", p.Title, g, tg.LegendFormat)
				}
			}
			if !queried {
				t.Errorf("panel %q does not query %s", p.Title, g)
			}
		}
	}
	if !found {
		t.Fatal(`no top-level panel "Fault injection" on the minishop dashboard`)
	}
}
