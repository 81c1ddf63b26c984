// This file sets up OpenTelemetry (traces, metrics and logs over OTLP gRPC, configured by the
// standard OTEL_* variables) and holds the middleware that gives every API request its server span.
//
// Like loadgen/, the gateway repeats a few small helpers of the shop's telemetry.go and handlers.go
// (traceContextHandler, errorReporter, exporterEnabled, encode/decode) instead of sharing a package
// with it: each program of the lab reads on its own. Change them in step.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/log"
	lognoop "go.opentelemetry.io/otel/log/noop"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// serviceName is the default service.name and app; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
const serviceName = "payment-gateway"

// scopeName names the gateway's tracer, meter and logger.
const scopeName = "minishop/paymentgw"

// providers are the three signal providers, passed around explicitly (never globals), so tests
// can bring their own in-memory ones.
type providers struct {
	tracer trace.TracerProvider
	meter  metric.MeterProvider
	logger log.LoggerProvider
}

// setupOTelSDK builds the trace, metric and log providers, each exporting OTLP over gRPC as the
// OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_METRIC_EXPORT_INTERVAL, …).
// OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none turns one signal off; OTEL_SDK_DISABLED=true all of them.
// The returned shutdown flushes and stops every provider; call it once, on the way out.
func setupOTelSDK(ctx context.Context, getenv func(string) string) (p providers, shutdown func(context.Context) error, err error) {
	p = providers{tracer: tracenoop.NewTracerProvider(), meter: metricnoop.NewMeterProvider(), logger: lognoop.NewLoggerProvider()}
	var shutdowns []func(context.Context) error
	stop := func(ctx context.Context) error {
		var errs error
		for _, fn := range shutdowns {
			errs = errors.Join(errs, fn(ctx))
		}
		shutdowns = nil
		return errs
	}
	if getenv("OTEL_SDK_DISABLED") == "true" {
		return p, stop, nil
	}
	defer func() {
		if err != nil { // stop what was already started
			err = errors.Join(err, stop(ctx))
		}
	}()
	res, err := newResource(ctx)
	if err != nil {
		return p, nil, err
	}
	// With no endpoint configured the exporters dial localhost:4317, a plaintext local Collector.
	insecure := func(signal string) bool {
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == ""
	}

	if on, err := exporterEnabled(getenv, "TRACES"); err != nil {
		return p, nil, err
	} else if on {
		var opts []otlptracegrpc.Option
		if insecure("TRACES") {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return p, nil, fmt.Errorf("trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		shutdowns = append(shutdowns, tp.Shutdown)
		p.tracer = tp
	}

	if on, err := exporterEnabled(getenv, "METRICS"); err != nil {
		return p, nil, err
	} else if on {
		var opts []otlpmetricgrpc.Option
		if insecure("METRICS") {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		exp, err := otlpmetricgrpc.New(ctx, opts...)
		if err != nil {
			return p, nil, fmt.Errorf("metric exporter: %w", err)
		}
		var readerOpts []sdkmetric.PeriodicReaderOption
		if getenv("OTEL_METRIC_EXPORT_INTERVAL") == "" {
			// The SDK default is 60 s; a lab wants its dashboards to move within seconds.
			readerOpts = append(readerOpts, sdkmetric.WithInterval(5*time.Second))
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, readerOpts...)), sdkmetric.WithResource(res))
		shutdowns = append(shutdowns, mp.Shutdown)
		p.meter = mp
	}

	if on, err := exporterEnabled(getenv, "LOGS"); err != nil {
		return p, nil, err
	} else if on {
		var opts []otlploggrpc.Option
		if insecure("LOGS") {
			opts = append(opts, otlploggrpc.WithInsecure())
		}
		exp, err := otlploggrpc.New(ctx, opts...)
		if err != nil {
			return p, nil, fmt.Errorf("log exporter: %w", err)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)), sdklog.WithResource(res))
		shutdowns = append(shutdowns, lp.Shutdown) // last, so what the others report while stopping still goes out
		p.logger = lp
	}
	return p, stop, nil
}

// exporterEnabled reads OTEL_<signal>_EXPORTER: otlp (the default) or none.
func exporterEnabled(getenv func(string) string, signal string) (bool, error) {
	name := "OTEL_" + signal + "_EXPORTER"
	switch v := strings.TrimSpace(getenv(name)); v {
	case "", "otlp":
		return true, nil
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("%s=%q: the gateway exports otlp or none", name, v)
	}
}

// newResource describes the gateway: service.name and app are payment-gateway (app is the label
// Loki indexes), unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
func newResource(ctx context.Context) (*resource.Resource, error) {
	defaults, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", serviceName),
		attribute.String("app", serviceName),
	))
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	fromEnv, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("resource from environment: %w", err)
	}
	return resource.Merge(defaults, fromEnv)
}

// telemetry is what the handlers instrument with.
type telemetry struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	logger     *slog.Logger
	// charges and replays arrive in Prometheus as payment_gateway_charges_total{outcome,method}
	// and payment_gateway_idempotent_replays_total. The request rate, errors and durations come
	// from the Collector's spanmetrics connector, out of the server spans.
	charges metric.Int64Counter
	replays metric.Int64Counter
}

func newTelemetry(p providers, logger *slog.Logger) (*telemetry, error) {
	meter := p.meter.Meter(scopeName)
	charges, err := meter.Int64Counter("payment_gateway_charges", metric.WithUnit("{charge}"),
		metric.WithDescription("Charges decided, by outcome and payment method."))
	if err != nil {
		return nil, err
	}
	replays, err := meter.Int64Counter("payment_gateway_idempotent_replays", metric.WithUnit("{request}"),
		metric.WithDescription("Requests answered with the stored answer of an earlier request with the same idempotency key."))
	if err != nil {
		return nil, err
	}
	return &telemetry{
		tracer:     p.tracer.Tracer(scopeName),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		logger:     logger,
		charges:    charges,
		replays:    replays,
	}, nil
}

// newLogger logs every record twice: as a JSON line on stdout (with trace_id and span_id) and
// through the otelslog bridge as an OTLP log record carrying the trace context.
func newLogger(stdout io.Writer, lp log.LoggerProvider) *slog.Logger {
	return slog.New(slog.NewMultiHandler(
		traceContextHandler{slog.NewJSONHandler(stdout, nil)},
		otelslog.NewHandler(scopeName, otelslog.WithLoggerProvider(lp)),
	))
}

// traceContextHandler adds the active span's trace_id and span_id to each record.
type traceContextHandler struct{ slog.Handler }

func (h traceContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceContextHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceContextHandler) WithGroup(name string) slog.Handler {
	return traceContextHandler{h.Handler.WithGroup(name)}
}

// errorReporter is the OpenTelemetry error handler: export errors (a Collector that is down) are
// logged at most once per interval, with a count of those held back.
type errorReporter struct {
	logger     *slog.Logger
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *errorReporter) Handle(err error) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	r.logger.Warn("telemetry export failing", "error", err.Error(), "suppressed_since_last_report", suppressed)
}

// unmatchedRoute names the span of a request that matched no route, keeping span names bounded.
const unmatchedRoute = "unmatched"

// observe gives every API request a server span named after its route ("POST /v1/charges"),
// continuing the caller's W3C trace context. It must wrap a handler registered on a ServeMux, so
// that r.Pattern names the route. Spans of 5xx answers get status Error.
func observe(tel *telemetry) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			method := r.Method
			switch method {
			case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
				http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
			default:
				method = "_OTHER" // bounded, as the HTTP semantic conventions want
			}
			route := r.Pattern
			if _, path, ok := strings.Cut(route, " "); ok {
				route = path
			}
			name := method + " " + route
			if route == "" || route == "/" {
				route, name = unmatchedRoute, unmatchedRoute
			}
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			ctx := tel.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tel.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
				attribute.String("http.request.method", method),
				attribute.String("http.route", route),
				attribute.String("url.path", r.URL.Path),
				attribute.String("server.address", host),
				attribute.String("user_agent.original", r.UserAgent()),
			))
			defer span.End()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(rec, r.WithContext(ctx))
			span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
			if rec.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.status))
			}
		})
	}
}

// statusRecorder remembers the status of a response.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (sr *statusRecorder) WriteHeader(code int) {
	if !sr.wroteHeader {
		sr.status, sr.wroteHeader = code, true
	}
	sr.ResponseWriter.WriteHeader(code)
}

func (sr *statusRecorder) Write(b []byte) (int, error) {
	sr.wroteHeader = true
	return sr.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (sr *statusRecorder) Unwrap() http.ResponseWriter { return sr.ResponseWriter }
