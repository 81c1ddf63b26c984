package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// noOTel keeps the tests that are not about traces from dialling a Collector.
var noOTel = env("OTEL_SDK_DISABLED", "true")

// summary is the final JSON line of a run with -log-format json.
type summary struct {
	Sent       int64            `json:"sent"`
	Dropped    int64            `json:"dropped"`
	Responses  int64            `json:"responses"`
	NoResponse int64            `json:"no_response"`
	ErrorRatio float64          `json:"error_ratio"`
	Rate       float64          `json:"rate"`
	P50        float64          `json:"p50_ms"`
	P95        float64          `json:"p95_ms"`
	Status     map[string]int64 `json:"status"`
	Requests   map[string]int64 `json:"requests"`
}

func parseSummary(t *testing.T, stdout string) summary {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("output line is not JSON: %q", sc.Text())
		}
		if line.Msg == "summary" {
			var s summary
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Fatalf("summary %q: %v", sc.Text(), err)
			}
			return s
		}
	}
	t.Fatalf("no summary line in the output:\n%s", stdout)
	return summary{}
}

func within(t *testing.T, what string, got, want, tolerance float64) {
	t.Helper()
	if math.Abs(got-want) > tolerance {
		t.Errorf("%s = %.4f, want %.4f ± %.4f", what, got, want, tolerance)
	} else {
		t.Logf("%s = %.4f (want %.4f ± %.4f)", what, got, want, tolerance)
	}
}

// A bounded run (as fast as the machine allows) against the fake shop: the shares of the mix
// are what was asked for.
func TestMixProportions(t *testing.T) {
	shop, srv := newFakeShop(t, 0)
	out, _, err := runFor(t, 20*time.Second, noOTel, "-target", srv.URL, "-log-format", "json",
		"-rate", "2000", "-requests", "1600", "-concurrency", "32", "-seed", "7",
		"-bad-rate", "0.2", "-pay-rate", "0.7", "-lookup-rate", "0.4")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	counts, _, total := shop.snapshot()
	if total != 1600 {
		t.Fatalf("the shop got %d requests, want the 1600 of -requests: %v", total, counts)
	}
	bad := counts["bad_json"] + counts["unknown_sku"] + counts["pay_again"]
	creates := float64(counts["create"])
	// With -seed the sequence of journeys is fixed (only the last few, cut short by -requests,
	// vary); the tolerances are 3 to 4 standard deviations of the shares over random seeds.
	within(t, "bad share of all requests", float64(bad)/float64(total), 0.2, 0.04)
	within(t, "paid share of created orders", float64(counts["pay"])/creates, 0.7, 0.05)
	within(t, "looked-up share of created orders", float64(counts["lookup"])/creates, 0.4, 0.05)
	for _, kind := range []string{"bad_json", "unknown_sku", "pay_again"} {
		// Equally likely, except that "pay again" is a malformed body until the first order is paid.
		within(t, kind+" share of bad requests", float64(counts[kind])/float64(bad), 1.0/3, 0.1)
	}
	if counts["pay_unknown_order"] > 0 || counts["lookup_unknown_order"] > 0 {
		t.Errorf("follow-ups for orders the shop never created: %v", counts)
	}

	shop.mu.Lock()
	defer shop.mu.Unlock()
	orders := float64(shop.lines[1] + shop.lines[2] + shop.lines[3])
	within(t, "one-line orders", float64(shop.lines[1])/orders, 0.60, 0.05)
	for _, sku := range skus.choices {
		if shop.skus[sku] == 0 {
			t.Errorf("no order for %s", sku)
		}
	}
	if shop.skus["STICKER-PACK"] <= shop.skus["TEE-BLK-M"] || shop.skus["TEE-BLK-M"] <= shop.skus["LIMITED-PIN"] {
		t.Errorf("SKU popularity does not follow the shelf sizes: %v", shop.skus)
	}
	for _, r := range shop.requests {
		if r.userAgent != userAgent {
			t.Fatalf("%s %s with User-Agent %q", r.method, r.path, r.userAgent)
		}
	}
}

// The default mix against a shop that fails 5% of payments stays well under the alert's 10%,
// close to the ratio the comment on defaultMix computes, and the loadgen sees what the shop saw.
func TestDefaultMixErrorRatio(t *testing.T) {
	shop, srv := newFakeShop(t, 0.05)
	out, _, err := runFor(t, 20*time.Second, noOTel, "-target", srv.URL, "-log-format", "json",
		"-rate", "2000", "-requests", "2000", "-concurrency", "32", "-seed", "11")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	_, status, total := shop.snapshot()
	var errs int
	for code, n := range status {
		if code >= "400" {
			errs += n
		}
	}
	ratio := float64(errs) / float64(total)
	want := defaultMix.expectedErrorRatio(0.05)
	within(t, "expected error ratio of the default mix", want, 0.049, 0.001)
	// n ≈ 2000: standard deviation about 0.005.
	within(t, "error ratio at the shop", ratio, want, 0.02)
	if ratio >= 0.08 {
		t.Errorf("error ratio %.3f is too close to the alert's 0.10", ratio)
	}
	s := parseSummary(t, out)
	if s.Responses != int64(total) || s.NoResponse != 0 {
		t.Errorf("loadgen counted %d responses (%d without), the shop %d requests", s.Responses, s.NoResponse, total)
	}
	within(t, "error ratio in the summary", s.ErrorRatio, ratio, 0.0001)
	for code, n := range status {
		if s.Status[code] != int64(n) {
			t.Errorf("status %s: loadgen counted %d, the shop %d", code, s.Status[code], n)
		}
	}
}

func TestBadRateZeroSendsOnlyGoodRequests(t *testing.T) {
	shop, srv := newFakeShop(t, 0)
	out, _, err := runFor(t, 20*time.Second, noOTel, "-target", srv.URL, "-rate", "1000", "-requests", "400", "-bad-rate", "0")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	counts, status, total := shop.snapshot()
	if total != 400 {
		t.Fatalf("%d requests, want 400", total)
	}
	for code, n := range status {
		if code >= "400" {
			t.Errorf("%d responses with status %s: %v", n, code, counts)
		}
	}
}

var traceparentRe = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)

// Every request carries a traceparent naming the loadgen's client span for it; that span
// (exported over OTLP when the run ends) is a child of the journey span, in service "loadgen".
func TestTraceContextIsInjectedAndExported(t *testing.T) {
	sink, otlpAddr := startOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+otlpAddr)
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	// Far beyond the test: only the flush on the way out can deliver the spans.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
	shop, srv := newFakeShop(t, 1) // every payment fails with 504: client spans with status Error
	getenv := env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+otlpAddr)
	out, _, err := runFor(t, 20*time.Second, getenv, "-target", srv.URL, "-rate", "200", "-requests", "60", "-seed", "3")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}

	sink.mu.Lock()
	defer sink.mu.Unlock()
	type key struct{ trace, span string }
	spans := map[key]*tracepb.Span{}
	for i, sp := range sink.spans {
		if sink.names[i] != "loadgen" {
			t.Errorf("span %q from service %q, want loadgen", sp.Name, sink.names[i])
		}
		spans[key{hex.EncodeToString(sp.TraceId), hex.EncodeToString(sp.SpanId)}] = sp
	}
	shop.mu.Lock()
	defer shop.mu.Unlock()
	if len(shop.requests) != 60 {
		t.Fatalf("%d requests, want 60", len(shop.requests))
	}
	perTrace := map[string]int{}
	for _, r := range shop.requests {
		m := traceparentRe.FindStringSubmatch(r.traceparent)
		if m == nil {
			t.Fatalf("%s %s: traceparent %q", r.method, r.path, r.traceparent)
		}
		sp, ok := spans[key{m[1], m[2]}]
		if !ok {
			t.Fatalf("%s %s: no exported span has the trace and span id of traceparent %s", r.method, r.path, r.traceparent)
		}
		perTrace[m[1]]++
		attrs := map[string]any{}
		for _, kv := range sp.Attributes {
			if v, ok := kv.Value.Value.(*commonpb.AnyValue_StringValue); ok {
				attrs[kv.Key] = v.StringValue
			} else {
				attrs[kv.Key] = kv.Value.GetIntValue()
			}
		}
		if sp.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span %q has kind %v, want client", sp.Name, sp.Kind)
		}
		if attrs["http.request.method"] != r.method || !strings.HasSuffix(attrs["url.full"].(string), r.path) ||
			!strings.HasPrefix(attrs["url.full"].(string), srv.URL) || attrs["http.response.status_code"] != int64(r.status) {
			t.Errorf("span %q attributes %v do not match the request %s %s -> %d", sp.Name, attrs, r.method, r.path, r.status)
		}
		if isErr := sp.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR; isErr != (r.status >= 500) {
			t.Errorf("span %q for status %d has span status %v", sp.Name, r.status, sp.Status.GetCode())
		}
		parent, ok := spans[key{m[1], hex.EncodeToString(sp.ParentSpanId)}]
		if !ok {
			t.Fatalf("client span %q has no exported parent", sp.Name)
		}
		if (parent.Name != "checkout" && parent.Name != "bad_request") || len(parent.ParentSpanId) != 0 || parent.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("client span %q has parent %q (kind %v, parent %x), want a root journey span", sp.Name, parent.Name, parent.Kind, parent.ParentSpanId)
		}
		if r.status == 504 && parent.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("journey with a 504 has status %v", parent.Status.GetCode())
		}
	}
	longest := 0
	for _, n := range perTrace {
		longest = max(longest, n)
	}
	if longest < 2 {
		t.Errorf("no journey sent more than one request in one trace: %v", perTrace)
	}
}

// With no Collector listening, the load runs as usual; the lost traces are a warning, not a failure.
func TestRunWithoutCollector(t *testing.T) {
	endpoint := "http://" + freeAddr(t) // nothing listens there
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	_, srv := newFakeShop(t, 0)
	out, took, err := runFor(t, 20*time.Second, env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
		"-target", srv.URL, "-rate", "50", "-duration", "300ms")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if took > 300*time.Millisecond+flushTimeout+2*time.Second {
		t.Errorf("took %v", took)
	}
	if !strings.Contains(out, "msg=summary") || !strings.Contains(out, "traces not flushed") {
		t.Errorf("want a summary and a warning about the traces:\n%s", out)
	}
}

func TestUnreachableTargetFailsFast(t *testing.T) {
	_, took, err := runFor(t, 10*time.Second, noOTel, "-target", "http://"+freeAddr(t))
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("run = %v, want a 'not reachable' error", err)
	}
	if took > readyTimeout+time.Second {
		t.Errorf("took %v to give up", took)
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)

	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply(w, 503, map[string]string{"status": "not ready"})
	}))
	defer notReady.Close()
	if _, _, err := runFor(t, 10*time.Second, noOTel, "-target", notReady.URL); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("run against a shop answering 503 = %v, want a 'not ready' error", err)
	}
}

// A shop that answers /readyz and then goes away: the first progress window in which no
// request got an answer ends the run with an error.
func TestShopGoingAwayEndsTheRun(t *testing.T) {
	var srv *httptest.Server
	var closed atomic.Bool
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && closed.CompareAndSwap(false, true) {
			reply(w, 200, map[string]string{"status": "ready"})
			go srv.Close() // waits for this response, then refuses every connection
			return
		}
		reply(w, 201, map[string]string{"order_id": "ord_1"})
	}))
	defer srv.Close()
	out, took, err := runFor(t, 10*time.Second, noOTel, "-target", srv.URL, "-log-format", "json",
		"-rate", "50", "-report-interval", "200ms")
	var unreachable *unreachableError
	if !errors.As(err, &unreachable) {
		t.Fatalf("run = %v, want an unreachable error\n%s", err, out)
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if s := parseSummary(t, out); s.NoResponse == 0 {
		t.Errorf("summary shows no failed requests: %+v", s)
	}
}

func TestDurationIsHonoured(t *testing.T) {
	_, srv := newFakeShop(t, 0)
	const d = 700 * time.Millisecond
	out, took, err := runFor(t, 10*time.Second, noOTel, "-target", srv.URL, "-log-format", "json", "-rate", "50", "-duration", d.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if took < d || took > d+2*time.Second {
		t.Errorf("a %v run took %v", d, took)
	}
	s := parseSummary(t, out)
	// Slots are due at 0, 20ms, 40ms, …: 35 of them in 700ms (fewer if a busy machine serves the last tick late).
	if s.Sent+s.Dropped < 28 || s.Sent+s.Dropped > 36 || s.Responses != s.Sent {
		t.Errorf("summary %+v, want about 35 requests sent and answered", s)
	}
}

// Open loop: when every worker is busy, due requests are dropped and counted; the pace of the
// slots does not slow down with the shop.
func TestSaturationDropsInsteadOfSlowingDown(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			time.Sleep(100 * time.Millisecond) // the simulated latency of a slow shop
		}
		reply(w, 200, map[string]string{"order_id": "ord_1"})
	}))
	defer slow.Close()
	out, _, err := runFor(t, 10*time.Second, noOTel, "-target", slow.URL, "-log-format", "json",
		"-rate", "100", "-duration", "1s", "-concurrency", "2")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	s := parseSummary(t, out)
	// A busy machine may leave the last tick or two unserved when the second is up: hence 80, not 100.
	if s.Sent > 25 || s.Dropped < 55 || s.Sent+s.Dropped < 80 {
		t.Errorf("summary %+v: with 2 workers and 100ms per request, want about 20 sent and 80 dropped of 100 slots", s)
	}
}

func TestCancelStopsWithASummary(t *testing.T) {
	shop, srv := newFakeShop(t, 0)
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	done := make(chan error, 1)
	healthAddr := freeAddr(t)
	go func() {
		done <- run(ctx, []string{"loadgen", "-target", srv.URL, "-rate", "100", "-health-addr", healthAddr}, noOTel, out, io.Discard)
	}()
	// Healthy once the load runs, and some requests made: then stop it as Ctrl-C would.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + healthAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		if _, _, total := shop.snapshot(); err == nil && resp.StatusCode == 200 && total >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy with 10 requests made after 10s: %v\n%s", err, out)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10s after cancel")
	}
	if !strings.Contains(out.String(), "msg=summary") {
		t.Errorf("no summary after cancel:\n%s", out)
	}
	if resp, err := http.Get("http://" + healthAddr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("health endpoint still answers after run returned")
	}
}

func TestConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"loadgen"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.target.String() != "http://localhost:8080" || cfg.rate != 5 || cfg.duration != 0 || cfg.mix != defaultMix {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = parseConfig([]string{"loadgen", "-rate", "7"}, env(
		"LOADGEN_TARGET", "http://minishop:8080/", "LOADGEN_RATE", "2.5", "LOADGEN_CONCURRENCY", "4",
		"LOADGEN_DURATION", "1m", "LOADGEN_BAD_RATE", "0.1", "LOADGEN_PAY_RATE", "0.5", "LOADGEN_LOOKUP_RATE", "0"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.target.String() != "http://minishop:8080" || cfg.rate != 7 || cfg.concurrency != 4 || cfg.duration != time.Minute ||
		cfg.mix != (mix{bad: 0.1, pay: 0.5, lookup: 0}) {
		t.Errorf("env, with the flag winning over LOADGEN_RATE: %+v", cfg)
	}
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{env: []string{"LOADGEN_RATE", "fast"}},
		{env: []string{"LOADGEN_DURATION", "10"}},
		{args: []string{"-rate", "0"}},
		{args: []string{"-concurrency", "0"}},
		{args: []string{"-bad-rate", "1"}},
		{args: []string{"-pay-rate", "1.5"}},
		{args: []string{"-lookup-rate", "-0.1"}},
		{args: []string{"-duration", "-1s"}},
		{args: []string{"-target", "localhost:8080"}},
		{args: []string{"-log-format", "xml"}},
		{args: []string{"-no-such-flag"}},
		{args: []string{"extra"}},
	} {
		if _, err := parseConfig(append([]string{"loadgen"}, c.args...), env(c.env...), io.Discard); err == nil {
			t.Errorf("parseConfig(%v, %v) = nil error", c.args, c.env)
		}
	}
}

// badPick turns the share of bad requests into the chance of a new journey being one.
func TestBadPickGivesTheBadShareOfRequests(t *testing.T) {
	for _, m := range []mix{defaultMix, {bad: 0.2, pay: 0.7, lookup: 0.4}, {bad: 0.5, pay: 1, lookup: 1}, {bad: 0, pay: 0, lookup: 0}} {
		x, k := m.badPick(), m.requestsPerCheckout()
		within(t, "bad share", x/(x+(1-x)*k), m.bad, 1e-9)
	}
}

func TestRandomItems(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	units := map[string]int{}
	const n = 20000
	for range n {
		items := randomItems(rng)
		seen := map[string]bool{}
		if len(items) < 1 || len(items) > 3 {
			t.Fatalf("%d lines", len(items))
		}
		for _, it := range items {
			if seen[it.SKU] || it.Quantity < 1 || it.Quantity > 3 || !fakeCatalogue[it.SKU] {
				t.Fatalf("bad order %+v", items)
			}
			seen[it.SKU] = true
			units[it.SKU] += it.Quantity
		}
	}
	// The comment on defaultMix: about 3 pins per 15 s restock at 5 requests/s, and at 50/s
	// every other shelf lasts the 15 s (TEE-BLK-M, the tightest, at about 90% of its 200).
	orders := 5 * 15 * (1 - defaultMix.bad) / defaultMix.requestsPerCheckout()
	within(t, "LIMITED-PIN units per restock at 5/s", float64(units["LIMITED-PIN"])/n*orders, 3.0, 0.3)
	for sku, capacity := range map[string]int{"STICKER-PACK": 500, "TEE-BLK-M": 200, "MUG-OTEL": 150, "HOODIE-GRY-L": 80} {
		if perRestock := float64(units[sku]) / n * orders * 10; perRestock > 0.95*float64(capacity) {
			t.Errorf("%s: %.0f ordered per restock at 50/s, shelf of %d", sku, perRestock, capacity)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*histGrowth {
			t.Errorf("p%v = %v, want %v to 5%% above", c.q*100, got, c.want)
		}
	}
	h.add(time.Microsecond)
	h.add(time.Hour)
	if h.quantile(1) != time.Hour || h.counts[0] == 0 || h.counts[histSize-1] == 0 {
		t.Error("out-of-range latencies are not kept in the end buckets")
	}
}
