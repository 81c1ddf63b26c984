// Package nativelab runs the MiniShop lab without Docker: the same programs as docker-compose.yml
// (Alertmanager, the Slack mock, Jaeger v2, Loki, Prometheus, our Collector, the payment gateway and the
// shop), natively on
// 127.0.0.1, with the repo's own config files. Grafana is not run (it cannot be built here). Loki is AGPL:
// it runs as a separate program (scripts/native-tools.sh builds it), never imported.
//
// Configs: the Collector and Jaeger read addresses from the environment (${env:NAME:-default}), so their
// files are used in place. Prometheus, Alertmanager and Loki cannot expand variables in those places, so they
// get rendered copies in the lab directory: the real file with only host:port values (or paths) replaced.
// See RenderPrometheus, RenderAlertmanager and RenderLoki.
//
// Every program's output goes to <Dir>/logs/<name>.log. Stop (or the owner of Start's process being
// killed: Linux's parent-death signal) ends every program the lab started, by PID, waiting for each exit.
package nativelab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Program names, also the names of their log files in <Dir>/logs.
const (
	Alertmanager = "alertmanager"
	SlackMock    = "slackmock"
	Jaeger       = "jaeger"
	Loki         = "loki"
	Prometheus   = "prometheus"
	Collector    = "otelcol-minishop"
	Gateway      = "paymentgw"
	Shop         = "minishop"
)

// startOrder is the order Start starts the programs in (Stop goes backwards). Alertmanager comes first:
// Prometheus drops notifications for an Alertmanager it has not discovered yet.
var startOrder = []string{Alertmanager, SlackMock, Jaeger, Loki, Prometheus, Collector, Gateway, Shop}

// SlackWebhookPath is the path of the webhook URL compose's default points at (the Slack mock's).
const SlackWebhookPath = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

// Options configure a lab. The zero value runs everything on free loopback ports in a new temp dir.
type Options struct {
	// RepoRoot is the MiniShop checkout (its root go.mod says `module minishop`). Default: found by walking
	// up from the working directory.
	RepoRoot string
	// ToolsBin holds prometheus, alertmanager, otelcol-minishop and jaeger (scripts/native-tools.sh).
	// Default: $MINISHOP_TOOLS_DIR/bin, else ~/.cache/minishop-lab/bin.
	ToolsBin string
	// Dir gets logs/, rendered configs, Prometheus' and Alertmanager's data and the built binaries.
	// Default: a new directory under the system temp dir (kept after Stop, so its logs can be read).
	Dir string
	// Ports to listen on; zero ones are chosen (see ComposePorts).
	Ports Ports
	// ComposePorts chooses compose's default host ports for the zero user-facing ports (shop 8080,
	// Prometheus 9090, ...) instead of free ones; for the interactive lab.
	ComposePorts bool
	// ShopEnv is extra KEY=VALUE environment for the shop, on top of what compose sets
	// (e.g. OTEL_METRIC_EXPORT_INTERVAL=1000; the payment settings live in the payment gateway: use Fault).
	ShopEnv []string
	// SlackWebhookURL is written to Alertmanager's webhook URL file. Default: the lab's Slack mock.
	SlackWebhookURL string
	// AlertFor, if set, makes Prometheus load a TEST copy of the rules with every alert's `for:` set to it
	// (expressions unchanged), so that tests see alerts fire within seconds.
	AlertFor time.Duration
	// ReadyTimeout bounds each program's start (default 60s; Jaeger and Prometheus take a few seconds).
	ReadyTimeout time.Duration
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Lab is a running native lab.
type Lab struct {
	RepoRoot string
	Dir      string
	Ports    Ports
	// Base URLs (http://127.0.0.1:port) of what a user or test talks to.
	ShopURL, PrometheusURL, AlertmanagerURL, JaegerURL, SlackMockURL, LokiURL string
	// GatewayURL is the payment gateway's API (compose: 8081); GatewayAdminURL its fault-injection API.
	GatewayURL, GatewayAdminURL string
	// CollectorOTLPGRPC is the Collector's OTLP gRPC address (host:port); the shop sends here.
	CollectorOTLPGRPC string
	// CollectorOTLPHTTPURL, CollectorHealthURL and CollectorMetricsURL are the Collector's other endpoints.
	CollectorOTLPHTTPURL, CollectorHealthURL, CollectorMetricsURL string

	// PrometheusConfig, RulesDir, AlertmanagerConfig and LokiConfig are the rendered copies the programs run with.
	PrometheusConfig, RulesDir, AlertmanagerConfig, LokiConfig string

	opts     Options
	toolsBin string
	binDir   string
	logDir   string

	mu      sync.Mutex
	procs   map[string]*process
	shopEnv []string // the overrides of the shop currently running
	stopped bool
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// DefaultToolsBin is where scripts/native-tools.sh installs the programs.
func DefaultToolsBin() string {
	if d := os.Getenv("MINISHOP_TOOLS_DIR"); d != "" {
		return filepath.Join(d, "bin")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "minishop-lab", "bin")
	}
	return filepath.Join(home, ".cache", "minishop-lab", "bin")
}

// FindRepoRoot walks up from dir to the directory whose go.mod declares `module minishop`.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == "minishop" {
					return d, nil
				}
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no MiniShop checkout (go.mod with `module minishop`) at or above %s", dir)
		}
	}
}

// Tools the lab needs from ToolsBin.
var Tools = []string{"alertmanager", "jaeger", "loki", "prometheus", "otelcol-minishop"}

// Start builds the shop and the Slack mock, then starts Alertmanager, the Slack mock, Jaeger, Loki, Prometheus,
// the Collector and the shop in that order, each ready (its health endpoint answers) before the next.
// On any failure it stops what it had started and returns the error with the failing program's log tail.
func Start(ctx context.Context, opts Options) (_ *Lab, err error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.RepoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if opts.RepoRoot, err = FindRepoRoot(wd); err != nil {
			return nil, err
		}
	}
	root, err := filepath.Abs(opts.RepoRoot)
	if err != nil {
		return nil, err
	}
	toolsBin := opts.ToolsBin
	if toolsBin == "" {
		toolsBin = DefaultToolsBin()
	}
	for _, t := range Tools {
		if _, err := exec.LookPath(filepath.Join(toolsBin, t)); err != nil {
			return nil, fmt.Errorf("%s not installed in %s: run scripts/native-tools.sh (or ./task tools)", t, toolsBin)
		}
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "minishop-nativelab-"); err != nil {
			return nil, err
		}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}

	ports := opts.Ports
	if opts.ComposePorts {
		def, err := PortsFromEnv(func(string) string { return "" })
		if err != nil {
			return nil, err
		}
		for _, c := range ComposePorts {
			if p := c.Field(&ports); *p == 0 {
				*p = *c.Field(&def)
			}
		}
		if ports.ShopAdmin == 0 {
			ports.ShopAdmin = 9091 // the shop's own default, so `go run . fault` finds it as it is
		}
	}
	fixed := ports // the ports given or defaulted, which must be free now
	if err := ports.fill(); err != nil {
		return nil, err
	}

	l := &Lab{
		RepoRoot:             root,
		Dir:                  dir,
		Ports:                ports,
		opts:                 opts,
		toolsBin:             toolsBin,
		binDir:               filepath.Join(dir, "bin"),
		logDir:               filepath.Join(dir, "logs"),
		procs:                map[string]*process{},
		ShopURL:              "http://" + addr(ports.Shop),
		PrometheusURL:        "http://" + addr(ports.Prometheus),
		AlertmanagerURL:      "http://" + addr(ports.Alertmanager),
		JaegerURL:            "http://" + addr(ports.JaegerUI),
		SlackMockURL:         "http://" + addr(ports.SlackMock),
		LokiURL:              "http://" + addr(ports.Loki),
		GatewayURL:           "http://" + addr(ports.Gateway),
		GatewayAdminURL:      "http://" + addr(ports.GatewayAdmin),
		CollectorOTLPGRPC:    addr(ports.CollectorGRPC),
		CollectorOTLPHTTPURL: "http://" + addr(ports.CollectorHTTP),
		CollectorHealthURL:   "http://" + addr(ports.CollectorHealth) + "/",
		CollectorMetricsURL:  "http://" + addr(ports.CollectorMetrics) + "/metrics",
		shopEnv:              opts.ShopEnv,
	}
	for _, d := range []string{l.binDir, l.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = l.Stop()
		}
	}()
	opts.logf("native lab in %s (logs in %s)", dir, l.logDir)

	for _, f := range fixed.all() {
		if *f.ptr != 0 {
			if err := waitPortFree(ctx, f.name, *f.ptr, 10*time.Second); err != nil {
				return nil, err
			}
		}
	}

	t0 := time.Now()
	opts.logf("building minishop, slackmock and paymentgw (go build) ...")
	if err := l.build(ctx); err != nil {
		return nil, err
	}
	opts.logf("built in %s", since(t0))

	webhook := opts.SlackWebhookURL
	if webhook == "" {
		webhook = l.SlackMockURL + SlackWebhookPath
	}
	if l.AlertmanagerConfig, err = RenderAlertmanager(root, dir, webhook); err != nil {
		return nil, err
	}
	if l.PrometheusConfig, err = RenderPrometheus(root, dir, map[string]string{
		"localhost:9090":      addr(ports.Prometheus),
		"otel-collector:8888": addr(ports.CollectorMetrics),
		"jaeger:8888":         addr(ports.JaegerMetrics),
		"alertmanager:9093":   addr(ports.Alertmanager),
		"loki:3100":           addr(ports.Loki),
	}, opts.AlertFor); err != nil {
		return nil, err
	}
	l.RulesDir = filepath.Join(filepath.Dir(l.PrometheusConfig), "rules")
	if l.LokiConfig, err = RenderLoki(root, dir, ports.Loki, ports.LokiGRPC); err != nil {
		return nil, err
	}

	for _, name := range startOrder {
		if err := l.startProgram(ctx, name); err != nil {
			return nil, err
		}
	}
	opts.logf("all started in %s", since(t0))
	return l, nil
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func waitPortFree(ctx context.Context, name string, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := checkFree(name, port)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *Lab) build(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", l.binDir+string(filepath.Separator), ".", "./slackmock", "./paymentgw")
	cmd.Dir = l.RepoRoot
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build . ./slackmock ./paymentgw in %s: %v\n%s", l.RepoRoot, err, out)
	}
	return nil
}

// baseEnv is the lab's own environment without variables that would change what the programs do
// (OTEL_*, MINISHOP_*, and the config files' address variables).
func baseEnv() []string {
	drop := []string{"OTEL_", "MINISHOP_", "PAYMENTGW_", "OTLP_", "COLLECTOR_", "JAEGER_", "LOKI_", "PROMETHEUS_", "SLACKMOCK_", "GOMEMLIMIT="}
	var out []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range drop {
			if strings.HasPrefix(kv, p) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// command returns the binary, arguments and environment of a program.
func (l *Lab) command(name string) (bin string, args, env []string, err error) {
	p := l.Ports
	env = baseEnv()
	switch name {
	case Alertmanager:
		bin = filepath.Join(l.toolsBin, "alertmanager")
		args = []string{
			"--config.file=" + l.AlertmanagerConfig,
			"--storage.path=" + filepath.Join(l.Dir, "alertmanager", "data"),
			"--web.listen-address=" + addr(p.Alertmanager),
			"--web.external-url=" + l.AlertmanagerURL, // the Slack message's link then opens this Alertmanager
			"--cluster.listen-address=",               // a single instance: no gossip port
		}
	case SlackMock:
		bin = filepath.Join(l.binDir, "slackmock")
		env = append(env, "SLACKMOCK_ADDR="+addr(p.SlackMock))
	case Jaeger:
		bin = filepath.Join(l.toolsBin, "jaeger")
		args = []string{"--config", filepath.Join(l.RepoRoot, "jaeger", "config.yaml")}
		env = append(env,
			"JAEGER_OTLP_GRPC_LISTEN="+addr(p.JaegerOTLPGRPC),
			"JAEGER_OTLP_HTTP_LISTEN="+addr(p.JaegerOTLPHTTP),
			"JAEGER_QUERY_HTTP_LISTEN="+addr(p.JaegerUI),
			"JAEGER_QUERY_GRPC_LISTEN="+addr(p.JaegerQueryGRPC),
			"JAEGER_HEALTH_LISTEN="+addr(p.JaegerHealth),
			"JAEGER_METRICS_HOST=127.0.0.1",
			"JAEGER_METRICS_PORT="+strconv.Itoa(p.JaegerMetrics),
			"JAEGER_PROMETHEUS_URL="+l.PrometheusURL, // the Monitor tab's metrics
			// Should jaeger_query's self-tracing be turned on (enable_tracing; jaeger/config.yaml turns it off),
			// it exports over OTLP to localhost:4317: in compose, Jaeger's own receiver. Natively, send it to
			// the same place, not to whatever listens on 127.0.0.1:4317 (the Collector, with compose ports).
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+addr(p.JaegerOTLPGRPC),
		)
	case Loki:
		bin = filepath.Join(l.toolsBin, "loki")
		args = []string{"-config.file=" + l.LokiConfig}
	case Prometheus:
		bin = filepath.Join(l.toolsBin, "prometheus")
		flags, ferr := PrometheusFlags(l.RepoRoot)
		if ferr != nil {
			return "", nil, nil, ferr
		}
		args = append([]string{
			"--config.file=" + l.PrometheusConfig,
			"--web.listen-address=" + addr(p.Prometheus),
			"--storage.tsdb.path=" + filepath.Join(l.Dir, "prometheus", "data"),
		}, flags...)
	case Collector:
		bin = filepath.Join(l.toolsBin, "otelcol-minishop")
		args = []string{"--config", filepath.Join(l.RepoRoot, "collector", "config.yaml")}
		env = append(env,
			"OTLP_GRPC_LISTEN="+addr(p.CollectorGRPC),
			"OTLP_HTTP_LISTEN="+addr(p.CollectorHTTP),
			"COLLECTOR_HEALTH_LISTEN="+addr(p.CollectorHealth),
			"COLLECTOR_METRICS_HOST=127.0.0.1",
			"COLLECTOR_METRICS_PORT="+strconv.Itoa(p.CollectorMetrics),
			"JAEGER_OTLP_ENDPOINT="+addr(p.JaegerOTLPGRPC),
			"LOKI_OTLP_ENDPOINT="+l.LokiURL+"/otlp",
			"PROMETHEUS_REMOTE_WRITE_ENDPOINT="+l.PrometheusURL+"/api/v1/write",
		)
	case Gateway:
		bin = filepath.Join(l.binDir, "paymentgw")
		// What docker-compose.yml sets for the payment-gateway service, with loopback addresses.
		env = append(append(env, l.otelEnv("payment-gateway")...),
			"PAYMENTGW_ADDR="+addr(p.Gateway),
			"PAYMENTGW_ADMIN_ADDR="+addr(p.GatewayAdmin),
			"PAYMENTGW_ADMIN_TOKEN="+gatewayAdminToken,
			"GOMEMLIMIT=40MiB",
		)
	case Shop:
		bin = filepath.Join(l.binDir, "minishop")
		// What docker-compose.yml sets for the minishop service, with loopback addresses.
		env = append(append(env, l.otelEnv("minishop")...),
			"MINISHOP_ADDR="+addr(p.Shop),
			"MINISHOP_ADMIN_ADDR="+addr(p.ShopAdmin),
			"MINISHOP_ADMIN_TOKEN="+adminToken,
			"MINISHOP_PAYMENT_GATEWAY_URL="+l.GatewayURL,
			"MINISHOP_PAYMENT_GATEWAY_ADMIN_URL="+l.GatewayAdminURL,
			"MINISHOP_PAYMENT_GATEWAY_ADMIN_TOKEN="+gatewayAdminToken,
			"GOMEMLIMIT=40MiB",
		)
		env = append(env, l.shopEnv...) // later entries win
	default:
		return "", nil, nil, fmt.Errorf("unknown program %q", name)
	}
	return bin, args, env, nil
}

// otelEnv is what docker-compose.yml sets for the OpenTelemetry SDK of each of our services: the
// Collector, 5 s metric exports, span and log batches every 500 ms.
func (l *Lab) otelEnv(service string) []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + l.CollectorOTLPGRPC,
		"OTEL_METRIC_EXPORT_INTERVAL=5000",
		"OTEL_SERVICE_NAME=" + service,
		"OTEL_BSP_SCHEDULE_DELAY=500",
		"OTEL_BLRP_SCHEDULE_DELAY=500",
	}
}

// ready waits until the program answers its health endpoint.
func (l *Lab) ready(ctx context.Context, name string, p *process) error {
	timeout := l.opts.ReadyTimeout
	get := func(url string) func(context.Context) error {
		return func(ctx context.Context) error { _, err := httpOK(ctx, url); return err }
	}
	switch name {
	case Alertmanager:
		return waitReady(ctx, p, "alertmanager GET /-/ready", timeout, get(l.AlertmanagerURL+"/-/ready"))
	case SlackMock:
		return waitReady(ctx, p, "slack mock GET /healthz", timeout, get(l.SlackMockURL+"/healthz"))
	case Jaeger:
		if err := waitReady(ctx, p, "jaeger GET /status", timeout, get("http://"+addr(l.Ports.JaegerHealth)+"/status")); err != nil {
			return err
		}
		return waitReady(ctx, p, "jaeger GET /api/services", timeout, get(l.JaegerURL+"/api/services"))
	case Prometheus:
		if err := waitReady(ctx, p, "prometheus GET /-/ready", timeout, get(l.PrometheusURL+"/-/ready")); err != nil {
			return err
		}
		// Prometheus sends alerts only to Alertmanagers it has discovered; wait for that too.
		return waitReady(ctx, p, "prometheus discovering alertmanager", timeout, func(ctx context.Context) error {
			b, err := httpOK(ctx, l.PrometheusURL+"/api/v1/alertmanagers")
			if err != nil {
				return err
			}
			var r struct {
				Data struct {
					Active []struct {
						URL string `json:"url"`
					} `json:"activeAlertmanagers"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			for _, a := range r.Data.Active {
				if strings.Contains(a.URL, addr(l.Ports.Alertmanager)) {
					return nil
				}
			}
			return fmt.Errorf("alertmanager %s not among active alertmanagers %s", addr(l.Ports.Alertmanager), b)
		})
	case Loki:
		// /ready turns 200 once the ingester has joined its ring (about 15 s after start).
		return waitReady(ctx, p, "loki GET /ready", timeout, get(l.LokiURL+"/ready"))
	case Collector:
		return waitReady(ctx, p, "collector health_check", timeout, get(l.CollectorHealthURL))
	case Gateway:
		return waitReady(ctx, p, "paymentgw GET /readyz", timeout, get(l.GatewayURL+"/readyz"))
	case Shop:
		return waitReady(ctx, p, "minishop GET /readyz", timeout, get(l.ShopURL+"/readyz"))
	}
	return nil
}

// startProgram starts one program and waits until it is ready.
func (l *Lab) startProgram(ctx context.Context, name string) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return errors.New("lab stopped")
	}
	if p := l.procs[name]; p != nil {
		if done, _ := p.exited(); !done {
			l.mu.Unlock()
			return fmt.Errorf("%s is already running (pid %d)", name, p.PID())
		}
	}
	bin, args, env, err := l.command(name)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	t0 := time.Now()
	p, err := startProcess(name, bin, args, env, l.Dir, filepath.Join(l.logDir, name+".log"))
	if err != nil {
		l.mu.Unlock()
		return err
	}
	l.procs[name] = p
	l.mu.Unlock()
	if err := l.ready(ctx, name, p); err != nil {
		return err
	}
	l.opts.logf("%-16s ready in %-8s pid %-7d log %s", name, since(t0), p.PID(), p.logPath)
	return nil
}

// stopProgram stops one program (SIGTERM, then SIGKILL after grace) and waits for its exit.
func (l *Lab) stopProgram(name string, grace time.Duration) error {
	l.mu.Lock()
	p := l.procs[name]
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	t0 := time.Now()
	err := p.stop(grace)
	l.opts.logf("%-16s stopped in %s", name, since(t0))
	return err
}

// Stop stops every program the lab started, in reverse start order (the shop first, so that its last
// telemetry still reaches the Collector), waiting for each to exit.
func (l *Lab) Stop() error {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	var errs []error
	for i := len(startOrder) - 1; i >= 0; i-- {
		if err := l.stopProgram(startOrder[i], 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PID returns the process id of a running program, or 0.
func (l *Lab) PID(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.procs[name]; p != nil {
		if done, _ := p.exited(); !done {
			return p.PID()
		}
	}
	return 0
}

// StartedAt is when a program was last started (zero if never).
func (l *Lab) StartedAt(name string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.procs[name]; p != nil {
		return p.started
	}
	return time.Time{}
}

// LogFile is where a program's output goes.
func (l *Lab) LogFile(name string) string { return filepath.Join(l.logDir, name+".log") }

// LogTail returns the last n lines of a program's log.
func (l *Lab) LogTail(name string, n int) string { return fileTail(l.LogFile(name), n) }

// StopShop stops the shop (SIGTERM: it finishes requests and flushes telemetry) and waits for its exit.
func (l *Lab) StopShop() error { return l.stopProgram(Shop, 30*time.Second) }

// StartShop starts the shop with compose's environment plus env (KEY=VALUE, replacing Options.ShopEnv),
// and waits until it is ready.
func (l *Lab) StartShop(ctx context.Context, env ...string) error {
	l.mu.Lock()
	l.shopEnv = append(append([]string(nil), l.opts.ShopEnv...), env...)
	l.mu.Unlock()
	return l.startProgram(ctx, Shop)
}

// RestartShop stops the shop and starts it again with env on top of Options.ShopEnv (e.g. a new
// MINISHOP_PAYMENT_FAILURE_RATE: the shop has no runtime switch for it).
func (l *Lab) RestartShop(ctx context.Context, env ...string) error {
	if err := l.StopShop(); err != nil {
		return err
	}
	return l.StartShop(ctx, env...)
}

// SignalShop sends sig to the shop and waits up to timeout for it to exit; it returns the exit error
// (nil for exit status 0).
func (l *Lab) SignalShop(sig syscall.Signal, timeout time.Duration) (exitErr error, err error) {
	l.mu.Lock()
	p := l.procs[Shop]
	l.mu.Unlock()
	if p == nil {
		return nil, errors.New("the shop is not running")
	}
	if err := p.signal(sig); err != nil {
		return nil, err
	}
	if !p.wait(timeout) {
		return nil, fmt.Errorf("the shop (pid %d) did not exit within %s of %v", p.PID(), timeout, sig)
	}
	_, exitErr = p.exited()
	return exitErr, nil
}

// adminToken is the native shop's fault-injection token (compose's default, MINISHOP_ADMIN_TOKEN).
const adminToken = "minishop-lab"

// gatewayAdminToken is the payment gateway's (compose's default, PAYMENTGW_ADMIN_TOKEN).
const gatewayAdminToken = "payment-gateway-lab"

// Fault runs the shop's own fault-injection client against the running shop, as the scenarios do in
// compose (`minishop fault -payment-failure-rate 1`, `minishop fault -reset`), and returns what it printed.
func (l *Lab) Fault(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(l.binDir, "minishop"), append([]string{"fault"}, args...)...)
	cmd.Env = append(baseEnv(), "MINISHOP_ADMIN_ADDR="+addr(l.Ports.ShopAdmin), "MINISHOP_ADMIN_TOKEN="+adminToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("minishop fault %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// StopCollector stops the Collector (SIGTERM) and waits for its exit.
func (l *Lab) StopCollector() error { return l.stopProgram(Collector, 20*time.Second) }

// StartCollector starts the Collector again and waits until it is healthy.
func (l *Lab) StartCollector(ctx context.Context) error { return l.startProgram(ctx, Collector) }

// Summary describes where everything listens, for people.
func (l *Lab) Summary() string {
	var b strings.Builder
	row := func(what, where string) { fmt.Fprintf(&b, "  %-34s %s\n", what, where) }
	row("MiniShop API", l.ShopURL+"  (POST /order, POST /payment/pay, GET /order/{id})")
	row("Payment gateway API", l.GatewayURL+"  (POST /v1/charges with Idempotency-Key, GET /v1/charges?reference=)")
	row("Prometheus", l.PrometheusURL)
	row("Alertmanager", l.AlertmanagerURL)
	row("Jaeger UI/API", l.JaegerURL+"  (API: /api/traces/{trace id})")
	row("Slack mock", l.SlackMockURL+"  (JSON: /api/messages)")
	row("Loki", l.LokiURL+"  (LogQL: /loki/api/v1/query_range)")
	row("Collector OTLP gRPC / HTTP", l.CollectorOTLPGRPC+" / "+l.CollectorOTLPHTTPURL)
	row("Collector health / metrics", l.CollectorHealthURL+" / "+l.CollectorMetricsURL)
	row("Jaeger metrics", "http://"+addr(l.Ports.JaegerMetrics)+"/metrics")
	row("rendered prometheus.yml", l.PrometheusConfig)
	row("rendered alertmanager.yml", l.AlertmanagerConfig)
	row("rendered loki.yaml", l.LokiConfig)
	row("shop fault injection", "MINISHOP_ADMIN_ADDR="+addr(l.Ports.ShopAdmin)+" MINISHOP_ADMIN_TOKEN="+adminToken+" go run . fault")
	row("program logs", l.logDir+"/<program>.log")
	return b.String()
}
