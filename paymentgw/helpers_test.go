// This file wires the real gateway to in-memory telemetry for the tests, and holds their helpers.
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

	"go.opentelemetry.io/otel/attribute"
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

// find returns the records with this message.
func (m *memLogs) find(msg string) []sdklog.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sdklog.Record
	for _, r := range m.records {
		if r.Body().AsString() == msg {
			out = append(out, r)
		}
	}
	return out
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

// testGateway is the real API wired to in-memory telemetry.
type testGateway struct {
	handler http.Handler
	admin   http.Handler // token "secret"
	faults  *faults
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	logs    *memLogs
	stdout  *syncBuffer
}

// instant: every charge succeeds, at once.
var instant = faultSettings{Stall: duration(5 * time.Second)}

func newTestGateway(t testing.TB, fs faultSettings) *testGateway {
	t.Helper()
	g := &testGateway{spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader(), logs: &memLogs{}, stdout: &syncBuffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(g.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(g.metrics))
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(g.logs)))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
		_ = lp.Shutdown(context.Background())
	})
	tel, err := newTelemetry(providers{tracer: tp, meter: mp, logger: lp}, newLogger(g.stdout, lp))
	if err != nil {
		t.Fatal(err)
	}
	g.faults = newFaults(fs)
	if err := registerFaultGauges(mp, g.faults); err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	ready.Store(true)
	g.handler = newServer(tel, newLedger(1000), g.faults, &ready)
	g.admin = newAdminServer(tel, g.faults, "secret")
	return g
}

const validCharge = `{"amount_cents":1999,"currency":"USD","method":"card","reference":"ord_0123456789abcdef"}`

// charge posts a charge with an idempotency key (none if key is "").
func (g *testGateway) charge(t testing.TB, key, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/v1/charges", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	g.handler.ServeHTTP(rec, req)
	return rec
}

func do(t testing.TB, h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeBody[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("response is not JSON: %v: %q", err, b)
	}
	return v
}

// chargesOf lists the charges of a reference through the API.
func (g *testGateway) chargesOf(t testing.TB, ref string) []charge {
	t.Helper()
	rec := do(t, g.handler, "GET", "/v1/charges?reference="+ref, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/charges = %d %s", rec.Code, rec.Body)
	}
	return decodeBody[struct{ Data []charge }](t, rec.Body.Bytes()).Data
}

// spansNamed returns the ended spans with this name.
func (g *testGateway) spansNamed(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range g.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// counter sums a metric's data points that have every attribute of want.
func (g *testGateway) counter(t testing.TB, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := g.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
		points:
			for _, dp := range sum.DataPoints {
				for _, kv := range want {
					if v, ok := dp.Attributes.Value(kv.Key); !ok || v != kv.Value {
						continue points
					}
				}
				total += dp.Value
			}
		}
	}
	return total
}

// gauge reads an observable gauge's value; ok is false when it is not exported.
func (g *testGateway) gauge(t testing.TB, name string) (v float64, ok bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := g.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if gd, isGauge := m.Data.(metricdata.Gauge[float64]); m.Name == name && isGauge && len(gd.DataPoints) == 1 {
				return gd.DataPoints[0].Value, true
			}
		}
	}
	return 0, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}
