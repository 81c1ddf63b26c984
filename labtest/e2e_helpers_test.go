package labtest

// Helpers of the end-to-end tests (e2e_*_test.go): starting a native lab, talking to the shop like a
// client, and reading Prometheus, Jaeger, the Slack mock and the log sink. Every name here starts with
// e2e, to stay clear of the other tests of this package.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"minishop/labtest/nativelab"
)

// e2eShopEnv is what every native e2e shop runs with on top of compose's environment: metrics exported
// every second instead of 5 (a test waits less; the path is the same).
var e2eShopEnv = []string{"OTEL_METRIC_EXPORT_INTERVAL=1000"}

// e2eLab is the lab an end-to-end test talks to, through the URLs a user would open: the native lab
// (labtest/nativelab, every program on 127.0.0.1) or the compose lab (docker-compose.yml, through its
// published host ports). The same tests run against both; those that restart or kill a program
// (native != nil) run on the native lab only.
type e2eLab struct {
	Name                                                     string
	ShopURL, PrometheusURL, JaegerURL, LokiURL, SlackMockURL string
	AlertmanagerURL                                          string
	GatewayURL                                               string        // the payment gateway's API
	CollectorOTLP                                            string        // the Collector's OTLP gRPC host:port
	metricInterval                                           time.Duration // how often the shop exports metrics

	native  *nativelab.Lab // the native lab, or nil
	compose *e2eCompose    // the compose lab, or nil
}

// shopStartedAt is when the running shop process started: samples older than that are an earlier shop's.
func (l *e2eLab) shopStartedAt(t testing.TB) time.Time {
	if l.native != nil {
		return l.native.StartedAt(nativelab.Shop)
	}
	return l.compose.startedAt(t, "minishop")
}

// fault changes the running shop's fault injection with its own client (`minishop fault ARGS`), as the
// scenarios do; t.Cleanup puts the shop back with `minishop fault -reset`.
func (l *e2eLab) fault(t testing.TB, args ...string) {
	t.Helper()
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if l.native != nil {
			_, err := l.native.Fault(ctx, args...)
			return err
		}
		_, err := l.compose.run(ctx, append([]string{"docker", "compose", "exec", "-T", "minishop", "/minishop", "fault"}, args...)...)
		return err
	}
	if err := run(args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("-reset"); err != nil {
			t.Errorf("resetting the fault injection: %v", err)
		}
	})
}

// e2eStartLab starts a native lab on free loopback ports for the test, stopped (every program by PID,
// waiting for its exit) when the test ends. On failure the test log gets the tail of every program's log.
func e2eStartLab(t *testing.T, mod func(*nativelab.Options)) *e2eLab {
	t.Helper()
	var bin string
	for _, tool := range nativelab.Tools {
		bin = filepath.Dir(toolPath(t, tool)) // fails in CI, skips elsewhere, when a tool is missing
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	opts := nativelab.Options{
		RepoRoot: root,
		ToolsBin: bin,
		Dir:      t.TempDir(),
		ShopEnv:  e2eShopEnv,
		Logf: func(format string, args ...any) {
			t.Logf("[lab %5.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		},
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lab, err := nativelab.Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the native lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{nativelab.Shop, nativelab.Collector, nativelab.Prometheus, nativelab.Loki, nativelab.Jaeger, nativelab.Alertmanager, nativelab.SlackMock} {
				t.Logf("--- last lines of %s:\n%s", lab.LogFile(name), lab.LogTail(name, 25))
			}
		}
		if err := lab.Stop(); err != nil {
			t.Errorf("stopping the lab: %v", err)
		}
	})
	return &e2eLab{Name: "native", ShopURL: lab.ShopURL, PrometheusURL: lab.PrometheusURL, JaegerURL: lab.JaegerURL,
		LokiURL: lab.LokiURL, SlackMockURL: lab.SlackMockURL, AlertmanagerURL: lab.AlertmanagerURL,
		GatewayURL: lab.GatewayURL, CollectorOTLP: lab.CollectorOTLPGRPC, metricInterval: time.Second, native: lab}
}

// e2ePoll calls check until it returns nil, failing the test with check's last error after timeout.
// It is the only way these tests wait: for a condition, with a deadline.
func e2ePoll(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	if err := e2ePollErr(what, timeout, check); err != nil {
		t.Fatal(err)
	}
}

// e2ePollHeld is e2ePoll for a condition that must also last: check has to succeed on every poll for
// hold before it counts (nothing late, nothing invented).
func e2ePollHeld(t testing.TB, what string, timeout, hold time.Duration, check func() error) {
	t.Helper()
	var since time.Time
	e2ePoll(t, what, timeout, func() error {
		if err := check(); err != nil {
			since = time.Time{}
			return err
		}
		if since.IsZero() {
			since = time.Now()
		}
		if held := time.Since(since); held < hold {
			return fmt.Errorf("true for %s; checking that it holds for %s", held.Round(100*time.Millisecond), hold)
		}
		return nil
	})
}

func e2ePollErr(what string, timeout time.Duration, check func() error) error {
	start := time.Now()
	if err := poll(timeout, 250*time.Millisecond, check); err != nil {
		return fmt.Errorf("%s: still not true after %s: %v", what, time.Since(start).Round(time.Millisecond), err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------------
// The shop, as a client sees it.

var e2eHTTP = &http.Client{
	Timeout: 15 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     30 * time.Second,
	},
}

// e2eResp is one request to the shop and what came back.
type e2eResp struct {
	Method, Route, Path string
	Status              int
	Reason              string // the JSON error's reason, for status >= 400
	OrderID             string
	TraceID, SpanID     string // from the traceresponse header
	Sampled             bool   // traceresponse flags say the trace was sampled
	Body                []byte
	Err                 error // transport error: no response at all
	Elapsed             time.Duration
}

// e2eDo sends one request. route is the route label the shop should give it (the test knows what it asked).
func e2eDo(base, method, path, route, contentType, body string) e2eResp {
	r := e2eResp{Method: method, Route: route, Path: path}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		r.Err = err
		return r
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	start := time.Now()
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		r.Err = err
		r.Elapsed = time.Since(start)
		return r
	}
	r.Body, r.Err = io.ReadAll(resp.Body)
	resp.Body.Close()
	r.Elapsed = time.Since(start)
	r.Status = resp.StatusCode
	if tr := strings.Split(resp.Header.Get("traceresponse"), "-"); len(tr) == 4 {
		r.TraceID, r.SpanID, r.Sampled = tr[1], tr[2], tr[3] == "01"
	}
	if x := resp.Header.Get("X-Trace-Id"); x != "" && r.TraceID != "" && x != r.TraceID {
		r.Err = fmt.Errorf("X-Trace-Id %s differs from traceresponse's trace id %s", x, r.TraceID)
	}
	var js struct {
		Reason  string `json:"reason"`
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(r.Body, &js)
	r.OrderID = js.OrderID
	if r.Status >= 400 {
		r.Reason = js.Reason
	}
	return r
}

var e2eSKUs = []string{"STICKER-PACK", "TEE-BLK-M", "MUG-OTEL", "HOODIE-GRY-L"}

func e2eOrder(base, sku string) e2eResp {
	return e2eDo(base, "POST", "/order", "/order", "application/json", `{"items":[{"sku":"`+sku+`","quantity":1}]}`)
}

func e2ePay(base, orderID string) e2eResp {
	return e2eDo(base, "POST", "/payment/pay", "/payment/pay", "application/json", `{"order_id":"`+orderID+`"}`)
}

// e2eFlow is one shopper: an order, then its payment if the order was created.
func e2eFlow(base string, i int) []e2eResp {
	o := e2eOrder(base, e2eSKUs[i%len(e2eSKUs)])
	if o.Status != http.StatusCreated || o.OrderID == "" {
		return []e2eResp{o}
	}
	return []e2eResp{o, e2ePay(base, o.OrderID)}
}

// e2eKey is a request_total series as the client expects it.
type e2eKey struct{ Method, Route, Status string }

// e2eErrKey is an error_total series as the client expects it.
type e2eErrKey struct {
	e2eKey
	Reason string
}

// e2eTally counts what the client saw, per series.
type e2eTally struct {
	mu        sync.Mutex
	Requests  map[e2eKey]int
	Errors    map[e2eErrKey]int
	Transport []error // requests that got no (proper) HTTP answer; not counted in Requests
	All       []e2eResp
}

func newE2ETally() *e2eTally {
	return &e2eTally{Requests: map[e2eKey]int{}, Errors: map[e2eErrKey]int{}}
}

func (t *e2eTally) add(rs ...e2eResp) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rs {
		t.All = append(t.All, r)
		if r.Status == 0 || r.Err != nil {
			// No answer, or a broken one (unreadable body, X-Trace-Id not the traceresponse's trace id).
			t.Transport = append(t.Transport, fmt.Errorf("%s %s: status %d: %w", r.Method, r.Path, r.Status, r.Err))
			continue
		}
		k := e2eKey{r.Method, r.Route, strconv.Itoa(r.Status)}
		t.Requests[k]++
		if r.Status >= 400 {
			t.Errors[e2eErrKey{k, r.Reason}]++
		}
	}
}

// statusMix is the count per status code.
func (t *e2eTally) statusMix() map[int]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := map[int]int{}
	for _, r := range t.All {
		m[r.Status]++
	}
	return m
}

// count is how many responses match.
func (t *e2eTally) count(match func(e2eResp) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.All {
		if match(r) {
			n++
		}
	}
	return n
}

func (t *e2eTally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.All)
}

// e2eLoad runs flows at rate per second from conc workers until count flows were started or dur
// passed, whichever is first (bounded in both), and tallies every response. Loopback only: base is
// the lab's shop.
func e2eLoad(ctx context.Context, rate float64, dur time.Duration, count, conc int, flow func(i int) []e2eResp, tally *e2eTally) (started int, elapsed time.Duration) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				tally.add(flow(i)...)
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < count; i++ {
		next := start.Add(time.Duration(i) * interval)
		if next.Sub(start) >= dur || time.Since(start) >= dur || ctx.Err() != nil {
			break
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d) // pacing the load, not waiting for a result
		}
		select {
		case jobs <- i:
			started++
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return started, time.Since(start)
}

// ---------------------------------------------------------------------------------------------------
// Prometheus.

type e2ePromSample struct {
	Labels map[string]string
	Value  float64
	T      time.Time
}

// e2ePromQuery runs an instant query; an error if Prometheus does not answer "success". A scalar result
// comes back as one sample without labels; a matrix as its last point per series (with its own timestamp).
func e2ePromQuery(promURL, q string) (resultType string, out []e2ePromSample, err error) {
	resp, err := e2eHTTP.Get(promURL + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Warnings  []string
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", nil, fmt.Errorf("query %q: %v: %s", q, err, body)
	}
	if r.Status != "success" {
		return "", nil, fmt.Errorf("query %q: %s %s: %s", q, r.ErrorType, r.Error, body)
	}
	point := func(p []any) (time.Time, float64) {
		ts, _ := p[0].(float64)
		s, _ := p[1].(string)
		v, _ := strconv.ParseFloat(s, 64)
		return time.UnixMilli(int64(ts * 1000)), v
	}
	switch r.Data.ResultType {
	case "vector":
		var vs []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vs); err != nil {
			return "", nil, err
		}
		for _, v := range vs {
			ts, val := point(v.Value)
			out = append(out, e2ePromSample{v.Metric, val, ts})
		}
	case "matrix":
		var ms []struct {
			Metric map[string]string `json:"metric"`
			Values [][]any           `json:"values"`
		}
		if err := json.Unmarshal(r.Data.Result, &ms); err != nil {
			return "", nil, err
		}
		for _, m := range ms {
			if len(m.Values) > 0 {
				ts, val := point(m.Values[len(m.Values)-1])
				out = append(out, e2ePromSample{m.Metric, val, ts})
			}
		}
	case "scalar":
		var p []any
		if err := json.Unmarshal(r.Data.Result, &p); err != nil {
			return "", nil, err
		}
		ts, val := point(p)
		out = append(out, e2ePromSample{nil, val, ts})
	}
	return r.Data.ResultType, out, nil
}

// e2eSettle waits until the shop's request_total stands still for longer than one metric export interval,
// so that a "before" snapshot holds every request served so far (the last export may be on its way).
func e2eSettle(t testing.TB, lab *e2eLab) {
	t.Helper()
	var last float64 // no series yet: nothing served so far
	e2ePollHeld(t, "request_total to stand still for an export interval", 2*time.Minute, lab.metricInterval+2*time.Second, func() error {
		_, ss, err := e2ePromQuery(lab.PrometheusURL, `sum(request_total{job="minishop"})`)
		if err != nil {
			return err
		}
		v := 0.0
		if len(ss) > 0 {
			v = ss[0].Value
		}
		if v != last {
			last = v
			return fmt.Errorf("request_total moved to %v", v)
		}
		return nil
	})
}

// e2eCounterSnapshot reads the latest raw sample of every job="minishop" series of a counter (not
// increase(), which extrapolates), keyed by its labels other than job, app and instance.
func e2eCounterSnapshot(promURL, metric string) (map[string]e2ePromSample, error) {
	_, ss, err := e2ePromQuery(promURL, metric+`{job="minishop"}[10m]`)
	if err != nil {
		return nil, err
	}
	out := map[string]e2ePromSample{}
	for _, s := range ss {
		out[e2eSeriesKey(s.Labels)] = s
	}
	return out, nil
}

func e2eSeriesKey(l map[string]string) string {
	var parts []string
	for k, v := range l {
		switch k {
		case "__name__", "job", "app", "instance":
			continue
		}
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (k e2eKey) series() string {
	return "method=" + k.Method + ",route=" + k.Route + ",status_code=" + k.Status
}

func (k e2eErrKey) series() string {
	return "method=" + k.Method + ",reason=" + k.Reason + ",route=" + k.Route + ",status_code=" + k.Status
}

// e2eDeltas is after - before per series, counting only samples the current shop process wrote (at or
// after shopStart): a sample older than that is an earlier shop's last value, and a restarted shop starts
// its counters at zero.
func e2eDeltas(before, after map[string]e2ePromSample, shopStart time.Time) map[string]float64 {
	cur := func(m map[string]e2ePromSample, k string) float64 {
		if s, ok := m[k]; ok && !s.T.Before(shopStart) {
			return s.Value
		}
		return 0
	}
	d := map[string]float64{}
	for k := range after {
		if v := cur(after, k) - cur(before, k); v != 0 {
			d[k] = v
		}
	}
	return d
}

// e2eExpectCounts waits until the counter's deltas (per series, this shop process) equal want exactly,
// and stay so for 3 more export intervals (nothing late, nothing invented).
func e2eExpectCounts(t *testing.T, lab *e2eLab, metric string, before map[string]e2ePromSample, want map[string]float64, timeout time.Duration) {
	t.Helper()
	shopStart := lab.shopStartedAt(t)
	e2ePollHeld(t, metric+" deltas equal what the client saw", timeout, 3*time.Second, func() error {
		after, err := e2eCounterSnapshot(lab.PrometheusURL, metric)
		if err != nil {
			return err
		}
		if diff := e2eDiffCounts(want, e2eDeltas(before, after, shopStart)); diff != "" {
			return fmt.Errorf("%s (want - got):\n%s", metric, diff)
		}
		return nil
	})
}

func e2eDiffCounts(want, got map[string]float64) string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var lines []string
	for k := range keys {
		if want[k] != got[k] {
			lines = append(lines, fmt.Sprintf("  {%s}: client saw %v, Prometheus has %v", k, want[k], got[k]))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// e2eWant turns the tally into expected request_total and error_total deltas.
func (t *e2eTally) want() (requests, errs map[string]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	requests, errs = map[string]float64{}, map[string]float64{}
	for k, n := range t.Requests {
		requests[k.series()] += float64(n)
	}
	for k, n := range t.Errors {
		errs[k.series()] += float64(n)
	}
	return requests, errs
}

// ---------------------------------------------------------------------------------------------------
// Jaeger.

type e2eJaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

func (s e2eJaegerSpan) tag(key string) (any, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return nil, false
}

func (s e2eJaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

type e2eJaegerTrace struct {
	TraceID   string          `json:"traceID"`
	Spans     []e2eJaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func (tr e2eJaegerTrace) span(op string) (e2eJaegerSpan, bool) {
	for _, s := range tr.Spans {
		if s.OperationName == op {
			return s, true
		}
	}
	return e2eJaegerSpan{}, false
}

func (tr e2eJaegerTrace) service(s e2eJaegerSpan) string {
	return tr.Processes[s.ProcessID].ServiceName
}

var errE2ETraceNotFound = errors.New("trace not found in Jaeger")

// e2eJaegerGet fetches one trace by id from Jaeger's HTTP API.
func e2eJaegerGet(jaegerURL, traceID string) (e2eJaegerTrace, error) {
	resp, err := e2eHTTP.Get(jaegerURL + "/api/traces/" + traceID)
	if err != nil {
		return e2eJaegerTrace{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return e2eJaegerTrace{}, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return e2eJaegerTrace{}, errE2ETraceNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return e2eJaegerTrace{}, fmt.Errorf("GET /api/traces/%s: %s: %.300s", traceID, resp.Status, body)
	}
	var r struct {
		Data []e2eJaegerTrace `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return e2eJaegerTrace{}, err
	}
	if len(r.Data) == 0 || len(r.Data[0].Spans) == 0 {
		return e2eJaegerTrace{}, errE2ETraceNotFound
	}
	return r.Data[0], nil
}

// e2eWaitTrace waits until Jaeger has the trace with at least the named spans.
func e2eWaitTrace(t *testing.T, lab *e2eLab, traceID string, ops ...string) e2eJaegerTrace {
	t.Helper()
	var tr e2eJaegerTrace
	e2ePoll(t, "trace "+traceID+" in Jaeger with spans "+strings.Join(ops, ", "), 30*time.Second, func() error {
		var err error
		if tr, err = e2eJaegerGet(lab.JaegerURL, traceID); err != nil {
			return err
		}
		for _, op := range ops {
			if _, ok := tr.span(op); !ok {
				return fmt.Errorf("no span %q yet among %d", op, len(tr.Spans))
			}
		}
		return nil
	})
	return tr
}

// e2eCheckTraces fetches every trace id (concurrency 8) and returns the ids whose check failed, with why.
func e2eCheckTraces(jaegerURL string, ids []string, check func(id string, tr e2eJaegerTrace) error) map[string]error {
	var mu sync.Mutex
	bad := map[string]error{}
	jobs := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				tr, err := e2eJaegerGet(jaegerURL, id)
				if err == nil {
					err = check(id, tr)
				}
				if err != nil {
					mu.Lock()
					bad[id] = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		jobs <- id
	}
	close(jobs)
	wg.Wait()
	return bad
}

func e2eSomeErrors(m map[string]error, n int) string {
	var lines []string
	for id, err := range m {
		lines = append(lines, id+": "+err.Error())
		if len(lines) == n {
			break
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------------------------------
// Slack mock.

type e2eSlackMessage struct {
	ID          int64  `json:"id"`
	Title       string `json:"title"`
	Status      string `json:"status"`
	Channel     string `json:"channel"`
	Attachments []struct {
		Title string `json:"title"`
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"attachments"`
}

func e2eSlackMessages(mockURL string) ([]e2eSlackMessage, error) {
	resp, err := e2eHTTP.Get(mockURL + "/api/messages")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ms []e2eSlackMessage
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/messages: %s", resp.Status)
	}
	return ms, json.NewDecoder(resp.Body).Decode(&ms)
}

// e2eSample returns n ids chosen at random (all of them if there are no more than n).
func e2eSample(ids []string, n int) []string {
	if len(ids) <= n {
		return ids
	}
	c := append([]string(nil), ids...)
	rand.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c[:n]
}

// e2eShopWith restarts the native lab's shop with these environment overrides (KEY=VALUE); the returned
// func restarts it with its defaults again: defer e2eShopWith(t, lab, "MINISHOP_RESTOCK_INTERVAL=100ms")().
func e2eShopWith(t *testing.T, lab *nativelab.Lab, env ...string) (restore func()) {
	t.Helper()
	if err := lab.RestartShop(context.Background(), env...); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := lab.RestartShop(context.Background()); err != nil {
			t.Errorf("restarting the shop with its defaults: %v", err)
		}
	}
}

// ---------------------------------------------------------------------------------------------------
// Loki.

// e2eLokiLine is one log line as Loki returns it: its stream labels (index labels and, as Loki 3 returns
// them by default, structured metadata such as trace_id, span_id and the record's attributes).
type e2eLokiLine struct {
	Labels map[string]string
	T      time.Time
	Line   string
}

// e2eLokiRange runs a LogQL query over [start, now + 1 min] (up to 5000 lines, oldest first). It returns
// the result type ("streams" for a log query, "matrix" for a metric query), the lines of a log query, and
// the number of series (or streams) in the answer.
func e2eLokiRange(lokiURL, q string, start time.Time) (resultType string, lines []e2eLokiLine, series int, err error) {
	v := url.Values{"query": {q}, "limit": {"5000"}, "direction": {"forward"},
		"start": {strconv.FormatInt(start.UnixNano(), 10)}, "end": {strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10)}}
	resp, err := e2eHTTP.Get(lokiURL + "/loki/api/v1/query_range?" + v.Encode())
	if err != nil {
		return "", nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, 0, fmt.Errorf("Loki refuses %q: %s: %.500s", q, resp.Status, body)
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return "", nil, 0, fmt.Errorf("query %q: status %q, %v: %.500s", q, r.Status, err, body)
	}
	var res []struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	if err := json.Unmarshal(r.Data.Result, &res); err != nil {
		return "", nil, 0, fmt.Errorf("query %q: %v", q, err)
	}
	if r.Data.ResultType == "streams" {
		for _, s := range res {
			for _, v := range s.Values {
				ns, _ := v[0].(string)
				line, _ := v[1].(string)
				n, _ := strconv.ParseInt(ns, 10, 64)
				lines = append(lines, e2eLokiLine{Labels: s.Stream, T: time.Unix(0, n), Line: line})
			}
		}
		sort.SliceStable(lines, func(i, j int) bool { return lines[i].T.Before(lines[j].T) })
		if len(lines) >= 5000 {
			return "", nil, 0, fmt.Errorf("query %q: 5000 lines or more, the answer may be cut", q)
		}
	}
	return r.Data.ResultType, lines, len(res), nil
}

// e2eLokiLines is e2eLokiRange for a log query.
func e2eLokiLines(lokiURL, q string, start time.Time) ([]e2eLokiLine, error) {
	typ, lines, _, err := e2eLokiRange(lokiURL, q, start)
	if err == nil && typ != "streams" {
		err = fmt.Errorf("query %q: result type %q, want streams", q, typ)
	}
	return lines, err
}
