// Command slackmock is the "Slack channel" of the MiniShop lab.
//
// It accepts Slack incoming-webhook messages on POST /services/{team}/{bot}/{token} and answers
// like Slack does, logs every message as structured JSON, and shows the messages on a small
// auto-refreshing web page (GET /) and as JSON (GET /api/messages). Alertmanager's slack_configs
// post to it unless SLACK_WEBHOOK_URL points at a real Slack workspace.
//
// It uses only the standard library.
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
	"syscall"
	"time"
)

const (
	// defaultAddr is where the mock listens unless SLACKMOCK_ADDR or -addr say otherwise.
	defaultAddr = ":8070"
	// defaultMaxMessages bounds the messages kept in memory; older ones are dropped.
	defaultMaxMessages = 200
	// maxBodyBytes bounds a webhook request body (Slack's own limit is far smaller in practice).
	maxBodyBytes = 1 << 20
	// shutdownTimeout is how long in-flight requests get once SIGINT/SIGTERM arrives.
	shutdownTimeout = 5 * time.Second
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "slackmock: %v\n", err)
		os.Exit(1)
	}
}

// run parses the arguments, serves until ctx is cancelled or SIGINT/SIGTERM arrives, then shuts
// down gracefully. Logs go to stdout as JSON; usage errors go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	addr := getenv("SLACKMOCK_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&addr, "addr", addr, "listen address (env SLACKMOCK_ADDR)")
	maxMessages := fs.Int("max-messages", defaultMaxMessages, "number of messages kept in memory")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *maxMessages < 1 {
		return fmt.Errorf("-max-messages must be at least 1, got %d", *maxMessages)
	}

	logger := slog.New(slog.NewJSONHandler(stdout, nil))
	store := newMessageStore(*maxMessages)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           newServer(logger, store),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String(), "max_messages", *maxMessages)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
