package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// otlpSink is a minimal OTLP/gRPC receiver: what a Collector would be sent.
type otlpSink struct {
	coltrace.UnimplementedTraceServiceServer
	colmetrics.UnimplementedMetricsServiceServer
	collogs.UnimplementedLogsServiceServer
	mu       sync.Mutex
	spans    []string // span names
	logs     []string // log bodies
	requests int64    // the last cumulative value of the request counter, summed over series
	// sums holds the last value of every integer sum, by metric name and then data point attributes.
	sums map[string]map[string]int64
}

// sum adds up a metric's data points whose attributes include every key=value of want.
func (s *otlpSink) sum(name string, want ...string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int64
	for attrs, v := range s.sums[name] {
		match := true
		for _, kv := range want {
			match = match && strings.Contains(" "+attrs+" ", " "+kv+" ")
		}
		if match {
			total += v
		}
	}
	return total
}

func (s *otlpSink) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				s.spans = append(s.spans, sp.Name)
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

type metricsService struct{ *otlpSink }

func (m metricsService) Export(_ context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, met := range sm.Metrics {
				for _, dp := range met.GetSum().GetDataPoints() {
					var attrs []string
					for _, kv := range dp.Attributes {
						attrs = append(attrs, kv.Key+"="+kv.Value.GetStringValue())
					}
					slices.Sort(attrs)
					if m.sums == nil {
						m.sums = map[string]map[string]int64{}
					}
					if m.sums[met.Name] == nil {
						m.sums[met.Name] = map[string]int64{}
					}
					m.sums[met.Name][strings.Join(attrs, " ")] = dp.GetAsInt()
				}
				if met.Name != "request" {
					continue
				}
				var total int64
				for _, dp := range met.GetSum().GetDataPoints() {
					total += dp.GetAsInt()
				}
				m.requests = total
			}
		}
	}
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

type logsService struct{ *otlpSink }

func (l logsService) Export(_ context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				l.logs = append(l.logs, lr.Body.GetStringValue())
			}
		}
	}
	return &collogs.ExportLogsServiceResponse{}, nil
}

func startOTLPSink(t *testing.T) (*otlpSink, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &otlpSink{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, sink)
	colmetrics.RegisterMetricsServiceServer(srv, metricsService{sink})
	collogs.RegisterLogsServiceServer(srv, logsService{sink})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return sink, ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRun runs the real program in the background and waits for /readyz.
func startRun(t *testing.T, args ...string) (addr string, stop func() error, stdout *syncBuffer) {
	t.Helper()
	addr = freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	stdout = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"minishop", "-addr", addr}, args...), os.Getenv, stdout, io.Discard)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("run did not return 20s after cancel")
		}
	}
	return addr, stop, stdout
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// With no Collector listening the shop still starts, serves and stops in time.
func TestRunWithoutCollector(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+freeAddr(t)) // nothing listens there
	addr, stop, stdout := startRun(t, "-shutdown-timeout", "1s")
	for range 20 {
		if resp := post(t, "http://"+addr+"/order", `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`); resp.StatusCode != 201 {
			t.Fatalf("POST /order = %d", resp.StatusCode)
		}
	}
	start := time.Now()
	if err := stop(); err != nil && !strings.Contains(err.Error(), "telemetry shutdown") {
		t.Fatalf("run: %v", err)
	}
	// Two timeouts at most: draining HTTP, then flushing telemetry to nowhere.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a 1s timeout", took)
	}
	if !strings.Contains(stdout.String(), `"msg":"minishop stopped"`) {
		t.Errorf("no stop message on stdout:\n%s", stdout)
	}
}

// On shutdown every finished request's spans, logs and metrics are flushed:
// the export intervals are set far beyond the test, so only the shutdown flush can deliver them.
func TestRunFlushesTelemetryOnShutdown(t *testing.T) {
	sink, otlpAddr := startOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+otlpAddr)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
	t.Setenv("OTEL_BLRP_SCHEDULE_DELAY", "600000")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
	addr, stop, _ := startRun(t)
	const n = 25
	for range n {
		if resp := post(t, "http://"+addr+"/order", `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`); resp.StatusCode != 201 {
			t.Fatalf("POST /order = %d", resp.StatusCode)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	count := func(xs []string, want string) (c int) {
		for _, x := range xs {
			if x == want {
				c++
			}
		}
		return c
	}
	if got := count(sink.spans, "POST /order"); got != n {
		t.Errorf("server spans received = %d, want %d", got, n)
	}
	if got := count(sink.spans, "DeductInventory"); got != n {
		t.Errorf("DeductInventory spans received = %d, want %d", got, n)
	}
	if got := count(sink.logs, "request"); got != n {
		t.Errorf("access logs received = %d, want %d", got, n)
	}
	if sink.requests != n {
		t.Errorf("request counter received = %d, want %d", sink.requests, n)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{env: map[string]string{"MINISHOP_PAYMENT_FAILURE_RATE": "2"}},
		{env: map[string]string{"MINISHOP_PAYMENT_FAILURE_RATE": "lots"}},
		{env: map[string]string{"MINISHOP_PAYMENT_LATENCY": "soon"}},
		{args: []string{"-payment-failure-rate", "-0.1"}},
		{args: []string{"-no-such-flag"}},
	} {
		getenv := func(k string) string { return c.env[k] }
		err := run(t.Context(), append([]string{"minishop"}, c.args...), getenv, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%v, %v) = nil, want an error", c.env, c.args)
		}
	}
}

// Telemetry the SDK loses is counted, exported and logged: with queues of one span and one log record and
// a trace and log endpoint where nothing listens (a stopped Collector), the queues overflow and exports
// fail; the SDK's own counters say so through the (working) metrics pipeline, and stdout says so once.
func TestDroppedTelemetryIsCountedExportedAndLogged(t *testing.T) {
	sink, otlpAddr := startOTLPSink(t)
	t.Setenv("OTEL_GO_X_OBSERVABILITY", "true") // what main sets
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+freeAddr(t))
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://"+otlpAddr)
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "200") // ms: a failed export gives up quickly
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1")
	t.Setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "1")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
	addr, stop, stdout := startRun(t, "-shutdown-timeout", "1s")
	for range 30 {
		if resp := post(t, "http://"+addr+"/order", `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`); resp.StatusCode != 201 {
			t.Fatalf("POST /order = %d", resp.StatusCode)
		}
	}
	checks := []struct {
		metric string
		want   []string
	}{
		{"otel.sdk.processor.span.processed", []string{"error.type=queue_full"}},
		{"otel.sdk.processor.log.processed", []string{"error.type=queue_full"}},
		{"otel.sdk.exporter.span.exported", nil}, // the failed exports' error types vary
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range checks {
		for sink.sum(c.metric, c.want...) == 0 || (c.want == nil && !sink.hasErrorType(c.metric)) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s%v > 0 exported; got %v", c.metric, c.want, sink.sums)
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}
	if err := stop(); err != nil && !strings.Contains(err.Error(), "telemetry shutdown") {
		t.Fatalf("run: %v", err)
	}
	if n := strings.Count(stdout.String(), `"msg":"telemetry dropped"`); n != 1 {
		t.Errorf("stdout has %d 'telemetry dropped' lines, want 1 (at most one per 30 s):\n%s", n, stdout)
	}
	// The first report comes with the first metric export that shows a loss (spans, here, or log records).
	if !strings.Contains(stdout.String(), `"lost_spans":`) && !strings.Contains(stdout.String(), `"lost_log_records":`) {
		t.Errorf("the report names no lost spans or log records:\n%s", stdout)
	}
}

// hasErrorType reports whether a metric has a data point > 0 with an error.type attribute.
func (s *otlpSink) hasErrorType(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attrs, v := range s.sums[name] {
		if v > 0 && strings.Contains(attrs, "error.type=") {
			return true
		}
	}
	return false
}
