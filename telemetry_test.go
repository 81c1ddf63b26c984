package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	t.Fatalf("no span %q among %v", name, names)
	return nil
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestOrderTraceHasCreateOrderAndDeductInventory(t *testing.T) {
	ts := newTestShop(t, noFailures)
	// An upstream caller's trace context is honoured.
	req := httptest.NewRequest("POST", "/order", strings.NewReader(`{"items":[{"sku":"MUG-OTEL","quantity":1}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, req)
	if rec.Code != 201 {
		t.Fatalf("status %d", rec.Code)
	}

	spans := ts.spans.Ended()
	server := spanNamed(t, spans, "POST /order")
	create := spanNamed(t, spans, "CreateOrder")
	deduct := spanNamed(t, spans, "DeductInventory")
	if server.SpanKind() != trace.SpanKindServer {
		t.Errorf("server span kind = %v", server.SpanKind())
	}
	if got := server.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id = %s, want the caller's", got)
	}
	if got := server.Parent().SpanID().String(); got != "00f067aa0ba902b7" || !server.Parent().IsRemote() {
		t.Errorf("server span parent = %s, want the caller's span", got)
	}
	if create.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("CreateOrder is not a child of the server span")
	}
	if deduct.Parent().SpanID() != create.SpanContext().SpanID() {
		t.Error("DeductInventory is not a child of CreateOrder")
	}
	if got := rec.Header().Get("X-Trace-Id"); got != server.SpanContext().TraceID().String() {
		t.Errorf("X-Trace-Id = %s, want the trace's id", got)
	}
	if v, _ := spanAttr(server, "http.route"); v.AsString() != "/order" {
		t.Errorf("http.route = %q", v.AsString())
	}
	if v, _ := spanAttr(server, "http.response.status_code"); v.AsInt64() != 201 {
		t.Errorf("http.response.status_code = %v", v.AsInt64())
	}
	if v, ok := spanAttr(create, "app.order.id"); !ok || !strings.HasPrefix(v.AsString(), "ord_") {
		t.Errorf("CreateOrder app.order.id = %q", v.AsString())
	}
	if v, _ := spanAttr(deduct, "app.product.skus"); !slices.Equal(v.AsStringSlice(), []string{"MUG-OTEL"}) {
		t.Errorf("DeductInventory app.product.skus = %v", v.AsStringSlice())
	}
}

func TestOutOfStockMarksDeductInventoryFailed(t *testing.T) {
	ts := newTestShop(t, noFailures)
	if rec := do(t, ts.handler, "POST", "/order", `{"items":[{"sku":"LIMITED-PIN","quantity":6}]}`); rec.Code != 409 {
		t.Fatalf("status %d", rec.Code)
	}
	deduct := spanNamed(t, ts.spans.Ended(), "DeductInventory")
	if deduct.Status().Code != codes.Error || deduct.Status().Description != "out_of_stock" {
		t.Errorf("DeductInventory status = %+v", deduct.Status())
	}
	if !hasLog(ts.logs.all(), "out of stock", map[string]string{"sku": "LIMITED-PIN", "reason": "out_of_stock"}) {
		t.Error("no 'out of stock' log record with sku and reason")
	}
}

func TestFailedPaymentTelemetry(t *testing.T) {
	ts := newTestShop(t, faultSettings{PaymentFailureRate: 1})
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
	reason := decodeBody[errorResponse](t, rec).Reason
	traceID := rec.Header().Get("X-Trace-Id")

	spans := ts.spans.Ended()
	server := spanNamed(t, spans, "POST /payment/pay")
	charge := spanNamed(t, spans, "ChargePayment")
	if charge.Parent().SpanID() != server.SpanContext().SpanID() || charge.SpanKind() != trace.SpanKindClient {
		t.Error("ChargePayment is not a client span under the server span")
	}
	for _, s := range []sdktrace.ReadOnlySpan{server, charge} {
		if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, reason) {
			t.Errorf("%s status = %+v, want Error naming %q", s.Name(), s.Status(), reason)
		}
	}
	if v, _ := spanAttr(charge, "app.payment.failure_reason"); v.AsString() != reason {
		t.Errorf("app.payment.failure_reason = %q, want %q", v.AsString(), reason)
	}

	var failed *sdklog.Record
	for _, r := range ts.logs.all() {
		if r.Body().AsString() == "payment failed" {
			failed = &r
		}
	}
	if failed == nil {
		t.Fatal("no OTLP log record 'payment failed'")
	}
	if failed.TraceID().String() != traceID {
		t.Errorf("log trace id = %s, want %s (the response's)", failed.TraceID(), traceID)
	}
	if failed.Severity() < log.SeverityWarn {
		t.Errorf("severity = %v, want WARN or worse", failed.Severity())
	}
	want := map[string]string{"reason": reason, "order_id": id, "amount_cents": "1250", "method": "card"}
	if !hasLog([]sdklog.Record{*failed}, "payment failed", want) {
		t.Errorf("payment failed record lacks %v: %v", want, logAttrs(*failed))
	}
}

func TestMetricsAreLabelledByRoutePattern(t *testing.T) {
	ts := newTestShop(t, noFailures)
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	do(t, ts.handler, "GET", "/order/"+id, "")
	do(t, ts.handler, "GET", "/order/ord_unknown", "")
	do(t, ts.handler, "POST", "/order", `{"items":[{"sku":"NOPE","quantity":1}]}`)
	do(t, ts.handler, "BREW", "/coffee", "")

	ms := ts.collect(t)
	requests, ok := ms["request"]
	if !ok || requests.Unit != "{request}" {
		t.Fatalf("request counter missing or wrong unit: %+v", requests)
	}
	sum := requests.Data.(metricdata.Sum[int64])
	if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
		t.Errorf("request is not a cumulative monotonic sum")
	}
	got := map[string]int64{}
	for _, dp := range sum.DataPoints {
		got[attrString(dp.Attributes, "method", "route", "status_code")] = dp.Value
	}
	want := map[string]int64{
		"POST /order 201":      1,
		"GET /order/{id} 200":  1,
		"GET /order/{id} 404":  1,
		"POST /order 400":      1,
		"_OTHER unmatched 404": 1,
	}
	if !mapsEqual(got, want) {
		t.Errorf("request_total = %v, want %v", got, want)
	}

	errs := ms["error"].Data.(metricdata.Sum[int64])
	gotErr := map[string]int64{}
	for _, dp := range errs.DataPoints {
		gotErr[attrString(dp.Attributes, "route", "status_code", "reason")] = dp.Value
	}
	wantErr := map[string]int64{
		"/order/{id} 404 order_not_found": 1,
		"/order 400 unknown_sku":          1,
		"unmatched 404 not_found":         1,
	}
	if !mapsEqual(gotErr, wantErr) || ms["error"].Unit != "{error}" {
		t.Errorf("error_total = %v (unit %q), want %v", gotErr, ms["error"].Unit, wantErr)
	}

	dur := ms["request_duration"]
	if dur.Unit != "s" {
		t.Errorf("request_duration unit = %q, want s", dur.Unit)
	}
	hist := dur.Data.(metricdata.Histogram[float64])
	var exemplars int
	for _, dp := range hist.DataPoints {
		if !slices.Equal(dp.Bounds, durationBuckets) {
			t.Errorf("bounds = %v", dp.Bounds)
		}
		for _, ex := range dp.Exemplars {
			if len(ex.TraceID) == 16 {
				exemplars++
			}
		}
	}
	if len(hist.DataPoints) != len(want) || exemplars == 0 {
		t.Errorf("duration histogram: %d series (want %d), %d exemplars with a trace id", len(hist.DataPoints), len(want), exemplars)
	}
}

func TestAccessLog(t *testing.T) {
	ts := newTestShop(t, noFailures)
	req := httptest.NewRequest("GET", "/order/ord_nope", nil)
	req.Header.Set("User-Agent", "access-log-test")
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, req)
	traceID := rec.Header().Get("X-Trace-Id")

	// On stdout, as one JSON line.
	var line map[string]any
	sc := bufio.NewScanner(strings.NewReader(ts.stdout.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "request" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no access-log line on stdout: %s", ts.stdout)
	}
	for k, want := range map[string]any{
		"method": "GET", "route": "/order/{id}", "path": "/order/ord_nope", "status": float64(404),
		"user_agent": "access-log-test", "client_address": "192.0.2.1:1234", "trace_id": traceID,
		"reason": "order_not_found", "level": "INFO",
	} {
		if line[k] != want {
			t.Errorf("stdout %s = %v, want %v", k, line[k], want)
		}
	}
	for _, k := range []string{"duration_ms", "response_bytes", "span_id", "time"} {
		if _, ok := line[k]; !ok {
			t.Errorf("stdout access log lacks %s", k)
		}
	}

	// Over OTLP, with the trace context on the record itself.
	var found bool
	for _, r := range ts.logs.all() {
		if r.Body().AsString() == "request" {
			found = true
			if r.TraceID().String() != traceID || !r.SpanID().IsValid() {
				t.Errorf("OTLP access log trace id = %s, want %s", r.TraceID(), traceID)
			}
			if !hasLog([]sdklog.Record{r}, "request", map[string]string{"route": "/order/{id}", "status": "404", "path": "/order/ord_nope"}) {
				t.Errorf("OTLP access log attributes = %v", logAttrs(r))
			}
		}
	}
	if !found {
		t.Error("no OTLP access-log record")
	}
}

func TestResourceDefaultsAndEnvironment(t *testing.T) {
	res, err := newResource(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{}
	for _, kv := range res.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["service.name"] != "minishop" || attrs["app"] != "minishop" {
		t.Errorf("default resource = %v", attrs)
	}

	t.Setenv("OTEL_SERVICE_NAME", "shop-eu")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=lab")
	res, err = newResource(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	attrs = map[string]string{}
	for _, kv := range res.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["service.name"] != "shop-eu" || attrs["deployment.environment.name"] != "lab" || attrs["app"] != "minishop" {
		t.Errorf("resource with OTEL_* set = %v", attrs)
	}
}

func TestErrorReporterIsRateLimited(t *testing.T) {
	var out syncBuffer
	r := &errorReporter{logger: newLogger(&out, noopProviders().logger), every: 1 << 62}
	for range 100 {
		r.Handle(http.ErrHandlerTimeout)
	}
	if n := strings.Count(out.String(), "telemetry export failing"); n != 1 {
		t.Errorf("100 errors reported %d times, want once", n)
	}
}

func logAttrs(r sdklog.Record) map[string]string {
	out := map[string]string{}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		out[string(kv.Key)] = kv.Value.Emit()
		return true
	})
	return out
}

// hasLog reports whether a record with this body has at least these attributes.
func hasLog(recs []sdklog.Record, body string, want map[string]string) bool {
	for _, r := range recs {
		if r.Body().AsString() != body {
			continue
		}
		got := logAttrs(r)
		ok := true
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}

func attrString(set attribute.Set, keys ...string) string {
	var parts []string
	for _, k := range keys {
		v, _ := set.Value(attribute.Key(k))
		parts = append(parts, v.Emit())
	}
	return strings.Join(parts, " ")
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSignalExporterSwitches(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+freeAddr(t)) // nothing listens: nothing is sent
	env := map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none"}
	p, shutdown, err := setupOTelSDK(t.Context(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // nobody to flush to
		defer cancel()
		_ = shutdown(ctx)
	}()
	noop := noopProviders()
	if p.tracer != noop.tracer || p.logger != noop.logger {
		t.Errorf("traces and logs set to none, got providers %T and %T", p.tracer, p.logger)
	}
	if _, ok := p.meter.(*sdkmetric.MeterProvider); !ok {
		t.Errorf("metrics set to otlp, got %T", p.meter)
	}

	env["OTEL_LOGS_EXPORTER"] = "console"
	if _, _, err := setupOTelSDK(t.Context(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "OTEL_LOGS_EXPORTER") {
		t.Errorf("OTEL_LOGS_EXPORTER=console: err = %v, want one naming the variable", err)
	}
}

// The drop report says what was lost since the last report, at most once per interval.
func TestDropReporterReportsLossesOncePerInterval(t *testing.T) {
	var out syncBuffer
	d := &dropReporter{logger: slog.New(slog.NewJSONHandler(&out, nil)), every: time.Hour}
	lost := func(spans int64) *metricdata.ResourceMetrics {
		return &metricdata.ResourceMetrics{ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: []metricdata.Metrics{{
			Name: "otel.sdk.processor.span.processed",
			Data: metricdata.Sum[int64]{DataPoints: []metricdata.DataPoint[int64]{
				{Attributes: attribute.NewSet(), Value: 1000}, // processed fine: not a loss
				{Attributes: attribute.NewSet(attribute.String("error.type", "queue_full")), Value: spans},
			}},
		}}}}}
	}
	d.check(lost(0))
	if out.String() != "" {
		t.Fatalf("reported without a loss: %s", out.String())
	}
	d.check(lost(5))
	d.check(lost(7)) // within the interval: held back
	if n := strings.Count(out.String(), "telemetry dropped"); n != 1 || !strings.Contains(out.String(), `"lost_spans":5,"reasons":"queue_full"`) {
		t.Fatalf("after two losses: %s", out.String())
	}
	d.last = d.last.Add(-2 * time.Hour) // the interval has passed
	d.check(lost(12))
	if !strings.Contains(out.String(), `"lost_spans":7,`) {
		t.Errorf("second report should hold the 7 lost since the first: %s", out.String())
	}
}

// One log record per order, the access log, and it names the order.
func TestOrderAccessLogNamesTheOrder(t *testing.T) {
	ts := newTestShop(t, noFailures)
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	var bodies []string
	for _, r := range ts.logs.all() {
		bodies = append(bodies, r.Body().AsString())
	}
	if !slices.Equal(bodies, []string{"request"}) {
		t.Errorf("log records of POST /order = %q, want just the access log", bodies)
	}
	if !hasLog(ts.logs.all(), "request", map[string]string{"order_id": id, "status": "201"}) {
		t.Errorf("access log lacks order_id %s: %v", id, logAttrs(ts.logs.all()[0]))
	}
}
