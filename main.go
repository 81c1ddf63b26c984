// Command minishop is a small e-commerce backend instrumented with OpenTelemetry:
// every request leaves a trace, metrics and logs, pushed over OTLP to a Collector.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "minishop: %s\n", err)
		os.Exit(1)
	}
}

// config is everything the shop can be told, by flag or by environment variable.
type config struct {
	addr            string
	payment         paymentProvider
	restockEvery    time.Duration
	maxOrders       int
	shutdownTimeout time.Duration
}

// parseConfig reads MINISHOP_* environment variables as defaults, then flags.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{
		addr:            ":8080",
		payment:         paymentProvider{failureRate: 0.05, latency: 30 * time.Millisecond, jitter: 40 * time.Millisecond},
		restockEvery:    15 * time.Second,
		maxOrders:       20000,
		shutdownTimeout: 10 * time.Second,
	}
	var errs []error
	envString := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	envDuration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 250ms", name, v))
				return
			}
			*dst = d
		}
	}
	envString("MINISHOP_ADDR", &cfg.addr)
	if v := getenv("MINISHOP_PAYMENT_FAILURE_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("MINISHOP_PAYMENT_FAILURE_RATE=%q: want a number between 0 and 1", v))
		}
		cfg.payment.failureRate = f
	}
	envDuration("MINISHOP_PAYMENT_LATENCY", &cfg.payment.latency)
	envDuration("MINISHOP_PAYMENT_JITTER", &cfg.payment.jitter)
	envDuration("MINISHOP_RESTOCK_INTERVAL", &cfg.restockEvery)
	envDuration("MINISHOP_SHUTDOWN_TIMEOUT", &cfg.shutdownTimeout)
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", cfg.addr, "listen address (MINISHOP_ADDR)")
	fs.Float64Var(&cfg.payment.failureRate, "payment-failure-rate", cfg.payment.failureRate, "share of payments the simulated provider fails, 0 to 1 (MINISHOP_PAYMENT_FAILURE_RATE)")
	fs.DurationVar(&cfg.payment.latency, "payment-latency", cfg.payment.latency, "fixed latency of the simulated payment provider (MINISHOP_PAYMENT_LATENCY)")
	fs.DurationVar(&cfg.payment.jitter, "payment-jitter", cfg.payment.jitter, "random extra latency, up to this much (MINISHOP_PAYMENT_JITTER)")
	fs.DurationVar(&cfg.restockEvery, "restock-interval", cfg.restockEvery, "how often the shelves are refilled to capacity; 0 never (MINISHOP_RESTOCK_INTERVAL)")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", cfg.shutdownTimeout, "how long to finish requests, then to flush telemetry, on SIGTERM (MINISHOP_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if r := cfg.payment.failureRate; r < 0 || r > 1 {
		return cfg, fmt.Errorf("payment failure rate %v: want a number between 0 and 1", r)
	}
	if cfg.payment.latency < 0 || cfg.payment.jitter < 0 || cfg.restockEvery < 0 || cfg.shutdownTimeout <= 0 {
		return cfg, errors.New("durations must not be negative, and the shutdown timeout must be positive")
	}
	return cfg, nil
}

// run is the whole program: it serves until ctx is cancelled or SIGINT/SIGTERM
// arrives, then stops accepting, finishes in-flight requests and flushes telemetry.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()

	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}

	prov, shutdownOTel, err := setupOTelSDK(ctx, getenv)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		// Flush after the HTTP server has drained, so every finished request's
		// spans, metrics and logs leave before the process does.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
		defer cancel()
		if serr := shutdownOTel(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("telemetry shutdown: %w", serr))
		}
	}()
	// Export errors go to stdout only (never back into OTLP), and seldom.
	stdoutOnly := slog.New(slog.NewJSONHandler(stdout, nil))
	otel.SetErrorHandler(&errorReporter{logger: stdoutOnly, every: 30 * time.Second})

	logger := newLogger(stdout, prov.logger)
	tel, err := newTelemetry(prov, logger)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	st := newStore(cfg.restockEvery, cfg.maxOrders, time.Now)

	var ready atomic.Bool
	srv := &http.Server{
		Handler:           newServer(tel, st, cfg.payment, &ready),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(stdoutOnly.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	ready.Store(true)
	logger.Info("minishop listening", "addr", ln.Addr().String(),
		"payment_failure_rate", cfg.payment.failureRate,
		"payment_latency", cfg.payment.latency.String(),
		"payment_jitter", cfg.payment.jitter.String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	ready.Store(false)
	logger.Info("shutting down: finishing in-flight requests, then flushing telemetry")
	sctx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	defer cancelShutdown()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("minishop stopped")
	return nil
}
