package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// discard is an exporter for spans and logs that drops everything: the benchmarks
// measure the instrumentation, not a network.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Export(context.Context, []sdklog.Record) error              { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
func (discard) ForceFlush(context.Context) error                           { return nil }

// benchShop is the API with telemetry on (the real SDK pipeline: batching span and
// log processors, a metric reader, JSON logs to a discarded stdout) or off (no-op
// providers, logs discarded). Restocking every nanosecond keeps the shelves full.
func benchShop(b *testing.B, telemetryOn bool) http.Handler {
	p := noopProviders()
	if telemetryOn {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(discard{})))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			_ = mp.Shutdown(context.Background())
			_ = lp.Shutdown(context.Background())
		})
		p = providers{tracer: tp, meter: mp, logger: lp}
	}
	logger := newLogger(io.Discard, p.logger)
	tel, err := newTelemetry(p, logger)
	if err != nil {
		b.Fatal(err)
	}
	var ready atomic.Bool
	ready.Store(true)
	f := newFaults(noFailures, false, nil)
	return newServer(tel, newStore(time.Nanosecond, 1000, time.Now), f, simulatedPayments{f}, &ready)
}

func serve(b *testing.B, h http.Handler, path, body string, want int) {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("POST %s = %d %s", path, rec.Code, rec.Body)
	}
}

// Compare telemetry=on with telemetry=off from one run: the ratio is the instrumentation's cost.
func BenchmarkCreateOrder(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "telemetry=off", true: "telemetry=on"}[on]
		b.Run(name, func(b *testing.B) {
			h := benchShop(b, on)
			b.ReportAllocs()
			for b.Loop() {
				serve(b, h, "/order", `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`, http.StatusCreated)
			}
		})
	}
}

func BenchmarkPay(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "telemetry=off", true: "telemetry=on"}[on]
		b.Run(name, func(b *testing.B) {
			h := benchShop(b, on)
			ids := make([]string, 0, 500) // fewer than the store keeps
			b.ReportAllocs()
			for b.Loop() {
				if len(ids) == 0 {
					b.StopTimer()
					for range cap(ids) {
						ids = append(ids, mustCreateOrder(b, h, `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`))
					}
					b.StartTimer()
				}
				id := ids[len(ids)-1]
				ids = ids[:len(ids)-1]
				serve(b, h, "/payment/pay", `{"order_id":"`+id+`"}`, http.StatusOK)
			}
		})
	}
}
