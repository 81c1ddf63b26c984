// Command paymentgw is the MiniShop lab's simulated payment gateway: the payment provider's API the
// shop calls over HTTP, with W3C trace context, to charge an order.
//
// It answers POST /v1/charges like a real provider does (idempotency keys, declines, timeouts that
// happen after the money moved), and it is instrumented as its own OpenTelemetry service
// (service.name=payment-gateway), so Jaeger shows minishop → payment-gateway traces. Trouble is
// switched on at runtime through a separate, token-protected fault-injection API.
//
// It is configured by PAYMENTGW_* and the standard OTEL_* environment variables; see parseConfig.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "paymentgw: %s\n", err)
		os.Exit(1)
	}
}

// config is everything the gateway can be told.
type config struct {
	addr string
	// adminAddr and adminToken: the fault-injection API; off without a token.
	adminAddr       string
	adminToken      string
	faults          faultSettings
	maxCharges      int
	shutdownTimeout time.Duration
}

// parseConfig reads the PAYMENTGW_* environment variables; every bad value is reported at once.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	cfg := config{
		addr:      ":8081",
		adminAddr: "127.0.0.1:9092",
		faults: faultSettings{
			FailureRate: 0.05,
			Latency:     latency{Fixed: duration(30 * time.Millisecond), Jitter: duration(40 * time.Millisecond)},
			Stall:       duration(5 * time.Second),
		},
		maxCharges:      50000,
		shutdownTimeout: 10 * time.Second,
	}
	if len(args) > 1 {
		return cfg, fmt.Errorf("unexpected arguments %q: the gateway is configured by PAYMENTGW_* environment variables", args[1:])
	}
	var errs []error
	env := func(name, want string, parse func(string) bool) {
		if v := getenv(name); v != "" && !parse(v) {
			errs = append(errs, fmt.Errorf("%s=%q: want %s", name, v, want))
		}
	}
	str := func(dst *string) func(string) bool { return func(s string) bool { *dst = s; return true } }
	rate := func(dst *float64) func(string) bool {
		return func(s string) bool {
			f, err := strconv.ParseFloat(s, 64)
			*dst = f
			return err == nil && f >= 0 && f <= 1
		}
	}
	dur := func(dst *time.Duration) func(string) bool {
		return func(s string) bool {
			d, err := time.ParseDuration(s)
			*dst = d
			return err == nil && d >= 0
		}
	}
	fs := &cfg.faults
	env("PAYMENTGW_ADDR", "host:port", str(&cfg.addr))
	env("PAYMENTGW_ADMIN_ADDR", "host:port", str(&cfg.adminAddr))
	env("PAYMENTGW_ADMIN_TOKEN", "a token", str(&cfg.adminToken))
	env("PAYMENTGW_FAILURE_RATE", "a number between 0 and 1", rate(&fs.FailureRate))
	env("PAYMENTGW_FAILURE_REASON", "a reason", str(&fs.FailureReason))
	env("PAYMENTGW_LATENCY", "a duration such as 30ms", dur((*time.Duration)(&fs.Latency.Fixed)))
	env("PAYMENTGW_JITTER", "a duration such as 40ms", dur((*time.Duration)(&fs.Latency.Jitter)))
	env("PAYMENTGW_TIMEOUT_RATE", "a number between 0 and 1", rate(&fs.TimeoutRate))
	env("PAYMENTGW_STALL", "a duration such as 5s", dur((*time.Duration)(&fs.Stall)))
	env("PAYMENTGW_MAX_CHARGES", "a whole number of at least 1", func(s string) bool {
		n, err := strconv.Atoi(s)
		cfg.maxCharges = n
		return err == nil && n >= 1
	})
	env("PAYMENTGW_SHUTDOWN_TIMEOUT", "a positive duration such as 10s", func(s string) bool {
		d, err := time.ParseDuration(s)
		cfg.shutdownTimeout = d
		return err == nil && d > 0
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if problems := fs.validate(); len(problems) > 0 {
		var msgs []string
		for _, field := range slices.Sorted(maps.Keys(problems)) {
			msgs = append(msgs, field+": "+problems[field])
		}
		return cfg, fmt.Errorf("invalid fault settings: %s", strings.Join(msgs, "; "))
	}
	return cfg, nil
}

// run is the whole program: it serves until ctx is cancelled or SIGINT/SIGTERM arrives, then stops
// accepting, finishes in-flight requests (every started charge is recorded) and flushes telemetry.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}

	// Export errors go to stdout only (never back into OTLP), and seldom.
	stdoutOnly := slog.New(slog.NewJSONHandler(stdout, nil))
	otel.SetErrorHandler(&errorReporter{logger: stdoutOnly, every: 30 * time.Second})
	prov, shutdownOTel, err := setupOTelSDK(ctx, getenv)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		// After the HTTP servers have drained, so every finished request's telemetry leaves too.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
		defer cancel()
		if serr := shutdownOTel(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("telemetry shutdown: %w", serr))
		}
	}()
	logger := newLogger(stdout, prov.logger)
	tel, err := newTelemetry(prov, logger)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	f := newFaults(cfg.faults)
	if err := registerFaultGauges(prov.meter, f); err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	led := newLedger(cfg.maxCharges)

	var ready atomic.Bool
	servers := []*http.Server{newHTTPServer(newServer(tel, led, f, &ready), stdoutOnly)}
	addrs := []string{cfg.addr}
	if cfg.adminToken != "" {
		servers = append(servers, newHTTPServer(newAdminServer(tel, f, cfg.adminToken), stdoutOnly))
		addrs = append(addrs, cfg.adminAddr)
	}
	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		ln, err := net.Listen("tcp", addrs[i])
		if err != nil {
			for _, started := range servers[:i] {
				started.Close()
			}
			return err
		}
		addrs[i] = ln.Addr().String()
		go func() { serveErr <- srv.Serve(ln) }()
	}
	ready.Store(true)
	logger.Info("payment gateway listening", "addr", addrs[0], "admin_enabled", cfg.adminToken != "",
		"failure_rate", cfg.faults.FailureRate, "failure_reason", cfg.faults.FailureReason,
		"latency", time.Duration(cfg.faults.Latency.Fixed).String(), "jitter", time.Duration(cfg.faults.Latency.Jitter).String(),
		"timeout_rate", cfg.faults.TimeoutRate, "max_charges", cfg.maxCharges)
	if len(addrs) > 1 {
		logger.Info("fault-injection API listening", "admin_addr", addrs[1])
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	ready.Store(false)
	logger.Info("shutting down: finishing in-flight requests, then flushing telemetry")
	sctx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	defer cancelShutdown()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	logger.Info("payment gateway stopped")
	return errors.Join(errs...)
}

// newHTTPServer sets the timeouts every listener needs; the write timeout stays above the
// longest injected delay (latency and stall, 20 s each at most).
func newHTTPServer(h http.Handler, errorLog *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      50 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
	}
}
