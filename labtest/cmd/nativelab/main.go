// Command nativelab runs the MiniShop lab without Docker, on 127.0.0.1: Alertmanager, the Slack mock,
// Jaeger v2, Loki, Prometheus, the OpenTelemetry Collector and the shop, with the repo's own config files
// (Grafana is not run: it cannot be built here). It prints where everything
// listens, sends no traffic itself, and stops every program it started on Ctrl-C or SIGTERM.
//
//	cd labtest && go run ./cmd/nativelab            (or: ./task lab:native)
//
// Ports are compose's defaults (shop 8080, Prometheus 9090, Alertmanager 9093, Jaeger 16686, Collector
// 4317/4318, Slack mock 8070, Loki 3100), overridden by the same variables as compose's .env
// (MINISHOP_PORT, OTLP_GRPC_PORT, OTLP_HTTP_PORT, PROMETHEUS_PORT, ALERTMANAGER_PORT, LOKI_PORT,
// JAEGER_UI_PORT, SLACK_MOCK_PORT: from the environment, else from the repo's .env), or by flags.
// The programs come from scripts/native-tools.sh (./task tools).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"minishop/labtest/nativelab"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "nativelab: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	var opts nativelab.Options
	var shopEnv multiFlag
	var freePorts bool
	flag.StringVar(&opts.RepoRoot, "repo", "", "MiniShop checkout (default: found above the working directory)")
	flag.StringVar(&opts.ToolsBin, "tools", "", "directory with prometheus, alertmanager, jaeger, otelcol-minishop (default: $MINISHOP_TOOLS_DIR/bin or ~/.cache/minishop-lab/bin)")
	flag.StringVar(&opts.Dir, "dir", "", "lab directory for logs, rendered configs and data (default: a new temp dir, kept)")
	flag.Var(&shopEnv, "shop-env", "extra KEY=VALUE environment for the shop, repeatable (e.g. MINISHOP_INVENTORY_DELAY=300ms; payment settings live in the payment gateway: minishop fault)")
	flag.BoolVar(&freePorts, "free-ports", false, "listen on free ports instead of compose's defaults (prints them)")
	flag.StringVar(&opts.SlackWebhookURL, "slack-webhook-url", os.Getenv("SLACK_WEBHOOK_URL"), "where Alertmanager posts (default $SLACK_WEBHOOK_URL, else the lab's Slack mock)")
	portFlags := map[string]*int{}
	for _, c := range nativelab.ComposePorts {
		portFlags[c.Env] = flag.Int(strings.ToLower(strings.ReplaceAll(strings.TrimSuffix(c.Env, "_PORT"), "_", "-"))+"-port", 0,
			fmt.Sprintf("port (default $%s, else .env, else %d)", c.Env, c.Default))
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see -h)", flag.Args())
	}
	opts.ShopEnv = shopEnv
	opts.Logf = logf

	if opts.RepoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if opts.RepoRoot, err = nativelab.FindRepoRoot(wd); err != nil {
			return err
		}
	}
	if !freePorts {
		dotenv := readDotEnv(filepath.Join(opts.RepoRoot, ".env"))
		ports, err := nativelab.PortsFromEnv(func(k string) string {
			if v := os.Getenv(k); v != "" {
				return v
			}
			return dotenv[k]
		})
		if err != nil {
			return err
		}
		opts.Ports = ports
	}
	for _, c := range nativelab.ComposePorts {
		if v := *portFlags[c.Env]; v != 0 {
			*c.Field(&opts.Ports) = v
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logf("starting the MiniShop native lab (Ctrl-C stops it)")
	lab, err := nativelab.Start(ctx, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			logf("interrupted while starting; everything started so far was stopped")
		}
		return err
	}
	fmt.Printf("\nMiniShop native lab is up (everything on 127.0.0.1):\n%s\n", lab.Summary())
	fmt.Printf("Try:\n  curl -si -X POST %s/order -H 'Content-Type: application/json' -d '{\"items\":[{\"sku\":\"MUG-OTEL\",\"quantity\":1}]}'\n", lab.ShopURL)
	fmt.Printf("Ctrl-C stops every program the lab started.\n\n")

	// Report a program that dies on its own (a bad config edit, a port taken). Also stop if the parent
	// goes away: `go run` does not pass a SIGTERM on, and its child would otherwise keep the lab running.
	parent := os.Getppid()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reported := map[string]bool{}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			if os.Getppid() != parent {
				logf("parent process %d is gone", parent)
				break loop
			}
			for _, name := range []string{nativelab.Alertmanager, nativelab.SlackMock, nativelab.Jaeger, nativelab.Prometheus, nativelab.Collector, nativelab.Shop} {
				if lab.PID(name) == 0 && !reported[name] {
					reported[name] = true
					logf("%s is no longer running; last lines of %s:\n%s", name, lab.LogFile(name), lab.LogTail(name, 15))
				}
			}
		}
	}
	stop() // a second Ctrl-C now kills the lab process (and, through the parent-death signal, its programs)
	logf("stopping ...")
	err = lab.Stop()
	logf("stopped; logs and rendered configs are kept in %s", lab.Dir)
	return err
}

// readDotEnv reads KEY=VALUE lines of a compose .env file (no interpolation); a missing file is empty.
func readDotEnv(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		v = strings.Trim(v, `"'`)
		out[strings.TrimSpace(strings.TrimPrefix(k, "export "))] = v
	}
	return out
}
