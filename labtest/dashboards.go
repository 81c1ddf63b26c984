package labtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// DashboardsDir is where the lab's Grafana dashboard JSON files live, relative to the repo root.
const DashboardsDir = "grafana/dashboards"

// DatasourcesFile is the Grafana data source provisioning file, relative to the repo root.
const DatasourcesFile = "grafana/provisioning/datasources/datasources.yaml"

// DashboardQuery is one query (target) of one panel of a provisioned Grafana dashboard.
type DashboardQuery struct {
	File           string // dashboard file, relative to the repo root
	DashboardUID   string
	Panel          string // panel title
	RefID          string // target refId (A, B, ...)
	DatasourceType string // "prometheus", "loki", ... (the target's, else the panel's)
	DatasourceUID  string // "prometheus", "loki", ... (the target's, else the panel's)
	Expr           string // the PromQL or LogQL expression, exactly as Grafana sends it
	Exemplar       bool   // the target asks Prometheus for exemplars too
}

func (q DashboardQuery) String() string {
	return fmt.Sprintf("%s panel %q target %s", q.File, q.Panel, q.RefID)
}

// Dashboard is the part of a Grafana dashboard JSON model the lab checks.
type Dashboard struct {
	UID         string          `json:"uid"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Refresh     string          `json:"refresh"`
	Time        DashboardTime   `json:"time"`
	Links       []DashboardLink `json:"links"`
	Panels      []Panel         `json:"panels"`
	Raw         json.RawMessage `json:"-"`
}

// DashboardLink is one link of a dashboard's link bar (type "link": to URL; type "dashboards": by tags).
type DashboardLink struct {
	Title string   `json:"title"`
	Type  string   `json:"type"`
	URL   string   `json:"url"`
	Tags  []string `json:"tags"`
}

// DashboardTime is a dashboard's default time range.
type DashboardTime struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Panel is one dashboard panel (rows carry their collapsed panels in Panels).
type Panel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *DatasourceRef  `json:"datasource"`
	Targets     []Target        `json:"targets"`
	Panels      []Panel         `json:"panels"`
	FieldConfig json.RawMessage `json:"fieldConfig"`
	Options     json.RawMessage `json:"options"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string         `json:"refId"`
	Datasource *DatasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	Exemplar   bool           `json:"exemplar"`
	Hide       bool           `json:"hide"`
}

// DatasourceRef names a data source by type and uid, as Grafana >= 8.3 dashboards do.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// UnmarshalJSON also accepts the legacy form, a data source name as a plain string, so that such a
// reference is reported as unprovisioned rather than failing to parse.
func (r *DatasourceRef) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		*r = DatasourceRef{UID: name}
		return nil
	}
	type plain DatasourceRef
	return json.Unmarshal(b, (*plain)(r))
}

// LoadDashboards parses every *.json file in root/grafana/dashboards, keyed by file path
// relative to root.
func LoadDashboards(root string) (map[string]Dashboard, error) {
	files, err := filepath.Glob(filepath.Join(root, DashboardsDir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboard JSON files in %s", filepath.Join(root, DashboardsDir))
	}
	out := make(map[string]Dashboard, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		d.Raw = b
		rel, err := filepath.Rel(root, f)
		if err != nil {
			rel = f
		}
		out[filepath.ToSlash(rel)] = d
	}
	return out, nil
}

// AllPanels returns the dashboard's panels with the panels inside rows flattened in, rows excluded.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// DashboardQueries returns every query of every panel of every dashboard under
// root/grafana/dashboards, in file and panel order. A target without its own data source uses the
// panel's, as Grafana does.
func DashboardQueries(root string) ([]DashboardQuery, error) {
	dashboards, err := LoadDashboards(root)
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(dashboards))
	for f := range dashboards {
		files = append(files, f)
	}
	sort.Strings(files)
	var out []DashboardQuery
	for _, f := range files {
		d := dashboards[f]
		for _, p := range d.AllPanels() {
			for _, t := range p.Targets {
				ds := t.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				q := DashboardQuery{
					File: f, DashboardUID: d.UID, Panel: p.Title, RefID: t.RefID,
					Expr: t.Expr, Exemplar: t.Exemplar,
				}
				if ds != nil {
					q.DatasourceType, q.DatasourceUID = ds.Type, ds.UID
				}
				out = append(out, q)
			}
		}
	}
	return out, nil
}

// DashboardPromQL returns every PromQL query of the lab's dashboards (data source type
// "prometheus"), for tests that run them against a real Prometheus fed by the shop. The
// expressions use no Grafana variables, so they can be sent to /api/v1/query as they are.
func DashboardPromQL(root string) ([]DashboardQuery, error) {
	return dashboardQueriesOfType(root, "prometheus")
}

// DashboardLogQL returns every LogQL query of the lab's dashboards (data source type "loki").
func DashboardLogQL(root string) ([]DashboardQuery, error) {
	return dashboardQueriesOfType(root, "loki")
}

func dashboardQueriesOfType(root, typ string) ([]DashboardQuery, error) {
	all, err := DashboardQueries(root)
	if err != nil {
		return nil, err
	}
	var out []DashboardQuery
	for _, q := range all {
		if q.DatasourceType == typ {
			out = append(out, q)
		}
	}
	return out, nil
}
