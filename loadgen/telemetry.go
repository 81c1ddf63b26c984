package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "loadgen"

// setupTracing builds a tracer provider exporting OTLP over gRPC, configured like the shop's by
// the standard OTEL_* environment variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*, …); with no endpoint configured it
// sends plaintext to localhost:4317. OTEL_SDK_DISABLED=true gives a no-op provider.
// The loadgen sends traces only: the shop's metrics and logs tell the story of the requests.
// shutdown flushes the spans still queued; call it once, on the way out.
func setupTracing(ctx context.Context, getenv func(string) string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	if getenv("OTEL_SDK_DISABLED") == "true" {
		return tracenoop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	res, err := newResource(ctx)
	if err != nil {
		return nil, nil, err
	}
	var opts []otlptracegrpc.Option
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		// A local Collector on the default localhost:4317 speaks plaintext: don't try TLS on it.
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("trace exporter: %w", err)
	}
	sdktp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return sdktp, sdktp.Shutdown, nil
}

// otlpEndpoint is where traces go, for messages.
func otlpEndpoint(getenv func(string) string) string {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := getenv(name); v != "" {
			return v
		}
	}
	return "localhost:4317"
}

// newResource describes the loadgen: service.name=loadgen unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise.
func newResource(ctx context.Context) (*resource.Resource, error) {
	defaults, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", serviceName)))
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

// errorReporter is the OpenTelemetry error handler: export errors (no Collector running, say)
// are logged at most once per interval, with a count of those held back, so they never drown
// the progress lines.
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
	r.logger.Warn("trace export failing", "error", err.Error(), "suppressed_since_last_report", suppressed)
}
