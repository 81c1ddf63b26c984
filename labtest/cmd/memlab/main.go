// Command memlab measures the memory of the running compose lab in its real cgroups, as a user's lab
// spends it: while a loop runs every dashboard query every 5 s (as Grafana does with the dashboards open),
// first with the bundled load generator at its default rate, then at 100 requests/s from the host
// (`task load`), until Jaeger's memory store is full (its oldest trace evicted). It prints, per container,
// the peak working set (usage minus inactive page cache, sampled every second: what `docker stats` shows
// and what the kernel cannot simply drop), the peak RSS, the kernel's own high-water mark including page
// cache, and the peak as a share of mem_limit. docker-compose.yml's limits are sized so the peak working
// set stays at or under 70%.
//
//	./task up && ./task mem        (about 20 minutes; -idle and -load shorten it)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"minishop/labtest"
	"minishop/labtest/nativelab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memlab:", err)
		os.Exit(1)
	}
}

// container is one compose container and its memory cgroup.
type container struct {
	id, service string
	cgroup      string // cgroup v1 memory directory
	limit       int64
	gomemlimit  string
}

// peak is the highest memory seen for a container in one phase.
type peak struct{ workingSet, rss int64 }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := flag.NewFlagSet("memlab", flag.ContinueOnError)
	idle := flags.Duration("idle", 10*time.Minute, "how long to measure with the bundled load generator alone")
	load := flags.Duration("load", 5*time.Minute, "how long to send -rate requests/s from the host")
	rate := flags.Int("rate", 100, "requests/s of the host load phase")
	fillMax := flags.Duration("fill-max", 10*time.Minute, "how much longer the load may run until Jaeger's store is full")
	if err := flags.Parse(args); err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := nativelab.FindRepoRoot(wd)
	if err != nil {
		return err
	}
	ports, err := nativelab.PortsFromEnv(getenv)
	if err != nil {
		return err
	}
	base := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }
	shop, prom, loki, jaeger := base(ports.Shop), base(ports.Prometheus), base(ports.Loki), base(ports.JaegerUI)

	cs, err := containers(ctx, root)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "memlab: %d running containers of the compose project\n", len(cs))

	// Every dashboard query every 5 s, as Grafana would with the dashboards open (range queries over 15 min).
	promQs, err := labtest.DashboardPromQL(root)
	if err != nil {
		return err
	}
	lokiQs, err := labtest.DashboardLogQL(root)
	if err != nil {
		return err
	}
	qctx, qstop := context.WithCancel(ctx)
	defer qstop()
	var queries, queryErrs int
	var qmu sync.Mutex
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			n, errs := dashboardQueries(qctx, prom, loki, jaeger, promQs, lokiQs)
			qmu.Lock()
			queries, queryErrs = queries+n, queryErrs+errs
			qmu.Unlock()
			select {
			case <-qctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	phases := []string{}
	peaks := map[string]map[string]peak{} // phase -> service -> peak
	var mu sync.Mutex
	phase := ""
	sctx, sstop := context.WithCancel(ctx)
	defer sstop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sample every container every second
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			mu.Lock()
			ph := phase
			for _, c := range cs {
				ws, rss, err := usage(c.cgroup)
				if err != nil {
					continue
				}
				p := peaks[ph][c.service]
				p.workingSet, p.rss = max(p.workingSet, ws), max(p.rss, rss)
				peaks[ph][c.service] = p
			}
			mu.Unlock()
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	begin := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		phase = name
		phases = append(phases, name)
		peaks[name] = map[string]peak{}
		fmt.Fprintf(stdout, "memlab: %s phase: %s\n", time.Now().Format("15:04:05"), name)
	}
	wait := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d): // the phase's length: measuring, not synchronising
			return nil
		}
	}

	begin(fmt.Sprintf("loadgen default, %s", *idle))
	if err := wait(*idle); err != nil {
		return err
	}

	// A trace from before the load: once Jaeger no longer has it, its store is full (max_traces reached).
	first, err := orderTrace(ctx, shop)
	if err != nil {
		return err
	}
	begin(fmt.Sprintf("+ %d req/s from the host, %s", *rate, *load))
	if err := hostLoad(ctx, root, *rate, *load, stdout); err != nil {
		return err
	}
	full, err := evicted(ctx, jaeger, first)
	if err != nil {
		return err
	}
	if !full {
		begin(fmt.Sprintf("+ %d req/s until Jaeger's store is full", *rate))
	}
	for deadline := time.Now().Add(*fillMax); !full && time.Now().Before(deadline); {
		if full, err = evicted(ctx, jaeger, first); err != nil {
			return err
		}
		if !full {
			if err := hostLoad(ctx, root, *rate, time.Minute, stdout); err != nil {
				return err
			}
		}
	}
	sstop()
	wg.Wait()
	qstop()

	// The kernel's high-water mark (page cache included) and whether anything was killed or restarted.
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(stdout, "\nmemlab: %d dashboard queries run (%d failed); Jaeger store full (trace %s evicted): %v\n\n", queries, queryErrs, first, full)
	fmt.Fprint(tw, "| service\t| mem_limit\t| GOMEMLIMIT")
	for _, ph := range phases {
		fmt.Fprintf(tw, "\t| peak working set: %s", ph)
	}
	fmt.Fprint(tw, "\t| peak RSS\t| kernel max_usage (incl. cache)\t| peak / limit\t|\n")
	for _, c := range cs {
		var top, rss int64
		fmt.Fprintf(tw, "| %s\t| %s\t| %s", c.service, mib(c.limit), c.gomemlimit)
		for _, ph := range phases {
			p := peaks[ph][c.service]
			top, rss = max(top, p.workingSet), max(rss, p.rss)
			fmt.Fprintf(tw, "\t| %s", mib(p.workingSet))
		}
		maxUsage, _ := readInt(filepath.Join(c.cgroup, "memory.max_usage_in_bytes"))
		share := "-"
		if c.limit > 0 && c.limit < 1<<50 {
			share = fmt.Sprintf("%.0f%%", 100*float64(top)/float64(c.limit))
		}
		fmt.Fprintf(tw, "\t| %s\t| %s\t| %s\t|\n", mib(rss), mib(maxUsage), share)
	}
	tw.Flush()
	return checkHealthy(ctx, cs, stdout)
}

func mib(b int64) string {
	if b <= 0 || b >= 1<<50 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// containers lists the compose project's running containers with their memory cgroups and limits.
func containers(ctx context.Context, root string) ([]container, error) {
	out, err := command(ctx, root, "docker", "compose", "ps", "-q")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil, errors.New("no containers: start the lab first (./task up)")
	}
	out, err = command(ctx, root, append([]string{"docker", "inspect"}, ids...)...)
	if err != nil {
		return nil, err
	}
	var st []struct {
		ID     string
		Config struct {
			Env    []string
			Labels map[string]string
		}
		HostConfig struct{ Memory int64 }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	var cs []container
	for _, s := range st {
		c := container{id: s.ID, service: s.Config.Labels["com.docker.compose.service"], limit: s.HostConfig.Memory, gomemlimit: "-"}
		for _, e := range s.Config.Env {
			if v, ok := strings.CutPrefix(e, "GOMEMLIMIT="); ok {
				c.gomemlimit = v
			}
		}
		for _, dir := range []string{"/sys/fs/cgroup/memory/docker/" + s.ID, "/sys/fs/cgroup/memory/system.slice/docker-" + s.ID + ".scope"} {
			if _, err := os.Stat(filepath.Join(dir, "memory.stat")); err == nil {
				c.cgroup = dir
			}
		}
		if c.cgroup == "" {
			return nil, fmt.Errorf("no cgroup v1 memory directory for container %s (%s)", c.service, s.ID)
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].service < cs[j].service })
	return cs, nil
}

// usage reads a cgroup v1 memory directory: working set (usage minus inactive file cache) and RSS.
func usage(dir string) (workingSet, rss int64, err error) {
	u, err := readInt(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return 0, 0, err
	}
	f, err := os.Open(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var inactive int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "total_inactive_file":
			inactive = n
		case "total_rss":
			rss = n
		}
	}
	return max(u-inactive, 0), rss, sc.Err()
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

var client = &http.Client{Timeout: 30 * time.Second}

// dashboardQueries runs every dashboard query once, as Grafana does on a refresh, plus a Jaeger search.
func dashboardQueries(ctx context.Context, prom, loki, jaeger string, promQs, lokiQs []labtest.DashboardQuery) (n, errs int) {
	now := time.Now()
	get := func(u string) {
		n++
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			errs++
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			errs++
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			errs++
		}
	}
	rng := url.Values{"start": {strconv.FormatInt(now.Add(-15*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"15"}}
	for _, q := range promQs {
		v := url.Values{"query": {q.Expr}}
		for k, x := range rng {
			v[k] = x
		}
		get(prom + "/api/v1/query_range?" + v.Encode())
	}
	for _, q := range lokiQs {
		v := url.Values{"query": {q.Expr}, "limit": {"1000"}, "start": {strconv.FormatInt(now.Add(-15*time.Minute).UnixNano(), 10)},
			"end": {strconv.FormatInt(now.UnixNano(), 10)}}
		get(loki + "/loki/api/v1/query_range?" + v.Encode())
	}
	get(jaeger + "/api/traces?service=minishop&limit=20&lookback=1h")
	return n, errs
}

// orderTrace creates one order and returns its trace id.
func orderTrace(ctx context.Context, shop string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, shop+"/order", strings.NewReader(`{"items":[{"sku":"MUG-OTEL","quantity":1}]}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Trace-Id")
	if id == "" {
		return "", fmt.Errorf("POST /order: %s, no X-Trace-Id", resp.Status)
	}
	return id, nil
}

// evicted tells whether Jaeger no longer has the trace (it did once: the caller created it).
func evicted(ctx context.Context, jaeger, traceID string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jaeger+"/api/traces/"+traceID, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNotFound, nil
}

// hostLoad runs `task load` (the loadgen from the host) at rate for d.
func hostLoad(ctx context.Context, root string, rate int, d time.Duration, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, "./task", "load", "--", "-rate", strconv.Itoa(rate), "-duration", d.String())
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	fmt.Fprintf(stdout, "memlab: task load -- -rate %d -duration %s: %s\n", rate, d, lines[len(lines)-1])
	if err != nil {
		return fmt.Errorf("task load: %v\n%s", err, out)
	}
	return nil
}

// checkHealthy fails if any container was OOM-killed or restarted.
func checkHealthy(ctx context.Context, cs []container, stdout io.Writer) error {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.id)
	}
	out, err := command(ctx, "", append([]string{"docker", "inspect", "--format", "{{.Name}} {{.State.OOMKilled}} {{.RestartCount}}"}, ids...)...)
	if err != nil {
		return err
	}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && (f[1] != "false" || f[2] != "0") {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("containers OOM-killed or restarted (name, OOMKilled, RestartCount): %v", bad)
	}
	fmt.Fprintln(stdout, "\nmemlab: no container was OOM-killed or restarted")
	return nil
}

func command(ctx context.Context, dir string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("%s: %v", strings.Join(argv, " "), err)
	}
	return string(out), nil
}
