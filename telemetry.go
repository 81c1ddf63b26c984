package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
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
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "minishop"

// providers are the three OpenTelemetry signal providers the shop uses.
// They are passed around explicitly rather than set as globals, so tests
// can run side by side with their own in-memory providers.
type providers struct {
	tracer trace.TracerProvider
	meter  metric.MeterProvider
	logger log.LoggerProvider
}

// setupOTelSDK builds the trace, metric and log providers, each exporting OTLP over gRPC.
// Exporters are configured by the standard OTEL_* environment variables
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER, OTEL_METRIC_EXPORT_INTERVAL, OTEL_BSP_*, OTEL_BLRP_*, …).
// OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER=none turn one
// signal off (a no-op provider); OTEL_SDK_DISABLED=true turns all of them off.
// What the SDK loses (a full span or log queue, a failed export) is counted by the SDK's own metrics
// (OTEL_GO_X_OBSERVABILITY=true, which main turns on), exported with the shop's, and logged to report
// at most once every 30 s.
// The returned shutdown flushes and stops every provider; call it once, on the way out.
func setupOTelSDK(ctx context.Context, getenv func(string) string, report *slog.Logger) (p providers, shutdown func(context.Context) error, err error) {
	if getenv("OTEL_SDK_DISABLED") == "true" {
		return noopProviders(), func(context.Context) error { return nil }, nil
	}
	var shutdowns []func(context.Context) error
	stop := func(ctx context.Context) error {
		var errs error
		for _, fn := range shutdowns {
			errs = errors.Join(errs, fn(ctx))
		}
		shutdowns = nil
		return errs
	}
	// On a failure half way, stop what was already started.
	defer func() {
		if err != nil {
			err = errors.Join(err, stop(ctx))
		}
	}()

	res, err := newResource(ctx)
	if err != nil {
		return p, nil, err
	}

	// OTEL_{TRACES,METRICS,LOGS}_EXPORTER: otlp (the default) or none, per signal.
	var exporting [3]bool
	for i, signal := range []string{"TRACES", "METRICS", "LOGS"} {
		if exporting[i], err = exporterEnabled(getenv, signal); err != nil {
			return p, nil, err
		}
	}
	p = noopProviders()

	// With no endpoint configured the exporters dial localhost:4317; a local
	// Collector there speaks plaintext, so don't try TLS against it.
	if exporting[1] {
		var opts []otlpmetricgrpc.Option
		if defaultEndpoint(getenv, "METRICS") {
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
		drops := &dropReporter{Exporter: exp, logger: report, every: 30 * time.Second}
		mp := sdkmetric.NewMeterProvider(
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(drops, readerOpts...)),
			sdkmetric.WithResource(res),
			// Of the SDK's own metrics keep the queues, the losses and the exports; not the per-span and
			// per-record counters (otel.sdk.span.live/started, otel.sdk.log.created): two to three metric
			// updates on every span and log record, which the request metrics already tell. Nor the
			// export and collection durations: histograms with millisecond buckets for seconds (every
			// value lands in the first bucket), 17 series each.
			sdkmetric.WithView(
				dropView("otel.sdk.span.live"), dropView("otel.sdk.span.started"), dropView("otel.sdk.log.created"),
				dropView("otel.sdk.exporter.operation.duration"), dropView("otel.sdk.metric_reader.collection.duration"),
			),
		)
		shutdowns = append(shutdowns, mp.Shutdown)
		p.meter = mp
		// The SDK's own metrics (queues, drops, failed exports) are made on the global meter provider,
		// when each processor and exporter below is created: set it first.
		otel.SetMeterProvider(mp)
	}

	if exporting[0] {
		var opts []otlptracegrpc.Option
		if defaultEndpoint(getenv, "TRACES") {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return p, nil, fmt.Errorf("trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		// Traces shut down first, before the metrics that count their last export.
		shutdowns = append([]func(context.Context) error{tp.Shutdown}, shutdowns...)
		p.tracer = tp
	}

	if exporting[2] {
		var opts []otlploggrpc.Option
		if defaultEndpoint(getenv, "LOGS") {
			opts = append(opts, otlploggrpc.WithInsecure())
		}
		exp, err := otlploggrpc.New(ctx, opts...)
		if err != nil {
			return p, nil, fmt.Errorf("log exporter: %w", err)
		}
		lp := sdklog.NewLoggerProvider(
			sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)),
			sdklog.WithResource(res),
			// The shop never logs a key twice in one record: skip the SDK's per-attribute duplicate
			// check (it builds a map for every attribute added).
			sdklog.WithAllowKeyDuplication(),
		)
		// Logs shut down last, so what the other providers report while stopping still goes out.
		shutdowns = append(shutdowns, lp.Shutdown)
		p.logger = lp
	}

	return p, stop, nil
}

// dropView drops the metric of this name: its instrument then reports itself disabled, and the SDK
// code that feeds it skips the update.
func dropView(name string) sdkmetric.View {
	return sdkmetric.NewView(sdkmetric.Instrument{Name: name}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}})
}

// exporterEnabled reads OTEL_<signal>_EXPORTER, the standard switch: otlp (the default) exports the
// signal over OTLP gRPC, none turns it off (a no-op provider: no cost at all).
func exporterEnabled(getenv func(string) string, signal string) (bool, error) {
	name := "OTEL_" + signal + "_EXPORTER"
	switch v := strings.TrimSpace(getenv(name)); v {
	case "", "otlp":
		return true, nil
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("%s=%q: the shop exports otlp or none", name, v)
	}
}

// defaultEndpoint reports whether no OTLP endpoint is configured for the signal.
func defaultEndpoint(getenv func(string) string, signal string) bool {
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == ""
}

// newResource describes the shop: service.name=minishop and app=minishop by default
// (app is the label Loki indexes and the dashboards select on), with
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES taking precedence.
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
	res, err := resource.Merge(defaults, fromEnv)
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	return res, nil
}

func noopProviders() providers {
	return providers{
		tracer: tracenoop.NewTracerProvider(),
		meter:  metricnoop.NewMeterProvider(),
		logger: lognoop.NewLoggerProvider(),
	}
}

// durationBuckets resolve millisecond latencies: the SDK's default boundaries
// (0, 5, 10, 25 … 10000) assume milliseconds and would put every request of
// this shop in the first bucket or two.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10}

// telemetry is what the handlers and middleware instrument with.
type telemetry struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	logger     *slog.Logger
	// requests, errors and duration arrive in Prometheus (through the Collector's
	// remote write) as request_total, error_total and request_duration_seconds.
	requests    metric.Int64Counter
	errors      metric.Int64Counter
	duration    metric.Float64Histogram
	metricAttrs metricAttrSets
}

func newTelemetry(p providers, logger *slog.Logger) (*telemetry, error) {
	meter := p.meter.Meter("minishop")
	requests, err := meter.Int64Counter("request",
		metric.WithUnit("{request}"),
		metric.WithDescription("HTTP requests served, by method, route and status code."))
	if err != nil {
		return nil, err
	}
	errs, err := meter.Int64Counter("error",
		metric.WithUnit("{error}"),
		metric.WithDescription("HTTP requests answered with a status of 400 or more, by reason."))
	if err != nil {
		return nil, err
	}
	duration, err := meter.Float64Histogram("request_duration",
		metric.WithUnit("s"),
		metric.WithDescription("Time to serve an HTTP request."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return nil, err
	}
	return &telemetry{
		tracer:     p.tracer.Tracer("minishop"),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		logger:     logger,
		requests:   requests,
		errors:     errs,
		duration:   duration,
	}, nil
}

// newLogger logs every record twice from one *slog.Logger: as a JSON line on
// stdout (with trace_id and span_id added, for `docker compose logs`) and
// through the otelslog bridge as an OTLP log record, which carries the trace
// context natively and lands in Loki.
func newLogger(stdout io.Writer, lp log.LoggerProvider) *slog.Logger {
	return slog.New(slog.NewMultiHandler(
		traceContextHandler{slog.NewJSONHandler(stdout, nil)},
		otelslog.NewHandler("minishop", otelslog.WithLoggerProvider(lp)),
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

// errorReporter is the OpenTelemetry error handler. Export errors (a Collector
// that is down, say) are reported at most once per interval with a count of
// what was held back, so a missing Collector never floods the shop's output.
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

// dropReporter sits between the metric reader and its exporter. Every export passes through unchanged;
// on the way it reads the SDK's own loss counters in it (OTEL_GO_X_OBSERVABILITY) and logs what was
// lost since the last report, at most once per interval, so no loss goes unsaid and none floods the log.
type dropReporter struct {
	sdkmetric.Exporter
	logger *slog.Logger
	every  time.Duration

	mu       sync.Mutex
	last     time.Time
	reported map[string]int64 // lost items already reported, by signal
}

func (d *dropReporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	d.check(rm)
	return d.Exporter.Export(ctx, rm)
}

// lostSignal names the signal whose losses an SDK self-observability metric counts, or "".
// Its data points with an error.type attribute are items lost: error.type=queue_full for a full queue,
// the export error's type for a failed export.
func lostSignal(metric string) string {
	switch metric {
	case "otel.sdk.processor.span.processed", "otel.sdk.exporter.span.exported":
		return "spans"
	case "otel.sdk.processor.log.processed", "otel.sdk.exporter.log.exported":
		return "log_records"
	case "otel.sdk.exporter.metric_data_point.exported":
		return "metric_points"
	}
	return ""
}

func (d *dropReporter) check(rm *metricdata.ResourceMetrics) {
	lost := map[string]int64{}
	var reasons []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			signal := lostSignal(m.Name)
			sum, ok := m.Data.(metricdata.Sum[int64])
			if signal == "" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if reason, ok := dp.Attributes.Value("error.type"); ok && dp.Value > 0 {
					lost[signal] += dp.Value // cumulative: all lost so far
					if r := reason.Emit(); !slices.Contains(reasons, r) {
						reasons = append(reasons, r)
					}
				}
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if !d.last.IsZero() && now.Sub(d.last) < d.every {
		return
	}
	var attrs []any
	for _, signal := range []string{"spans", "log_records", "metric_points"} {
		if n := lost[signal] - d.reported[signal]; n > 0 {
			attrs = append(attrs, "lost_"+signal, n)
		}
	}
	if len(attrs) == 0 {
		return
	}
	d.last, d.reported = now, lost
	slices.Sort(reasons)
	attrs = append(attrs, "reasons", strings.Join(reasons, ","),
		"see", "otel_sdk_processor_*_processed_total and otel_sdk_exporter_*_exported_total with error_type")
	d.logger.Warn("telemetry dropped", attrs...)
}
