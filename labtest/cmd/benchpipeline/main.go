// Command benchpipeline measures what the shop's telemetry costs, end to end: the shop's own CPU time per
// request (utime+stime from /proc/<pid>/stat, divided by the requests it served) while it exports to the
// real native lab (our Collector, Jaeger, Loki, Prometheus), with telemetry off, on, and each signal alone
// (the standard OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER = otlp|none).
//
//	./task bench:pipeline                       (or: cd labtest && go run ./cmd/benchpipeline)
//	./task bench:pipeline -- -reps 5 -rate 0    (saturate the shop instead of a fixed rate)
//
// On a machine with 2 or more CPUs the shop runs alone on CPU 0 with GOMAXPROCS=1, and everything else
// (this load generator, the Collector and the backends) on CPU 1, so that the shop's CPU time is its own.
// Variants run interleaved (rep 1: off, on, traces, ...; rep 2: the same, rotated), so slow drift of the
// machine's load spreads over all of them; the table shows min and median of the repetitions.
//
// -baseline-bin adds the variants of another build of the shop (e.g. the last release), run in the same
// interleaved loop, so that before and after come from one run on one machine state.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"minishop/labtest/nativelab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch err := run(ctx, os.Args, os.Stdout, os.Stderr); {
	case errors.Is(err, flag.ErrHelp): // -h: the usage was the point
	case err != nil:
		fmt.Fprintf(os.Stderr, "benchpipeline: %v\n", err)
		os.Exit(1)
	}
}

// adminToken is the shop's fault-injection (and profiling) API token in this benchmark.
const adminToken = "benchpipeline"

// variant is one way of running the shop: a binary and the environment that selects its signals.
type variant struct {
	name string
	bin  string   // "" is the lab's own build of the working tree
	env  []string // KEY=VALUE on top of the lab's shop environment
}

// signalEnv are the standard switches for each variant name.
var signalEnv = map[string][]string{
	"off":     {"OTEL_SDK_DISABLED=true"},
	"on":      nil,
	"traces":  {"OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"},
	"metrics": {"OTEL_TRACES_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"},
	"logs":    {"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none"},
}

type config struct {
	variants         []string
	baselineBin      string
	baselineVariants []string
	reps             int
	rate             float64
	conns            int
	warmup, duration time.Duration
	pin              bool
	profile          string
	labDir           string
	path, body       string
	shopEnv          []string
	repo             string
	capacityRates    []float64
	capacityDuration time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var variants, baseline, shopEnv, capacity string
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&variants, "variants", "off,on,traces,metrics,logs", "variants to measure: off, on, traces, metrics, logs")
	fs.StringVar(&c.baselineBin, "baseline-bin", "", "another build of the shop to measure in the same run (its variants are named 'before …')")
	fs.StringVar(&baseline, "baseline-variants", "off,on", "variants of -baseline-bin")
	fs.IntVar(&c.reps, "reps", 3, "repetitions of every variant, interleaved")
	fs.Float64Var(&c.rate, "rate", 2000, "requests per second; 0: as fast as -conns connections go (saturation)")
	fs.IntVar(&c.conns, "conns", 16, "concurrent keep-alive connections")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "load before each measurement (connections, caches, the first exports)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured load per run")
	fs.BoolVar(&c.pin, "pin", runtime.NumCPU() >= 2, "shop alone on CPU 0 with GOMAXPROCS=1, everything else on CPU 1 (taskset)")
	fs.StringVar(&c.profile, "profile", "", "after the table, run the first of -variants once more and write the shop's CPU profile of its measured window to this file")
	fs.StringVar(&c.labDir, "dir", "", "lab directory (default: a new temp dir, kept for its logs)")
	fs.StringVar(&c.path, "path", "/order", "the POST request's path")
	fs.StringVar(&c.body, "body", `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`, "the POST request's JSON body")
	fs.StringVar(&shopEnv, "shop-env", "", "extra KEY=VALUE,KEY=VALUE environment for every shop run (e.g. OTEL_BSP_MAX_QUEUE_SIZE=8192)")
	fs.StringVar(&c.repo, "repo", "", "MiniShop checkout whose configs the lab runs with (default: the one above the working directory), e.g. a copy with a changed collector/config.yaml")
	fs.StringVar(&capacity, "capacity", "", "instead of the CPU table: complete-delivery runs at these rates (req/s, comma-separated), whole lab unpinned")
	fs.DurationVar(&c.capacityDuration, "capacity-duration", 60*time.Second, "load per -capacity rate")
	if err := fs.Parse(args[1:]); err != nil {
		return c, err
	}
	for _, f := range splitList(capacity) {
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return c, fmt.Errorf("-capacity %q: want rates above 0", f)
		}
		c.capacityRates = append(c.capacityRates, r)
	}
	if len(c.capacityRates) > 0 {
		c.pin = false // the lab's capacity as compose runs it: everything shares every CPU
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	c.variants = splitList(variants)
	if c.baselineBin != "" {
		c.baselineVariants = splitList(baseline)
	}
	for _, v := range append(slices.Clone(c.variants), c.baselineVariants...) {
		if _, ok := signalEnv[v]; !ok {
			return c, fmt.Errorf("unknown variant %q: want off, on, traces, metrics or logs", v)
		}
	}
	c.shopEnv = splitList(shopEnv)
	if c.reps < 1 || c.conns < 1 || c.duration <= 0 || c.rate < 0 {
		return c, errors.New("-reps, -conns and -duration must be positive, -rate not negative")
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if cfg.baselineBin != "" {
		if cfg.baselineBin, err = filepath.Abs(cfg.baselineBin); err != nil {
			return err
		}
		if _, err := os.Stat(cfg.baselineBin); err != nil {
			return fmt.Errorf("-baseline-bin: %w", err)
		}
	}
	if cfg.pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			logf("taskset not found: running unpinned (the shop's CPU time is still its own, but shares cores)")
			cfg.pin = false
		}
	}

	shopEnv := []string{
		// Shelves refilled every 10 ms: every order finds stock, whatever the rate.
		"MINISHOP_RESTOCK_INTERVAL=10ms",
		"MINISHOP_ADMIN_TOKEN=" + adminToken,
	}
	if cfg.pin {
		shopEnv = append(shopEnv, "GOMAXPROCS=1")
	}
	shopEnv = append(shopEnv, cfg.shopEnv...)
	lab, err := nativelab.Start(ctx, nativelab.Options{RepoRoot: cfg.repo, Dir: cfg.labDir, ShopEnv: shopEnv, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the lab (logs stay in %s)", lab.Dir)
		if serr := lab.Stop(); serr != nil {
			logf("stop: %v", serr)
		}
	}()
	labBin := filepath.Join(lab.Dir, "bin", nativelab.Shop) // where the lab runs the shop from
	ownBin := labBin + ".working-tree"
	if err := copyFile(labBin, ownBin); err != nil {
		return err
	}
	if err := lab.StopShop(); err != nil {
		return err
	}
	if cfg.pin {
		if err := pinLab(lab); err != nil {
			return err
		}
		logf("pinned: the shop on CPU 0 (GOMAXPROCS=1); this program, the Collector and the backends on CPU 1")
	}

	b := &bench{cfg: cfg, lab: lab, labBin: labBin, logf: logf, client: newClient(cfg.conns)}
	if len(cfg.capacityRates) > 0 {
		return b.capacity(ctx, cfg.capacityRates, cfg.capacityDuration, stdout)
	}

	var variants []variant
	for _, v := range cfg.variants {
		variants = append(variants, variant{name: v, bin: ownBin, env: signalEnv[v]})
	}
	for _, v := range cfg.baselineVariants {
		variants = append(variants, variant{name: "before " + v, bin: cfg.baselineBin, env: signalEnv[v]})
	}

	loadStart := loadAvg()
	results := map[string][]result{}
	for rep := range cfg.reps {
		// Rotate the order each repetition: no variant always runs first, or right after another.
		for i := range variants {
			v := variants[(i+rep)%len(variants)]
			r, err := b.measure(ctx, v, false)
			if err != nil {
				return fmt.Errorf("%s (rep %d): %w", v.name, rep+1, err)
			}
			results[v.name] = append(results[v.name], r)
			logf("rep %d %-14s %7.0f req/s  %6.1f µs CPU/req  %4.2f spans/req  %4.2f logs/req  p50 %s  (%d errors)",
				rep+1, v.name, r.rps, r.cpuPerReq, r.spansPerReq, r.logsPerReq, r.p50, r.failed)
		}
	}
	loadEnd := loadAvg()

	fmt.Fprintf(stdout, "\nShop CPU per request, POST %s, %s, %d reps of %s (after %s warm-up), %s.\n",
		cfg.path, rateText(cfg), cfg.reps, cfg.duration, cfg.warmup, pinText(cfg.pin))
	fmt.Fprintf(stdout, "Load average (1/5/15 min): %s at start, %s at end; %d CPUs.\n\n", loadStart, loadEnd, runtime.NumCPU())
	printTable(stdout, variants, results)

	if cfg.profile != "" && len(cfg.variants) > 0 {
		v := variants[0]
		logf("profiling: one more run of %q with the shop's CPU profile over the measured window", v.name)
		if _, err := b.measure(ctx, v, true); err != nil {
			return fmt.Errorf("profile run: %w", err)
		}
		if err := copyFile(ownBin, cfg.profile+".bin"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nCPU profile of %q: %s   (go tool pprof -top %s.bin %s)\n", v.name, cfg.profile, cfg.profile, cfg.profile)
	}
	return nil
}

func rateText(cfg config) string {
	if cfg.rate == 0 {
		return fmt.Sprintf("as fast as %d connections go", cfg.conns)
	}
	return fmt.Sprintf("%.0f req/s on %d connections", cfg.rate, cfg.conns)
}

func pinText(pin bool) string {
	if pin {
		return "shop pinned to CPU 0 with GOMAXPROCS=1, load generator and lab on CPU 1"
	}
	return "unpinned"
}

// printTable writes one Markdown row per variant: medians, and the CPU minimum. Other programs on the
// machine only ever add to a run's CPU time, so min − min is the steadier estimate of what telemetry adds.
func printTable(w io.Writer, variants []variant, results map[string][]result) {
	med := func(rs []result, f func(result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	cpu := func(r result) float64 { return r.cpuPerReq }
	minCPU := func(rs []result) float64 {
		return slices.MinFunc(rs, func(a, b result) int { return cmp.Compare(a.cpuPerReq, b.cpuPerReq) }).cpuPerReq
	}
	offMedian, offMin := map[string]float64{}, map[string]float64{} // by binary
	for _, v := range variants {
		if strings.HasSuffix(v.name, "off") && len(results[v.name]) > 0 {
			offMedian[v.bin], offMin[v.bin] = med(results[v.name], cpu), minCPU(results[v.name])
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| variant\t req/s (median)\t CPU µs/req min\t median\t telemetry adds (min − off's min)\t (median − off's median)\t spans/req\t logs/req\t p50 latency\t errors\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, v := range variants {
		rs := results[v.name]
		if len(rs) == 0 {
			continue
		}
		addedMin, addedMedian := "—", "—"
		if off, ok := offMedian[v.bin]; ok && !strings.HasSuffix(v.name, "off") {
			addedMin = fmt.Sprintf("%+.1f µs", minCPU(rs)-offMin[v.bin])
			addedMedian = fmt.Sprintf("%+.1f µs", med(rs, cpu)-off)
		}
		var errs int64
		for _, r := range rs {
			errs += r.failed
		}
		fmt.Fprintf(tw, "| %s\t %.0f\t %.1f\t %.1f\t %s\t %s\t %.2f\t %.2f\t %s\t %d\t\n", v.name,
			med(rs, func(r result) float64 { return r.rps }), minCPU(rs), med(rs, cpu), addedMin, addedMedian,
			med(rs, func(r result) float64 { return r.spansPerReq }), med(rs, func(r result) float64 { return r.logsPerReq }),
			time.Duration(med(rs, func(r result) float64 { return float64(r.p50) })).Round(time.Microsecond), errs)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nspans/req and logs/req: what the Collector's receiver accepted (otelcol_receiver_accepted_*) per request"+
		" served, counted after the shop's shutdown flush; a shortfall is telemetry the shop lost.")
}

type bench struct {
	cfg    config
	lab    *nativelab.Lab
	labBin string
	logf   func(string, ...any)
	client *http.Client
}

type result struct {
	rps                     float64
	cpuPerReq               float64 // µs
	spansPerReq, logsPerReq float64
	p50                     time.Duration
	failed                  int64
}

// measure starts the shop as v, warms it up, measures its CPU time over cfg.duration of load, stops it
// (flushing its telemetry) and counts what the Collector accepted from it.
func (b *bench) measure(ctx context.Context, v variant, profile bool) (result, error) {
	var r result
	if err := copyFile(v.bin, b.labBin); err != nil {
		return r, err
	}
	before, err := collectorCounts(ctx, b.lab.CollectorMetricsURL)
	if err != nil {
		return r, err
	}
	if err := b.lab.StartShop(ctx, v.env...); err != nil {
		return r, err
	}
	pid := b.lab.PID(nativelab.Shop)
	if b.cfg.pin {
		if err := pin(pid, 0); err != nil {
			return r, err
		}
	}
	url := b.lab.ShopURL + b.cfg.path
	warm := generate(ctx, b.client, url, b.cfg.body, b.cfg.rate, b.cfg.conns, b.cfg.warmup)

	var profileDone chan error
	if profile {
		profileDone = make(chan error, 1)
		go func() { profileDone <- b.fetchProfile(ctx) }()
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return r, err
	}
	load := generate(ctx, b.client, url, b.cfg.body, b.cfg.rate, b.cfg.conns, b.cfg.duration)
	cpu1, err := cpuTime(pid)
	if err != nil {
		return r, err
	}
	if profileDone != nil {
		if err := <-profileDone; err != nil {
			return r, err
		}
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if err := b.lab.StopShop(); err != nil {
		return r, err
	}
	after, err := collectorCounts(ctx, b.lab.CollectorMetricsURL)
	if err != nil {
		return r, err
	}
	served := float64(warm.ok + warm.failed + load.ok + load.failed)
	if load.ok == 0 {
		return r, fmt.Errorf("no request succeeded (%d failed): see %s", load.failed, b.lab.LogFile(nativelab.Shop))
	}
	r = result{
		rps:         float64(load.ok+load.failed) / load.elapsed.Seconds(),
		cpuPerReq:   float64((cpu1 - cpu0).Microseconds()) / float64(load.ok+load.failed),
		spansPerReq: (after.spans - before.spans) / served,
		logsPerReq:  (after.logs - before.logs) / served,
		p50:         load.p50,
		failed:      warm.failed + load.failed,
	}
	return r, nil
}

// fetchProfile asks the shop's admin API for a CPU profile of the measured window.
func (b *bench) fetchProfile(ctx context.Context) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", b.lab.Ports.ShopAdmin, int(b.cfg.duration.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, msg)
	}
	f, err := os.Create(b.cfg.profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyFile copies an executable, replacing dst atomically (a running copy of dst keeps its old file).
func copyFile(src, dst string) error {
	if src == dst {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// pinLab moves this program and every lab program but the shop to CPU 1.
func pinLab(lab *nativelab.Lab) error {
	if err := pin(os.Getpid(), 1); err != nil {
		return err
	}
	for _, name := range []string{nativelab.Alertmanager, nativelab.SlackMock, nativelab.Jaeger, nativelab.Loki, nativelab.Prometheus, nativelab.Collector} {
		if pid := lab.PID(name); pid != 0 {
			if err := pin(pid, 1); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// pin sets the CPU affinity of every thread of pid (threads started later inherit it).
func pin(pid, cpu int) error {
	out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(cpu), strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset -a -p -c %d %d: %v: %s", cpu, pid, err, out)
	}
	return nil
}

// cpuTime is the user plus system CPU time of a process and all its threads so far (/proc/<pid>/stat).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ, 100 on every Linux architecture Go supports
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
