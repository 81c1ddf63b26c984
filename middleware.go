package main

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// requestInfo is filled in by handlers for the telemetry middleware: the machine-readable reason of a
// failed request (error_total's reason label), and the order it was about, for the access log.
type requestInfo struct {
	reason  string
	orderID string
}

type requestInfoKey struct{}

// setReason records why the request failed, if the request is observed.
func setReason(ctx context.Context, reason string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.reason = reason
	}
}

// setOrderID names the order the request created or paid, for its access log record.
func setOrderID(ctx context.Context, id string) {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.orderID = id
	}
}

// observe is the telemetry middleware wrapped around every API route (not the
// health checks). Per request it makes one server span named after the route,
// one access-log record, and records request_total, request_duration_seconds
// and, for statuses of 400 and above, error_total. It must wrap a handler
// registered on a ServeMux, so that r.Pattern names the route.
func observe(tel *telemetry) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			method := methodLabel(r.Method)
			route := routeLabel(r.Pattern)
			name := method
			if route != unmatchedRoute {
				name += " " + route
			}

			ctx := tel.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tel.tracer.Start(ctx, name,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("http.request.method", method),
					attribute.String("http.route", route),
					attribute.String("url.path", r.URL.Path),
					attribute.String("client.address", r.RemoteAddr),
					attribute.String("user_agent.original", r.UserAgent()),
				))
			defer span.End()
			// Hand the trace id back, so a curl user can jump straight to the trace.
			if sc := span.SpanContext(); sc.IsValid() {
				w.Header().Set("traceresponse", "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sc.TraceFlags().String())
				w.Header().Set("X-Trace-Id", sc.TraceID().String())
			}
			info := &requestInfo{}
			ctx = context.WithValue(ctx, requestInfoKey{}, info)
			rec := &responseRecorder{ResponseWriter: w}

			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					tel.logger.ErrorContext(ctx, "handler panicked", "panic", p, "stack", string(debug.Stack()))
					span.RecordError(panicError{p})
					if !rec.wroteHeader {
						writeError(ctx, rec, http.StatusInternalServerError, "internal", "internal error")
					}
					info.reason = "internal"
				}
				status := rec.status()
				elapsed := time.Since(start)
				tel.record(ctx, span, r, method, route, status, info, rec.bytes, elapsed)
			}()
			next.ServeHTTP(rec, r.WithContext(ctx))
		})
	}
}

// record writes the metrics, span status and access log of one finished request.
func (tel *telemetry) record(ctx context.Context, span trace.Span, r *http.Request, method, route string, status int, info *requestInfo, bytes int64, elapsed time.Duration) {
	reason := info.reason
	if status >= 400 && reason == "" {
		reason = defaultReason(status)
	}
	attrs := tel.metricAttrs.get(method, route, status, "")
	// Counters take no exemplars (no dashboard shows them), so they get no trace context; the
	// duration histogram does, which links a latency bucket to a trace.
	tel.requests.Add(context.Background(), 1, attrs)
	tel.duration.Record(ctx, elapsed.Seconds(), attrs)

	span.SetAttributes(attribute.Int("http.response.status_code", status))
	level := slog.LevelInfo
	logAttrs := make([]slog.Attr, 0, 10)
	logAttrs = append(logAttrs,
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int64("response_bytes", bytes),
		slog.String("client_address", r.RemoteAddr),
		slog.String("user_agent", r.UserAgent()),
	)
	if info.orderID != "" {
		logAttrs = append(logAttrs, slog.String("order_id", info.orderID))
	}
	if status >= 400 {
		tel.errors.Add(context.Background(), 1, tel.metricAttrs.get(method, route, status, reason))
		span.SetAttributes(attribute.String("error.type", reason))
		logAttrs = append(logAttrs, slog.String("reason", reason))
		switch {
		case status >= 500:
			level = slog.LevelError
			span.SetStatus(codes.Error, reason)
		case status == http.StatusPaymentRequired:
			// 402 is the simulated payment provider declining: a failure worth a warning.
			level = slog.LevelWarn
		}
	}
	tel.logger.LogAttrs(ctx, level, "request", logAttrs...)
}

// metricAttrSets hands out the attribute sets of request_total and request_duration_seconds
// {method, route, status_code} and of error_total {…, reason}. There are a few dozen combinations
// (every label is bounded), so each is built once, not on every request.
type metricAttrSets struct{ sets sync.Map } // metricAttrKey → metric.MeasurementOption

type metricAttrKey struct {
	method, route string
	status        int
	reason        string
}

func (m *metricAttrSets) get(method, route string, status int, reason string) metric.MeasurementOption {
	key := metricAttrKey{method, route, status, reason}
	if o, ok := m.sets.Load(key); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{
		attribute.String("method", method),
		attribute.String("route", route),
		attribute.String("status_code", strconv.Itoa(status)),
	}
	if reason != "" {
		kvs = append(kvs, attribute.String("reason", reason))
	}
	o, _ := m.sets.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return o.(metric.MeasurementOption)
}

// unmatchedRoute labels requests that matched no API route, keeping the label bounded.
const unmatchedRoute = "unmatched"

// routeLabel turns a ServeMux pattern such as "POST /order" or "/order/{id}"
// into the route label "/order" or "/order/{id}". Never the raw path: that
// would make one time series per order id.
func routeLabel(pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern == "" || pattern == "/" {
		return unmatchedRoute
	}
	return pattern
}

// methodLabel keeps the method label bounded: anything non-standard is "_OTHER",
// as the OpenTelemetry HTTP semantic conventions do.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// defaultReason names a failure no handler explained.
func defaultReason(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	}
	if status >= 500 {
		return "internal"
	}
	return "invalid_request"
}

// responseRecorder remembers the status and size of a response.
type responseRecorder struct {
	http.ResponseWriter
	code        int
	bytes       int64
	wroteHeader bool
}

func (rr *responseRecorder) WriteHeader(code int) {
	if !rr.wroteHeader {
		rr.code, rr.wroteHeader = code, true
	}
	rr.ResponseWriter.WriteHeader(code)
}

func (rr *responseRecorder) Write(b []byte) (int, error) {
	if !rr.wroteHeader {
		rr.WriteHeader(http.StatusOK)
	}
	n, err := rr.ResponseWriter.Write(b)
	rr.bytes += int64(n)
	return n, err
}

func (rr *responseRecorder) status() int {
	if !rr.wroteHeader {
		return http.StatusOK
	}
	return rr.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rr *responseRecorder) Unwrap() http.ResponseWriter { return rr.ResponseWriter }

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + strings.TrimSpace(slog.AnyValue(p.v).String()) }
