package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

func TestScrapeSumsSamplesByNameAndLabels(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `# HELP otelcol_receiver_accepted_spans Spans accepted.
# TYPE otelcol_receiver_accepted_spans counter
otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"} 30
otelcol_receiver_accepted_spans{receiver="otlp",transport="http"} 3
otelcol_receiver_accepted_spans_total{receiver="otlp"} 1000
otelcol_exporter_sent_spans{exporter="otlp_grpc/jaeger"} 33
otelcol_exporter_sent_spans{exporter="debug"} 33
otelcol_process_uptime 12.5
`)
	}))
	defer srv.Close()
	ss, err := scrape(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"otelcol_receiver_accepted_spans", nil, 33}, // not the _total one
		{"otelcol_exporter_sent_spans", []string{`exporter="otlp_grpc/jaeger"`}, 33},
		{"otelcol_process_uptime", nil, 12.5},
		{"otelcol_receiver_refused_spans", nil, 0},
	} {
		if got := ss.total(c.name, c.labels...); got != c.want {
			t.Errorf("total(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestCPUTimeOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if after, _ := cpuTime(os.Getpid()); after > before {
			return // ticks are 10 ms: spinning shows up
		}
	}
	t.Error("CPU time did not grow while spinning for 2 s")
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"benchpipeline", "-variants", "off, on", "-capacity", "500,1000", "-shop-env", "A=1,B=2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.variants) != 2 || len(c.capacityRates) != 2 || c.pin || len(c.shopEnv) != 2 {
		t.Errorf("config = %+v", c)
	}
	if _, err := parseFlags([]string{"benchpipeline", "-variants", "everything"}, io.Discard); err == nil {
		t.Error("unknown variant accepted")
	}
}
