package labtest

// Checks of loki/loki.yaml, the Loki 3 configuration used by docker-compose.yml. Loki is AGPL and
// is neither imported nor run here; these tests pin the keys that make the lab's log queries work:
//
//   - `{app="minishop"} |= "payment failed"` needs the OTLP resource attribute app to become an
//     index label: limits_config.otlp_config.resource_attributes.attributes_config with
//     action index_label, which ADDS to the default index labels unless ignore_defaults is set
//     (Loki docs, send-data/otel/_index.md, "Changing the default mapping of OTLP to Loki Format",
//     Example 1 vs Example 2).
//   - OTLP ingestion stores the other attributes, trace_id included, as structured metadata: it needs
//     allow_structured_metadata and schema v13 (same page, "Loki configuration"; default on in 3.x).
//   - Retention: compactor.retention_enabled plus limits_config.retention_period (minimum 24h), a
//     24h index period, and compactor.delete_request_store, without which Loki 3 refuses to start
//     ("compactor.delete-request-store should be configured when retention is enabled")
//     (Loki docs, operations/storage/retention.md).

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	yaml "go.yaml.in/yaml/v3"
)

const lokiConfigFile = "loki/loki.yaml"

// Resource attributes Loki 3 stores as index labels by default (Loki docs, send-data/otel), in
// their Loki form (dots become underscores).
var lokiDefaultIndexLabels = []string{
	"cloud.availability_zone", "cloud.region", "container.name", "deployment.environment",
	"k8s.cluster.name", "k8s.container.name", "k8s.cronjob.name", "k8s.daemonset.name",
	"k8s.deployment.name", "k8s.job.name", "k8s.namespace.name", "k8s.pod.name",
	"k8s.replicaset.name", "k8s.statefulset.name", "service.instance.id", "service.name",
	"service.namespace",
}

// lokiConfig is the part of Loki's configuration these tests read.
type lokiConfig struct {
	AuthEnabled *bool `yaml:"auth_enabled"`
	Server      struct {
		HTTPListenPort int `yaml:"http_listen_port"`
	} `yaml:"server"`
	Common struct {
		PathPrefix string `yaml:"path_prefix"`
	} `yaml:"common"`
	SchemaConfig struct {
		Configs []struct {
			From        string `yaml:"from"`
			Store       string `yaml:"store"`
			ObjectStore string `yaml:"object_store"`
			Schema      string `yaml:"schema"`
			Index       struct {
				Period string `yaml:"period"`
			} `yaml:"index"`
		} `yaml:"configs"`
	} `yaml:"schema_config"`
	LimitsConfig struct {
		AllowStructuredMetadata *bool  `yaml:"allow_structured_metadata"`
		RetentionPeriod         string `yaml:"retention_period"`
		OTLPConfig              struct {
			ResourceAttributes struct {
				IgnoreDefaults   bool `yaml:"ignore_defaults"`
				AttributesConfig []struct {
					Action     string   `yaml:"action"`
					Attributes []string `yaml:"attributes"`
					Regex      string   `yaml:"regex"`
				} `yaml:"attributes_config"`
			} `yaml:"resource_attributes"`
		} `yaml:"otlp_config"`
	} `yaml:"limits_config"`
	Compactor struct {
		WorkingDirectory   string `yaml:"working_directory"`
		RetentionEnabled   bool   `yaml:"retention_enabled"`
		DeleteRequestStore string `yaml:"delete_request_store"`
	} `yaml:"compactor"`
}

func readLokiConfig(t *testing.T) lokiConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, lokiConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var c lokiConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s does not parse: %v", lokiConfigFile, err)
	}
	return c
}

// lokiLabelName is how Loki names an OTLP attribute as a label: unsupported characters become "_".
func lokiLabelName(attr string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, attr)
}

// lokiIndexLabels returns the stream labels the shop's OTLP logs get with loki/loki.yaml.
func lokiIndexLabels(t *testing.T) map[string]bool {
	t.Helper()
	ra := readLokiConfig(t).LimitsConfig.OTLPConfig.ResourceAttributes
	out := map[string]bool{}
	if !ra.IgnoreDefaults {
		for _, a := range lokiDefaultIndexLabels {
			out[lokiLabelName(a)] = true
		}
	}
	for _, ac := range ra.AttributesConfig {
		if ac.Action != "index_label" {
			continue
		}
		for _, a := range ac.Attributes {
			out[lokiLabelName(a)] = true
		}
	}
	return out
}

func TestLokiConfigKnowsOnlyLoki3Blocks(t *testing.T) {
	// Loki refuses unknown keys at startup; a typo in a top-level block name would only show when
	// a user runs the lab. These are the blocks of Loki 3's configuration reference this file may use.
	known := []string{
		"target", "auth_enabled", "ballast_bytes", "server", "distributor", "querier", "query_scheduler",
		"frontend", "query_range", "ruler", "ingester_client", "ingester", "pattern_ingester",
		"index_gateway", "bloom_build", "bloom_gateway", "storage_config", "chunk_store_config",
		"schema_config", "compactor", "limits_config", "frontend_worker", "table_manager",
		"runtime_config", "operational_config", "tracing", "analytics", "common", "memberlist",
		"kafka_config", "ui", "dataobj", "query_engine", "block_builder", "block_scheduler",
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, lokiConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	for k := range top {
		if !slices.Contains(known, k) {
			t.Errorf("%s: unknown top-level block %q", lokiConfigFile, k)
		}
	}
}

func TestLokiPromotesAppToAnIndexLabel(t *testing.T) {
	c := readLokiConfig(t)
	ra := c.LimitsConfig.OTLPConfig.ResourceAttributes
	promoted := false
	for _, ac := range ra.AttributesConfig {
		if ac.Action == "index_label" && slices.Contains(ac.Attributes, "app") {
			promoted = true
		}
	}
	if !promoted {
		t.Error(`limits_config.otlp_config.resource_attributes.attributes_config has no {action: index_label, attributes: [app]}: {app="minishop"} would match nothing`)
	}
	// service_name must stay an index label too (Grafana's Logs Drilldown and the defaults rely on it).
	if ra.IgnoreDefaults {
		t.Error("resource_attributes.ignore_defaults is set: service.name would no longer be the index label service_name")
	}
	labels := lokiIndexLabels(t)
	for _, want := range []string{"app", "service_name"} {
		if !labels[want] {
			t.Errorf("index label %q missing; index labels: %v", want, sortedKeys(labels))
		}
	}
	// trace_id must NOT become an index label: one stream per request would explode Loki's index.
	for _, ac := range ra.AttributesConfig {
		if ac.Action == "index_label" && (slices.Contains(ac.Attributes, "trace_id") || ac.Regex != "") {
			t.Errorf("attributes_config %+v promotes more than named attributes to index labels", ac)
		}
	}
}

func TestLokiAcceptsOTLPWithStructuredMetadata(t *testing.T) {
	c := readLokiConfig(t)
	if c.AuthEnabled == nil || *c.AuthEnabled {
		t.Error("auth_enabled must be false: neither the Collector nor Grafana sends an X-Scope-OrgID")
	}
	if c.LimitsConfig.AllowStructuredMetadata == nil || !*c.LimitsConfig.AllowStructuredMetadata {
		t.Error("limits_config.allow_structured_metadata must be true: Loki rejects OTLP logs without it")
	}
	if n := len(c.SchemaConfig.Configs); n == 0 {
		t.Fatal("schema_config.configs is empty")
	}
	// The newest period is the one new logs are written with.
	last := c.SchemaConfig.Configs[len(c.SchemaConfig.Configs)-1]
	if last.Schema != "v13" || last.Store != "tsdb" {
		t.Errorf("newest schema is %s on %s; structured metadata needs v13 on tsdb", last.Schema, last.Store)
	}
	if from, err := time.Parse("2006-01-02", last.From); err != nil || from.After(time.Now()) {
		t.Errorf("newest schema starts %q: must be a past date or nothing is written with it", last.From)
	}
	if c.Server.HTTPListenPort != 3100 {
		t.Errorf("server.http_listen_port = %d, want 3100 (contract; Collector and Grafana use loki:3100)", c.Server.HTTPListenPort)
	}
}

func TestLokiRetentionIsShortAndActuallyApplied(t *testing.T) {
	c := readLokiConfig(t)
	if !c.Compactor.RetentionEnabled {
		t.Error("compactor.retention_enabled is false: retention_period would be ignored and logs kept forever")
	}
	if c.Compactor.WorkingDirectory == "" {
		t.Error("compactor.working_directory is empty")
	}
	last := c.SchemaConfig.Configs[len(c.SchemaConfig.Configs)-1]
	if c.Compactor.DeleteRequestStore == "" {
		t.Error("compactor.delete_request_store is empty: Loki 3 refuses to start with retention enabled")
	} else if c.Compactor.DeleteRequestStore != last.ObjectStore {
		t.Errorf("compactor.delete_request_store = %q but the chunks are in %q", c.Compactor.DeleteRequestStore, last.ObjectStore)
	}
	if last.Index.Period != "24h" {
		t.Errorf("index period = %q: compactor retention needs 24h", last.Index.Period)
	}
	d, err := model.ParseDuration(c.LimitsConfig.RetentionPeriod)
	if err != nil {
		t.Fatalf("limits_config.retention_period %q: %v", c.LimitsConfig.RetentionPeriod, err)
	}
	if time.Duration(d) < 24*time.Hour || time.Duration(d) > 7*24*time.Hour {
		t.Errorf("retention_period = %v: want between Loki's 24h minimum and a lab-sized week", time.Duration(d))
	}
	// Everything Loki writes stays under the path prefix (one place to wipe).
	for _, dir := range []string{c.Compactor.WorkingDirectory} {
		if c.Common.PathPrefix == "" || !strings.HasPrefix(dir, c.Common.PathPrefix) {
			t.Errorf("%q is outside common.path_prefix %q", dir, c.Common.PathPrefix)
		}
	}
}
