package labtest

// Static checks of loki/loki.yaml, the Loki 3 configuration of docker-compose.yml and the native lab. What a
// running Loki shows (it starts with this file, accepts the Collector's OTLP, app is an index label, trace_id
// is structured metadata, the docs' LogQL returns exact counts) is tested by the e2e suite against the real
// Loki 3.7.8 (AGPL: a separate program, never imported). What a test run cannot show stays here:
//
//   - Retention: compactor.retention_enabled plus limits_config.retention_period (minimum 24h), a
//     24h index period, and compactor.delete_request_store (Loki docs, operations/storage/retention.md).
//   - The index labels stream selectors may use (lokiIndexLabels, for the dashboards' checks).

import (
	"os"
	"path/filepath"
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
