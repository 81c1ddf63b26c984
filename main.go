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
	// The OpenTelemetry SDK counts what it loses (full span and log queues, failed exports) in its own
	// metrics only when this is set; the shop wants them (see setupOTelSDK). =false turns them off.
	if os.Getenv("OTEL_GO_X_OBSERVABILITY") == "" {
		os.Setenv("OTEL_GO_X_OBSERVABILITY", "true")
	}
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "minishop: %s\n", err)
		os.Exit(1)
	}
}

// config is everything the shop can be told, by flag or by environment variable.
type config struct {
	addr string
	// adminAddr and adminToken: the fault-injection API; off without a token.
	adminAddr       string
	adminToken      string
	faults          faultSettings
	restockEvery    time.Duration
	maxOrders       int
	shutdownTimeout time.Duration
	// paymentGatewayURL: the payment gateway (paymentgw/); empty: the in-process simulator.
	paymentGatewayURL string
	paymentTimeout    time.Duration
	// paymentGatewayAdmin and its token: where the payment fault settings live with a gateway.
	paymentGatewayAdmin      string
	paymentGatewayAdminToken string
}

// parseConfig reads MINISHOP_* environment variables as defaults, then flags.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{
		addr:      ":8080",
		adminAddr: "127.0.0.1:9091",
		faults: faultSettings{
			PaymentFailureRate: 0.05,
			PaymentLatency:     latency{Fixed: duration(30 * time.Millisecond), Jitter: duration(40 * time.Millisecond)},
		},
		restockEvery:    15 * time.Second,
		maxOrders:       20000,
		shutdownTimeout: 10 * time.Second,
		paymentTimeout:  2 * time.Second,
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
	envRate := func(name string, dst *float64) {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a number between 0 and 1", name, v))
			}
			*dst = f
		}
	}
	fs := &cfg.faults
	envString("MINISHOP_ADDR", &cfg.addr)
	envString("MINISHOP_ADMIN_ADDR", &cfg.adminAddr)
	envString("MINISHOP_ADMIN_TOKEN", &cfg.adminToken)
	envRate("MINISHOP_PAYMENT_FAILURE_RATE", &fs.PaymentFailureRate)
	envString("MINISHOP_PAYMENT_FAILURE_REASON", &fs.PaymentFailureReason)
	envDuration("MINISHOP_PAYMENT_LATENCY", (*time.Duration)(&fs.PaymentLatency.Fixed))
	envDuration("MINISHOP_PAYMENT_JITTER", (*time.Duration)(&fs.PaymentLatency.Jitter))
	envDuration("MINISHOP_INVENTORY_DELAY", (*time.Duration)(&fs.InventoryDelay.Fixed))
	envRate("MINISHOP_OUT_OF_STOCK_RATE", &fs.OutOfStockRate)
	envDuration("MINISHOP_RESTOCK_INTERVAL", &cfg.restockEvery)
	envDuration("MINISHOP_SHUTDOWN_TIMEOUT", &cfg.shutdownTimeout)
	envString("MINISHOP_PAYMENT_GATEWAY_URL", &cfg.paymentGatewayURL)
	envDuration("MINISHOP_PAYMENT_TIMEOUT", &cfg.paymentTimeout)
	envString("MINISHOP_PAYMENT_GATEWAY_ADMIN_URL", &cfg.paymentGatewayAdmin)
	envString("MINISHOP_PAYMENT_GATEWAY_ADMIN_TOKEN", &cfg.paymentGatewayAdminToken)
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}

	flags := flag.NewFlagSet(args[0], flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&cfg.addr, "addr", cfg.addr, "listen address (MINISHOP_ADDR)")
	flags.StringVar(&cfg.adminAddr, "admin-addr", cfg.adminAddr, "listen address of the fault-injection API, enabled by MINISHOP_ADMIN_TOKEN (MINISHOP_ADMIN_ADDR)")
	flags.Float64Var(&fs.PaymentFailureRate, "payment-failure-rate", fs.PaymentFailureRate, "share of payments the simulated provider fails, 0 to 1 (MINISHOP_PAYMENT_FAILURE_RATE)")
	flags.StringVar(&fs.PaymentFailureReason, "payment-failure-reason", fs.PaymentFailureReason, "make every payment failure this reason: card_declined, insufficient_funds or gateway_timeout; empty: a mix (MINISHOP_PAYMENT_FAILURE_REASON)")
	flags.DurationVar((*time.Duration)(&fs.PaymentLatency.Fixed), "payment-latency", time.Duration(fs.PaymentLatency.Fixed), "fixed latency of the simulated payment provider (MINISHOP_PAYMENT_LATENCY)")
	flags.DurationVar((*time.Duration)(&fs.PaymentLatency.Jitter), "payment-jitter", time.Duration(fs.PaymentLatency.Jitter), "random extra latency of the provider, up to this much (MINISHOP_PAYMENT_JITTER)")
	flags.DurationVar((*time.Duration)(&fs.InventoryDelay.Fixed), "inventory-delay", time.Duration(fs.InventoryDelay.Fixed), "delay added to DeductInventory (MINISHOP_INVENTORY_DELAY)")
	flags.Float64Var(&fs.OutOfStockRate, "out-of-stock-rate", fs.OutOfStockRate, "share of orders refused as out of stock by fault injection, 0 to 1 (MINISHOP_OUT_OF_STOCK_RATE)")
	flags.DurationVar(&cfg.restockEvery, "restock-interval", cfg.restockEvery, "how often the shelves are refilled to capacity; 0 never (MINISHOP_RESTOCK_INTERVAL)")
	flags.StringVar(&cfg.paymentGatewayURL, "payment-gateway-url", cfg.paymentGatewayURL, "base URL of the payment gateway, e.g. http://localhost:8081; empty: the in-process simulator (MINISHOP_PAYMENT_GATEWAY_URL)")
	flags.DurationVar(&cfg.paymentTimeout, "payment-timeout", cfg.paymentTimeout, "how long one call to the payment gateway may take; a timed-out call is retried once (MINISHOP_PAYMENT_TIMEOUT)")
	flags.StringVar(&cfg.paymentGatewayAdmin, "payment-gateway-admin-url", cfg.paymentGatewayAdmin, "the gateway's fault-injection API, which then holds the payment settings (MINISHOP_PAYMENT_GATEWAY_ADMIN_URL; token: MINISHOP_PAYMENT_GATEWAY_ADMIN_TOKEN)")
	flags.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", cfg.shutdownTimeout, "how long to finish requests, then to flush telemetry, on SIGTERM (MINISHOP_SHUTDOWN_TIMEOUT)")
	if err := flags.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if problems := fs.validate(); len(problems) > 0 {
		return cfg, fmt.Errorf("invalid settings: %v", problems)
	}
	if cfg.restockEvery < 0 || cfg.shutdownTimeout <= 0 || cfg.paymentTimeout <= 0 {
		return cfg, errors.New("the restock interval must not be negative, and the shutdown and payment timeouts must be positive")
	}
	if cfg.paymentTimeout > maxPaymentTimeout {
		return cfg, fmt.Errorf("the payment timeout must be at most %s (two attempts and an injected delay within the write timeout)", maxPaymentTimeout)
	}
	if cfg.paymentGatewayAdmin != "" && cfg.paymentGatewayURL == "" {
		return cfg, errors.New("a payment gateway admin URL needs the payment gateway URL too")
	}
	return cfg, nil
}

// run is the whole program: it serves until ctx is cancelled or SIGINT/SIGTERM
// arrives, then stops accepting, finishes in-flight requests and flushes telemetry.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if len(args) > 1 && args[1] == "fault" {
		return runFault(ctx, args[2:], getenv, stdout, stderr)
	}

	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}

	// Export errors and dropped telemetry go to stdout only (never back into OTLP), and seldom.
	stdoutOnly := slog.New(slog.NewJSONHandler(stdout, nil))
	otel.SetErrorHandler(&errorReporter{logger: stdoutOnly, every: 30 * time.Second})
	prov, shutdownOTel, err := setupOTelSDK(ctx, getenv, stdoutOnly)
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
	logger := newLogger(stdout, prov.logger)
	tel, err := newTelemetry(prov, logger)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	var remote *gatewayFaults
	if cfg.paymentGatewayAdmin != "" {
		remote = newGatewayFaults(cfg.paymentGatewayAdmin, cfg.paymentGatewayAdminToken)
	}
	f := newFaults(cfg.faults, cfg.paymentGatewayURL != "", remote)
	if err := registerFaultGauges(prov.meter, f); err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	st := newStore(cfg.restockEvery, cfg.maxOrders, time.Now)
	var pay payer = simulatedPayments{f}
	if cfg.paymentGatewayURL != "" {
		if pay, err = newGatewayPayments(cfg.paymentGatewayURL, cfg.paymentTimeout, tel.propagator); err != nil {
			return err
		}
	}

	var ready atomic.Bool
	servers := []*http.Server{newHTTPServer(newServer(tel, st, f, pay, &ready), stdoutOnly)}
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
	if cfg.paymentGatewayURL != "" {
		logger.Info("minishop listening", "addr", addrs[0], "admin_enabled", cfg.adminToken != "",
			"payment_gateway", cfg.paymentGatewayURL, "payment_timeout", cfg.paymentTimeout.String())
	} else {
		logger.Info("minishop listening", "addr", addrs[0], "admin_enabled", cfg.adminToken != "",
			"payment_provider", "in-process simulator",
			"payment_failure_rate", cfg.faults.PaymentFailureRate,
			"payment_latency", time.Duration(cfg.faults.PaymentLatency.Fixed).String(),
			"payment_jitter", time.Duration(cfg.faults.PaymentLatency.Jitter).String())
	}
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
	logger.Info("minishop stopped")
	return errors.Join(errs...)
}

// maxPaymentTimeout keeps a payment (two attempts) plus the largest injected route delay within writeTimeout.
const maxPaymentTimeout = (writeTimeout - maxFaultDelay) / maxAttempts

// writeTimeout bounds how long a response may take.
const writeTimeout = 30 * time.Second

// newHTTPServer sets the timeouts every listener of the shop needs.
func newHTTPServer(h http.Handler, errorLog *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
	}
}
