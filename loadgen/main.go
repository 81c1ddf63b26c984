// Command loadgen keeps the MiniShop lab busy: simulated shoppers create orders, pay most of
// them, look some up, and now and then send a bad request, at a steady open-loop rate.
//
// It is instrumented as its own OpenTelemetry service (service.name=loadgen): every shopper's
// "user journey" is a span whose children are client spans, one per HTTP request, with the W3C
// trace context injected into the request, so Jaeger shows loadgen → minishop traces.
//
//	go run ./loadgen                             # 5 requests/s against http://localhost:8080 until Ctrl-C
//	go run ./loadgen -rate 50 -duration 30s      # a short burst
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
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
)

func main() {
	err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp): // -h: the usage was the point
	case err != nil:
		fmt.Fprintf(os.Stderr, "loadgen: %s\n", err)
		os.Exit(1)
	}
}

// config is everything the load generator can be told, by flag or by environment variable.
type config struct {
	target         *url.URL
	rate           float64       // requests per second, all kinds together
	concurrency    int           // requests in flight at most
	duration       time.Duration // 0: until stopped
	requests       int64         // stop after sending this many; 0: no limit
	mix            mix
	timeout        time.Duration // per request
	reportInterval time.Duration
	seed           uint64 // 0: a random seed
	healthAddr     string // "": no health endpoint
	logFormat      string // text or json
}

// parseConfig reads LOADGEN_* environment variables as defaults, then flags.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{
		rate:           5,
		concurrency:    16,
		mix:            defaultMix,
		timeout:        10 * time.Second,
		reportInterval: 5 * time.Second,
		logFormat:      "text",
	}
	target := "http://localhost:8080"
	var errs []error
	env := func(name string, parse func(string) error) {
		if v := getenv(name); v != "" {
			if err := parse(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	}
	float := func(dst *float64) func(string) error {
		return func(s string) (err error) { *dst, err = strconv.ParseFloat(s, 64); return err }
	}
	duration := func(dst *time.Duration) func(string) error {
		return func(s string) (err error) { *dst, err = time.ParseDuration(s); return err }
	}
	env("LOADGEN_TARGET", func(s string) error { target = s; return nil })
	env("LOADGEN_RATE", float(&cfg.rate))
	env("LOADGEN_CONCURRENCY", func(s string) (err error) { cfg.concurrency, err = strconv.Atoi(s); return err })
	env("LOADGEN_DURATION", duration(&cfg.duration))
	env("LOADGEN_REQUESTS", func(s string) (err error) { cfg.requests, err = strconv.ParseInt(s, 10, 64); return err })
	env("LOADGEN_BAD_RATE", float(&cfg.mix.bad))
	env("LOADGEN_PAY_RATE", float(&cfg.mix.pay))
	env("LOADGEN_LOOKUP_RATE", float(&cfg.mix.lookup))
	env("LOADGEN_TIMEOUT", duration(&cfg.timeout))
	env("LOADGEN_REPORT_INTERVAL", duration(&cfg.reportInterval))
	env("LOADGEN_SEED", func(s string) (err error) { cfg.seed, err = strconv.ParseUint(s, 10, 64); return err })
	env("LOADGEN_HEALTH_ADDR", func(s string) error { cfg.healthAddr = s; return nil })
	env("LOADGEN_LOG_FORMAT", func(s string) error { cfg.logFormat = s; return nil })
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}

	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&target, "target", target, "base URL of the shop (LOADGEN_TARGET)")
	fs.Float64Var(&cfg.rate, "rate", cfg.rate, "requests per second, of every kind together (LOADGEN_RATE)")
	fs.IntVar(&cfg.concurrency, "concurrency", cfg.concurrency, "requests in flight at most; when all are busy, due requests are dropped and counted (LOADGEN_CONCURRENCY)")
	fs.DurationVar(&cfg.duration, "duration", cfg.duration, "how long to run; 0 until Ctrl-C (LOADGEN_DURATION)")
	fs.Int64Var(&cfg.requests, "requests", cfg.requests, "stop after sending this many requests; 0 for no limit (LOADGEN_REQUESTS)")
	fs.Float64Var(&cfg.mix.bad, "bad-rate", cfg.mix.bad, "share of all requests that are deliberately bad: malformed JSON, unknown SKU, paying a paid order (LOADGEN_BAD_RATE)")
	fs.Float64Var(&cfg.mix.pay, "pay-rate", cfg.mix.pay, "share of created orders that are then paid (LOADGEN_PAY_RATE)")
	fs.Float64Var(&cfg.mix.lookup, "lookup-rate", cfg.mix.lookup, "share of created orders that are then looked up with GET /order/{id} (LOADGEN_LOOKUP_RATE)")
	fs.DurationVar(&cfg.timeout, "timeout", cfg.timeout, "timeout of each request (LOADGEN_TIMEOUT)")
	fs.DurationVar(&cfg.reportInterval, "report-interval", cfg.reportInterval, "how often to print progress (LOADGEN_REPORT_INTERVAL)")
	fs.Uint64Var(&cfg.seed, "seed", cfg.seed, "seed of the random mix, for a repeatable sequence; 0 picks one (LOADGEN_SEED)")
	fs.StringVar(&cfg.healthAddr, "health-addr", cfg.healthAddr, "serve GET /healthz on this address once the load runs, e.g. :8089; empty for none (LOADGEN_HEALTH_ADDR)")
	fs.StringVar(&cfg.logFormat, "log-format", cfg.logFormat, "text or json (LOADGEN_LOG_FORMAT)")
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("target %q: want a base URL such as http://localhost:8080", target)
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	cfg.target = u
	switch {
	case cfg.rate <= 0:
		return cfg, fmt.Errorf("rate %v: want more than 0 requests per second", cfg.rate)
	case cfg.concurrency < 1:
		return cfg, fmt.Errorf("concurrency %d: want at least 1", cfg.concurrency)
	case cfg.duration < 0 || cfg.requests < 0 || cfg.timeout <= 0 || cfg.reportInterval <= 0:
		return cfg, errors.New("duration and requests must not be negative; timeout and report interval must be positive")
	case cfg.logFormat != "text" && cfg.logFormat != "json":
		return cfg, fmt.Errorf("log format %q: want text or json", cfg.logFormat)
	}
	if err := cfg.mix.validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// readyTimeout bounds the first check of the shop, so a wrong target fails fast.
const readyTimeout = 3 * time.Second

// flushTimeout bounds sending the last spans on the way out (with no Collector, that many seconds are lost).
const flushTimeout = 3 * time.Second

// run is the whole program: it checks the shop is there, then sends load until ctx is
// cancelled, SIGINT/SIGTERM arrives, the duration is up, the requests are sent, or the shop
// stops answering.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C a second one kills at once (no waiting for the flush).
	go func() { <-ctx.Done(); stop() }()

	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewTextHandler(stdout, nil)
	if cfg.logFormat == "json" {
		handler = slog.NewJSONHandler(stdout, nil)
	}
	logger := slog.New(handler)

	tp, shutdownTracing, err := setupTracing(ctx, getenv)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		// The load ran, whatever happens to its own traces: a Collector that is not there
		// (the shop run alone, say) is worth a warning, not a failed run.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		defer cancel()
		if serr := shutdownTracing(sctx); serr != nil {
			logger.Warn("traces not flushed; is an OTLP Collector listening? (OTEL_SDK_DISABLED=true runs without tracing)",
				"error", serr.Error(), "endpoint", otlpEndpoint(getenv))
		}
	}()
	otel.SetErrorHandler(&errorReporter{logger: logger, every: 30 * time.Second})

	client := newHTTPClient(cfg)
	defer client.CloseIdleConnections()
	if err := checkReady(ctx, client, cfg.target); err != nil {
		return err
	}

	if cfg.healthAddr != "" {
		stopHealth, err := serveHealth(cfg.healthAddr, logger)
		if err != nil {
			return err
		}
		defer stopHealth()
	}

	g := newGenerator(cfg, client, tp, logger)
	return g.run(ctx)
}

func newHTTPClient(cfg config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			// No HTTP_PROXY: the shop is local or on the compose network, and a proxy would skew the latencies.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        cfg.concurrency,
			MaxIdleConnsPerHost: cfg.concurrency, // the default (2) would reconnect under any real concurrency
			IdleConnTimeout:     60 * time.Second,
		},
		Timeout: cfg.timeout,
		// The shop never redirects; if something does, show its status rather than follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkReady asks the shop's GET /readyz once, with a short deadline.
func checkReady(ctx context.Context, client *http.Client, target *url.URL) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	u := target.JoinPath("/readyz").String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("shop not reachable at %s: %w (is it running? `task up`, or `task run` for the shop alone)", target, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("shop at %s is not ready: GET /readyz answered %s", target, resp.Status)
	}
	return nil
}

// serveHealth answers GET /healthz with 200 while the load runs (compose's healthcheck asks it).
func serveHealth(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("health endpoint listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
