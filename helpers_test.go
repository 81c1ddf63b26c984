package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// memLogs is an in-memory OTLP log exporter: what the Collector would receive.
type memLogs struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (m *memLogs) Export(_ context.Context, recs []sdklog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		m.records = append(m.records, r.Clone())
	}
	return nil
}
func (m *memLogs) Shutdown(context.Context) error   { return nil }
func (m *memLogs) ForceFlush(context.Context) error { return nil }

func (m *memLogs) all() []sdklog.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sdklog.Record(nil), m.records...)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a server.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testShop is the real API wired to in-memory telemetry: every span, metric and
// log record the shop makes can be read back.
type testShop struct {
	handler http.Handler
	admin   http.Handler // the fault-injection API, token "secret"
	faults  *faults
	store   *store
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	logs    *memLogs
	stdout  *syncBuffer
}

func newTestShop(t testing.TB, fs faultSettings) *testShop {
	t.Helper()
	return newTestShopWith(t, fs, "", "")
}

// newTestShopWith is newTestShop with a payment gateway at gatewayURL (and its admin API at
// adminURL, token "gw-secret"); empty: the in-process simulator.
func newTestShopWith(t testing.TB, fs faultSettings, gatewayURL, adminURL string) *testShop {
	t.Helper()
	ts := &testShop{
		spans:   tracetest.NewSpanRecorder(),
		metrics: sdkmetric.NewManualReader(),
		logs:    &memLogs{},
		stdout:  &syncBuffer{},
	}
	res, err := newResource(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(ts.spans), sdktrace.WithResource(res))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(ts.metrics), sdkmetric.WithResource(res))
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(ts.logs)), sdklog.WithResource(res))
	t.Cleanup(func() {
		ctx := context.Background()
		_ = tp.Shutdown(ctx)
		_ = mp.Shutdown(ctx)
		_ = lp.Shutdown(ctx)
	})
	p := providers{tracer: tp, meter: mp, logger: lp}
	tel, err := newTelemetry(p, newLogger(ts.stdout, lp))
	if err != nil {
		t.Fatal(err)
	}
	ts.store = newStore(0, 1000, time.Now)
	var ready atomic.Bool
	ready.Store(true)
	var remote *gatewayFaults
	if adminURL != "" {
		remote = newGatewayFaults(adminURL, "gw-secret")
	}
	ts.faults = newFaults(fs, gatewayURL != "", remote)
	if err := registerFaultGauges(mp, ts.faults); err != nil {
		t.Fatal(err)
	}
	var pay payer = simulatedPayments{ts.faults}
	if gatewayURL != "" {
		if pay, err = newGatewayPayments(gatewayURL, 200*time.Millisecond, tel.propagator); err != nil {
			t.Fatal(err)
		}
	}
	ts.handler = newServer(tel, ts.store, ts.faults, pay, &ready)
	ts.admin = newAdminServer(tel, ts.faults, "secret")
	return ts
}

// noFailures: payments always succeed, at once.
var noFailures = faultSettings{}

// do sends one request to h; a non-empty body is sent as application/json.
func do(t testing.TB, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeBody[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, rec.Body.String())
	}
	return v
}

// mustCreateOrder places an order and returns its id.
func mustCreateOrder(t testing.TB, h http.Handler, body string) string {
	t.Helper()
	rec := do(t, h, "POST", "/order", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /order = %d %s", rec.Code, rec.Body)
	}
	return decodeBody[order](t, rec).ID
}

// collect reads every metric the shop recorded so far.
func (ts *testShop) collect(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := ts.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}
