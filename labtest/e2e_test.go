package labtest

// End-to-end tests of the whole lab without Docker: the same programs and config files as
// docker-compose.yml (Alertmanager, the Slack mock, Jaeger v2, Prometheus, our Collector, the shop), run
// natively on 127.0.0.1 by labtest/nativelab, with Loki replaced by an in-process OTLP receiver that the
// Collector's real Loki exporter sends to. Each test sends its own traffic and checks that every signal
// arrives where a user will look: Prometheus (metrics, rules, dashboards' queries, exemplars), Jaeger
// (traces), Loki (logs) and the Slack mock (alerts).
//
// A missing program (scripts/native-tools.sh installs them) fails these tests in CI (CI=true) and skips
// them elsewhere. TestE2E shares one lab between its subtests, which run in order; TestE2EAlerting has
// its own lab (it needs exclusive control of the error rate).
//
//	cd labtest && go test -run 'TestE2E' -v -count=1 -timeout 15m .      (both; ~3 min on 2 cores)
//	cd labtest && go test -run '^TestE2E$/Traces' -v -count=1 .           (one subtest, on its own lab)

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
	"minishop/labtest/nativelab"
)

// e2eContractMetrics are the shop's metric names in Prometheus, with their exact label names
// (besides job, app and an optional instance).
var e2eContractMetrics = map[string]string{
	"request_total":                   "method,route,status_code",
	"error_total":                     "method,reason,route,status_code",
	"request_duration_seconds_bucket": "le,method,route,status_code",
	"request_duration_seconds_sum":    "method,route,status_code",
	"request_duration_seconds_count":  "method,route,status_code",
}

// e2eState carries what one subtest found to the next (a subtest run alone makes its own).
type e2eState struct {
	orderTrace  e2eResp // a POST /order that created an order
	failedPay   e2eResp // a POST /payment/pay that failed
	failedTrace e2eJaegerTrace
	labStart    time.Time
}

// e2eSteps are the end-to-end checks, in the order they run on one lab: first those that run on both
// labs, then the native-only resilience checks (they restart, stop or signal programs by PID).
var e2eSteps = []struct {
	name       string
	fn         func(*testing.T, *e2eLab, *e2eState)
	nativeOnly bool
}{
	{"Metrics", e2eMetrics, false},
	{"DashboardsAndRules", e2eDashboardsAndRules, false},
	{"ScrapeTargets", e2eScrapeTargets, false},
	{"Traces", e2eTraces, false},
	{"Logs", e2eLogs, false},
	{"LogQL", e2eLogQL, false},
	{"Freshness", e2eFreshness, false},
	{"Exemplars", e2eExemplars, false},
	{"Volume", e2eVolume, false},
	{"PaymentAcrossServices", e2ePaymentAcrossServices, false},
	{"Throughput", e2eThroughput, true},
	{"CollectorOutage", e2eCollectorOutage, true},
	{"ShutdownFlush", e2eShutdownFlush, true},
}

func TestE2E(t *testing.T) {
	e2eRun(t, e2eStartLab(t, nil))
}

// e2eRun runs every step that fits the lab, in order, sharing what they found.
func e2eRun(t *testing.T, lab *e2eLab) {
	st := &e2eState{labStart: time.Now()}
	for _, s := range e2eSteps {
		if s.nativeOnly && lab.native == nil {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			defer func() {
				t.Logf("%s on the %s lab took %s", s.name, lab.Name, time.Since(start).Round(100*time.Millisecond))
			}()
			s.fn(t, lab, st)
		})
	}
}

// e2eMixedTraffic sends a known mix of good and bad requests and returns what the client saw.
func e2eMixedTraffic(t *testing.T, base string, flows int) *e2eTally {
	t.Helper()
	tally := newE2ETally()
	for i := 0; i < flows; i++ {
		rs := e2eFlow(base, i)
		tally.add(rs...)
		if o := rs[0]; o.OrderID != "" && i%3 == 0 {
			tally.add(e2eDo(base, "GET", "/order/"+o.OrderID, "/order/{id}", "", ""))
		}
	}
	// Every kind of client error, each with its reason.
	tally.add(
		e2eDo(base, "GET", "/order/ord_does_not_exist", "/order/{id}", "", ""),                                 // 404 order_not_found
		e2eDo(base, "POST", "/order", "/order", "application/json", `{"items":[`),                              // 400 invalid_request
		e2eDo(base, "POST", "/order", "/order", "text/plain", `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`),   // 415
		e2eDo(base, "POST", "/order", "/order", "application/json", `{"items":[{"sku":"NOPE","quantity":1}]}`), // unknown_sku
		e2eDo(base, "GET", "/payment/pay", "/payment/pay", "", ""),                                             // 405
		e2eDo(base, "DELETE", "/order", "/order", "", ""),                                                      // 405
		e2eDo(base, "GET", "/no/such/page", "unmatched", "", ""),                                               // 404 not_found
		e2eDo(base, "POST", "/payment/pay", "/payment/pay", "application/json", `{"order_id":"ord_nope"}`),     // 404 order_not_found
	)
	if len(tally.Transport) > 0 {
		t.Fatalf("requests without an answer: %v", tally.Transport)
	}
	return tally
}

// 1. Metrics: exactly the contract's names and labels, and counts equal to what the client saw.
func e2eMetrics(t *testing.T, lab *e2eLab, st *e2eState) {
	e2eSettle(t, lab)
	beforeReq, err := e2eCounterSnapshot(lab.PrometheusURL, "request_total")
	if err != nil {
		t.Fatal(err)
	}
	beforeErr, err := e2eCounterSnapshot(lab.PrometheusURL, "error_total")
	if err != nil {
		t.Fatal(err)
	}
	beforeCount, err := e2eCounterSnapshot(lab.PrometheusURL, "request_duration_seconds_count")
	if err != nil {
		t.Fatal(err)
	}
	tally := e2eMixedTraffic(t, lab.ShopURL, 40)
	wantReq, wantErr := tally.want()
	t.Logf("sent %d requests: %d request_total series, %d error_total series (statuses %v)", tally.total(), len(wantReq), len(wantErr), tally.statusMix())

	e2eExpectCounts(t, lab, "request_total", beforeReq, wantReq, 45*time.Second)
	e2eExpectCounts(t, lab, "error_total", beforeErr, wantErr, 20*time.Second)
	e2eExpectCounts(t, lab, "request_duration_seconds_count", beforeCount, wantReq, 20*time.Second)

	// Names: the shop's series in Prometheus are the contract's five, plus target_info (the resource)
	// and the fault-injection gauges (minishop_fault_*); anything else (request_duration_seconds_seconds,
	// UTF-8 dotted names, unsuffixed names) is a contract break.
	// (Recording rules' results carry job="minishop" too; their names have a colon.)
	_, names, err := e2ePromQuery(lab.PrometheusURL, `count by (__name__) ({job="minishop", __name__!~".*:.*"})`)
	if err != nil {
		t.Fatal(err)
	}
	var seen, extra []string
	for _, n := range names {
		name := n.Labels["__name__"]
		seen = append(seen, name)
		_, contract := e2eContractMetrics[name]
		// otel_sdk_*: the SDK's own metrics (spans/logs processed or dropped, exports), its no-silent-loss signal.
		// traces_span_metrics_*: the Collector's span_metrics connector, from the shop's spans (job = service.name).
		if !contract && name != "target_info" && !strings.HasPrefix(name, "minishop_fault_") && !strings.HasPrefix(name, "otel_sdk_") &&
			!strings.HasPrefix(name, "traces_span_metrics_") {
			extra = append(extra, name)
		}
	}
	sort.Strings(seen)
	t.Logf("metric names with job=minishop in Prometheus: %s", strings.Join(seen, ", "))
	if len(extra) > 0 {
		t.Errorf("unexpected metric names from the shop: %v (contract: %v)", extra, e2eContractMetrics)
	}
	for name, labels := range e2eContractMetrics {
		_, ss, err := e2ePromQuery(lab.PrometheusURL, name+`{job="minishop"}`)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) == 0 {
			t.Errorf("no %s series in Prometheus", name)
		}
		for _, s := range ss {
			var got []string
			for k := range s.Labels {
				switch k {
				case "__name__", "job", "app", "instance":
				default:
					got = append(got, k)
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != labels || s.Labels["app"] != "minishop" || s.Labels["job"] != "minishop" {
				t.Errorf("%s series %v: want labels exactly %s plus job=minishop, app=minishop", name, s.Labels, labels)
				break
			}
		}
	}
	// The histogram is consistent: the +Inf bucket is the count, and the sum is positive seconds.
	_, inf, err := e2ePromQuery(lab.PrometheusURL, `sum(request_duration_seconds_bucket{job="minishop",le="+Inf"}) - sum(request_duration_seconds_count{job="minishop"})`)
	if err != nil || len(inf) != 1 || inf[0].Value != 0 {
		t.Errorf("+Inf bucket minus count: %v %v", inf, err)
	}
	_, avg, err := e2ePromQuery(lab.PrometheusURL, `sum(request_duration_seconds_sum{job="minishop"}) / sum(request_duration_seconds_count{job="minishop"})`)
	if err != nil || len(avg) != 1 || !(avg[0].Value > 0 && avg[0].Value < 5) {
		t.Errorf("mean request duration %v (want seconds, between 0 and 5): %v", avg, err)
	} else {
		t.Logf("mean request duration: %.1f ms (the unit is seconds, as the name says)", avg[0].Value*1000)
	}
}

// 2. Every PromQL expression of the dashboards and the rules parses and returns data after traffic.
func e2eDashboardsAndRules(t *testing.T, lab *e2eLab, st *e2eState) {
	type expr struct{ where, q string }
	var exprs []expr
	qs, err := DashboardPromQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if strings.TrimSpace(q.Expr) != "" {
			exprs = append(exprs, expr{q.String(), q.Expr})
		}
	}
	// The queries docs/labs.md and the README tell readers to type, so the exercises cannot rot.
	docs, err := DocsPromQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range docs {
		exprs = append(exprs, expr{fmt.Sprintf("docs %s:%d", q.File, q.Line), q.Expr})
	}
	records, alerts := e2eRuleExprs(t)
	for _, r := range records {
		exprs = append(exprs, expr{"recording rule " + r[0] + " (its name)", r[0]}, expr{"recording rule " + r[0] + " (its expr)", r[1]})
	}
	for _, a := range alerts {
		exprs = append(exprs, expr{"alert " + a[0] + " (its expr)", a[1]})
	}
	if len(qs) == 0 || len(docs) == 0 || len(records) == 0 || len(alerts) == 0 {
		t.Fatalf("found %d dashboard queries, %d docs queries, %d recording rules, %d alerts", len(qs), len(docs), len(records), len(alerts))
	}
	// Empty results are allowed only where "nothing" is the right answer while no alert fires: the ALERTS
	// series and alert conditions (a threshold comparison is empty below the threshold).
	alertState := func(e expr) bool {
		return strings.Contains(e.q, "ALERTS") || strings.HasPrefix(e.where, "alert ")
	}

	// Keep a little traffic flowing (with a few errors) while the rules catch up.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e2eLoad(ctx, 10, 90*time.Second, 900, 4, func(i int) []e2eResp {
			if i%10 == 0 {
				return []e2eResp{e2eDo(lab.ShopURL, "GET", "/order/ord_missing", "/order/{id}", "", "")}
			}
			return e2eFlow(lab.ShopURL, i)
		}, newE2ETally())
	}()
	defer func() { cancel(); <-done }()

	pending := map[string]expr{}
	for _, e := range exprs {
		pending[e.where+"\x00"+e.q] = e
	}
	var emptyOK []string
	e2ePoll(t, "every dashboard and rule expression returns data", 75*time.Second, func() error {
		var still []string
		for k, e := range pending {
			typ, res, err := e2ePromQuery(lab.PrometheusURL, e.q)
			if err != nil {
				t.Errorf("%s: Prometheus refuses %q: %v", e.where, e.q, err)
				delete(pending, k)
				continue
			}
			// Data means a number: a p95 of no traffic is NaN, which a panel draws as nothing.
			for _, r := range res {
				if !math.IsNaN(r.Value) || typ == "scalar" {
					delete(pending, k)
					break
				}
			}
			if _, ok := pending[k]; !ok {
				continue
			}
			still = append(still, fmt.Sprintf("%s: %q", e.where, e.q))
		}
		// Once only alert-state expressions are left, they may stay empty.
		onlyAlertState := true
		for _, e := range pending {
			if !alertState(e) {
				onlyAlertState = false
			}
		}
		if onlyAlertState {
			for _, e := range pending {
				emptyOK = append(emptyOK, fmt.Sprintf("%s: %q", e.where, e.q))
			}
			return nil
		}
		sort.Strings(still)
		return fmt.Errorf("no data (or only NaN) yet from %d expressions:\n  %s", len(still), strings.Join(still, "\n  "))
	})
	t.Logf("%d expressions (dashboards: %d, docs: %d, recording rules: %d, alerts: %d) parsed and returned data (a number, not NaN)",
		len(exprs)-len(emptyOK), len(qs), len(docs), len(records), len(alerts))
	for _, e := range emptyOK {
		t.Logf("allowed to be empty because no alert fires now (alert state / alert condition): %s", e)
	}
}

// Prometheus scrapes every job of prometheus.yml (itself, the Collector's and Jaeger's own metrics,
// Alertmanager, ...): natively the rendered addresses, all on loopback, are the right ones.
func e2eScrapeTargets(t *testing.T, lab *e2eLab, st *e2eState) {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "prometheus", "prometheus.yml"))
	if err == nil {
		err = yaml.Unmarshal(b, &cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, sc := range cfg.ScrapeConfigs {
		want = append(want, sc.JobName)
	}
	e2ePoll(t, "every scrape target up", 30*time.Second, func() error {
		var r struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					ScrapeURL string            `json:"scrapeUrl"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := getJSON(lab.PrometheusURL+"/api/v1/targets?state=active", &r); err != nil {
			return err
		}
		health := map[string]string{}
		for _, tg := range r.Data.ActiveTargets {
			health[tg.Labels["job"]] = tg.Health + " " + tg.ScrapeURL + " " + tg.LastError
			if lab.native != nil && !strings.HasPrefix(tg.ScrapeURL, "http://127.0.0.1:") {
				t.Errorf("job %s scrapes %s, not loopback", tg.Labels["job"], tg.ScrapeURL)
			}
		}
		for _, job := range want {
			if !strings.HasPrefix(health[job], "up ") {
				return fmt.Errorf("job %q: %q (all: %v)", job, health[job], health)
			}
		}
		if len(health) != len(want) {
			return fmt.Errorf("jobs %v, want exactly %v", health, want)
		}
		return nil
	})
	// The Collector's own metrics show it accepted and sent the shop's data (collector/config.yaml asks for
	// names without unit and type suffixes; Jaeger's built-in Collector keeps the _total suffix).
	for _, q := range []string{
		`sum(otelcol_receiver_accepted_spans{job="otel-collector"})`,
		`sum(otelcol_exporter_sent_log_records{job="otel-collector",exporter="otlp_http/loki"})`,
		`sum(otelcol_exporter_sent_metric_points{job="otel-collector",exporter="prometheus_remote_write"})`,
		`sum(otelcol_receiver_accepted_spans_total{job="jaeger"})`,
	} {
		e2ePoll(t, q+" > 0", 30*time.Second, func() error {
			_, res, err := e2ePromQuery(lab.PrometheusURL, q)
			if err != nil {
				return err
			}
			if len(res) == 0 || !(res[0].Value > 0) {
				return fmt.Errorf("%s = %v", q, res)
			}
			return nil
		})
	}
	t.Logf("scrape targets up: %v; the Collector's and Jaeger's own metrics count the shop's spans and logs", want)
}

// e2eRuleExprs reads prometheus/rules/*.yml: [name, expr] of each recording rule and alert.
func e2eRuleExprs(t *testing.T) (records, alerts [][2]string) {
	t.Helper()
	files := promRuleFiles(t)
	for _, f := range slices.Sorted(maps.Keys(files)) {
		for _, g := range files[f].Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records = append(records, [2]string{r.Record, r.Expr})
				}
				if r.Alert != "" {
					alerts = append(alerts, [2]string{r.Alert, r.Expr})
				}
			}
		}
	}
	return records, alerts
}

// 3. Traces: an order's spans nested in Jaeger; a failed payment's trace carries the error and reason.
func e2eTraces(t *testing.T, lab *e2eLab, st *e2eState) {
	o := e2eOrder(lab.ShopURL, "MUG-OTEL")
	if o.Status != http.StatusCreated || o.TraceID == "" || !o.Sampled {
		t.Fatalf("POST /order: status %d, trace %q, sampled %v: %s", o.Status, o.TraceID, o.Sampled, o.Body)
	}
	st.orderTrace = o
	tr := e2eWaitTrace(t, lab, o.TraceID, "POST /order", "CreateOrder", "DeductInventory")
	root, _ := tr.span("POST /order")
	create, _ := tr.span("CreateOrder")
	deduct, _ := tr.span("DeductInventory")
	if root.SpanID != o.SpanID {
		t.Errorf("server span id %s, traceresponse says %s", root.SpanID, o.SpanID)
	}
	if root.parent() != "" {
		t.Errorf("POST /order has a parent %s; it is the root", root.parent())
	}
	if create.parent() != root.SpanID {
		t.Errorf("CreateOrder is CHILD_OF %q, want POST /order (%s)", create.parent(), root.SpanID)
	}
	if deduct.parent() != create.SpanID {
		t.Errorf("DeductInventory is CHILD_OF %q, want CreateOrder (%s)", deduct.parent(), create.SpanID)
	}
	for _, s := range []e2eJaegerSpan{root, create, deduct} {
		if svc := tr.service(s); svc != "minishop" {
			t.Errorf("span %s has service %q, want minishop", s.OperationName, svc)
		}
	}
	if k, _ := root.tag("span.kind"); k != "server" {
		t.Errorf("POST /order span.kind = %v, want server", k)
	}
	t.Logf("order trace %s: POST /order > CreateOrder > DeductInventory, service minishop", o.TraceID)

	e2eFailedPaymentTrace(t, lab, st)
}

// e2eFailedPaymentTrace makes every payment fail (fault injection), pays an order and checks the failed
// payment's trace in Jaeger; the fault is reset when the (sub)test ends.
func e2eFailedPaymentTrace(t *testing.T, lab *e2eLab, st *e2eState) {
	lab.fault(t, "-payment-failure-rate", "1")
	o := e2eOrder(lab.ShopURL, "TEE-BLK-M")
	if o.Status != http.StatusCreated {
		t.Fatalf("POST /order: %d %s", o.Status, o.Body)
	}
	p := e2ePay(lab.ShopURL, o.OrderID)
	if (p.Status != http.StatusPaymentRequired && p.Status != http.StatusGatewayTimeout) || p.Reason == "" || p.TraceID == "" {
		t.Fatalf("payment with failure rate 1: status %d reason %q trace %q: %s", p.Status, p.Reason, p.TraceID, p.Body)
	}
	st.failedPay = p
	tr := e2eWaitTrace(t, lab, p.TraceID, "POST /payment/pay", "ChargePayment")
	st.failedTrace = tr
	root, _ := tr.span("POST /payment/pay")
	charge, _ := tr.span("ChargePayment")
	if charge.parent() != root.SpanID {
		t.Errorf("ChargePayment is CHILD_OF %q, want POST /payment/pay (%s)", charge.parent(), root.SpanID)
	}
	isError := func(s e2eJaegerSpan) bool {
		code, _ := s.tag("otel.status_code")
		e, _ := s.tag("error")
		return code == "ERROR" || e == true
	}
	if !isError(charge) {
		t.Errorf("ChargePayment of a failed payment has no error status: tags %+v", charge.Tags)
	}
	if !isError(root) {
		t.Errorf("POST /payment/pay of a failed payment has no error status: tags %+v", root.Tags)
	}
	if r, _ := charge.tag("app.payment.failure_reason"); r != p.Reason {
		t.Errorf("ChargePayment app.payment.failure_reason = %v, the client got reason %q", r, p.Reason)
	}
	t.Logf("failed payment trace %s: HTTP %d, reason %s, error status on POST /payment/pay and ChargePayment", p.TraceID, p.Status, p.Reason)
}

// 4. Logs: the failed payment's log line is in Loki, found as a user finds it, and linked to its trace.
func e2eLogs(t *testing.T, lab *e2eLab, st *e2eState) {
	if st.failedPay.TraceID == "" {
		e2eFailedPaymentTrace(t, lab, st) // run alone: make a failed payment first
	}
	p := st.failedPay
	// The seed's query, narrowed to this request's trace id (structured metadata).
	q := `{app="minishop"} |= "payment failed" | trace_id="` + p.TraceID + `"`
	var line e2eLokiLine
	e2ePoll(t, "Loki: "+q, 30*time.Second, func() error {
		lines, err := e2eLokiLines(lab.LokiURL, q, st.labStart.Add(-time.Minute))
		if err != nil {
			return err
		}
		if len(lines) != 1 {
			return fmt.Errorf("%d lines, want 1", len(lines))
		}
		line = lines[0]
		return nil
	})
	l := line.Labels
	if l["app"] != "minishop" || l["service_name"] != "minishop" {
		t.Errorf("log labels %v: want app=minishop and service_name=minishop", l)
	}
	if l["reason"] != p.Reason || l["order_id"] == "" || l["amount_cents"] == "" || l["method"] == "" {
		t.Errorf("log labels %v: want reason=%q (what the client got), order_id, amount_cents, method", l, p.Reason)
	}
	for k := range l {
		if strings.HasPrefix(k, "telemetry_sdk_") {
			t.Errorf("log still has %s (collector's resource/drop-sdk should delete it)", k)
		}
	}
	// The same trace id is the trace Jaeger has, and the record's span is one of its spans.
	if st.failedTrace.TraceID == "" {
		st.failedTrace = e2eWaitTrace(t, lab, p.TraceID, "ChargePayment")
	}
	found := false
	for _, s := range st.failedTrace.Spans {
		found = found || s.SpanID == l["span_id"]
	}
	if !found {
		t.Errorf("log span_id %q is not a span of trace %s in Jaeger", l["span_id"], p.TraceID)
	}
	// The access log of the same request is there too, with its status.
	e2ePoll(t, "the access log of the failed payment in Loki", 15*time.Second, func() error {
		lines, err := e2eLokiLines(lab.LokiURL, `{app="minishop"} |~ "^request$" | trace_id="`+p.TraceID+`"`, st.labStart.Add(-time.Minute))
		if err != nil {
			return err
		}
		if len(lines) != 1 {
			return fmt.Errorf("%d access log lines with trace id %s, want 1", len(lines), p.TraceID)
		}
		if got := lines[0].Labels["status"]; got != strconv.Itoa(p.Status) {
			return fmt.Errorf("access log status %s, client saw %d", got, p.Status)
		}
		return nil
	})
	// app and service_name are index labels (what a stream selector can use); trace_id is structured
	// metadata only: one stream per request would blow up Loki's index.
	var labels struct {
		Data []string `json:"data"`
	}
	if err := getJSON(lab.LokiURL+"/loki/api/v1/labels?start="+strconv.FormatInt(st.labStart.Add(-time.Minute).UnixNano(), 10), &labels); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(labels.Data, "app") || !slices.Contains(labels.Data, "service_name") || slices.Contains(labels.Data, "trace_id") {
		t.Errorf("Loki's index labels %v: want app and service_name, and not trace_id", labels.Data)
	}
	t.Logf("Loki: %q (reason %s) carries trace %s / span %s, both in Jaeger; index labels %v; all labels %v", line.Line, l["reason"], l["trace_id"], l["span_id"], labels.Data, l)
}

// e2eLogQLWant is, for each LogQL query the README, docs and dashboards show, how many lines it must
// return over a window of known traffic (from what the client saw). A new query needs its line here.
var e2eLogQLWant = map[string]func(tally *e2eTally) int{
	// One line per failed payment (402 declined or insufficient funds, 504 gateway timeout).
	`{app="minishop"} |= "payment failed"`: func(tally *e2eTally) int {
		return tally.count(func(r e2eResp) bool { return r.Route == "/payment/pay" && (r.Status == 402 || r.Status == 504) })
	},
	// The gateway's side of the same failures: one "charge declined" (402) or "charge failed" (504) per failed
	// payment (a replayed answer logs "idempotent replay" instead).
	`{app="payment-gateway"} |~ "charge (declined|failed)"`: func(tally *e2eTally) int {
		return tally.count(func(r e2eResp) bool { return r.Route == "/payment/pay" && (r.Status == 402 || r.Status == 504) })
	},
	// One access-log line per 5xx response.
	`{app="minishop"} | status >= 500`: func(tally *e2eTally) int {
		return tally.count(func(r e2eResp) bool { return r.Status >= 500 })
	},
}

// 4b. Every LogQL query of the README, the docs and the dashboards runs against real Loki and returns
// exactly as many lines as the client's requests call for.
func e2eLogQL(t *testing.T, lab *e2eLab, st *e2eState) {
	var queries []string
	docs, err := DocsQueries(repoRoot, "logql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range docs {
		queries = append(queries, q.Expr)
	}
	dash, err := DashboardLogQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range dash {
		queries = append(queries, q.Expr)
	}
	if len(docs) == 0 || len(dash) == 0 {
		t.Fatalf("found %d LogQL queries in the docs and %d in the dashboards", len(docs), len(dash))
	}
	slices.Sort(queries)
	queries = slices.Compact(queries)
	for _, q := range queries {
		if e2eLogQLWant[q] == nil {
			t.Errorf("LogQL query %q (docs or dashboards) has no expected count in e2eLogQLWant", q)
		}
	}

	// Known traffic: half the payments fail, with the usual mix of reasons (some are 504s).
	lab.fault(t, "-payment-failure-rate", "0.5")
	start := time.Now()
	tally := newE2ETally()
	for i := 0; i < 60; i++ {
		tally.add(e2eFlow(lab.ShopURL, i)...)
	}
	if len(tally.Transport) > 0 {
		t.Fatal(tally.Transport)
	}
	t.Logf("sent %d requests, statuses %v", tally.total(), tally.statusMix())
	for _, q := range queries {
		want := e2eLogQLWant[q]
		if want == nil {
			continue
		}
		n := want(tally)
		if n == 0 {
			t.Fatalf("%q: the traffic gave it nothing to find (statuses %v)", q, tally.statusMix())
		}
		e2ePollHeld(t, fmt.Sprintf("Loki: %s returns %d lines", q, n), 30*time.Second, 2*time.Second, func() error {
			lines, err := e2eLokiLines(lab.LokiURL, q, start)
			if err != nil {
				return err
			}
			if len(lines) != n {
				return fmt.Errorf("%d lines, the client's requests call for %d", len(lines), n)
			}
			return nil
		})
		t.Logf("Loki: %s -> %d lines, as the client saw", q, n)
	}
}

// 4c. Freshness: how soon after its response a request's trace is in Jaeger and its access log in Loki
// (what a user pasting a trace id from curl meets). Measured over many requests; the deadline is generous,
// the numbers go in the log.
func e2eFreshness(t *testing.T, lab *e2eLab, st *e2eState) {
	const n = 40
	start := time.Now()
	var mu sync.Mutex
	answered := map[string]time.Time{}
	sent := make(chan error, 1)
	go func() { // the client: 10 requests/s while the poll below watches Jaeger and Loki
		defer close(sent)
		for i := 0; i < n; i++ {
			o := e2eOrder(lab.ShopURL, e2eSKUs[i%len(e2eSKUs)])
			if o.TraceID == "" || o.Err != nil {
				sent <- fmt.Errorf("POST /order: %d %v", o.Status, o.Err)
				return
			}
			mu.Lock()
			answered[o.TraceID] = time.Now()
			mu.Unlock()
			time.Sleep(100 * time.Millisecond) // pacing: 10 requests/s, not waiting for a result
		}
	}()
	traceSeen, logSeen := map[string]time.Duration{}, map[string]time.Duration{}
	e2ePoll(t, fmt.Sprintf("all %d traces in Jaeger and access logs in Loki", n), 30*time.Second, func() error {
		lines, err := e2eLokiLines(lab.LokiURL, `{app="minishop"} |~ "^request$" | route="/order"`, start)
		if err != nil {
			return err
		}
		mu.Lock()
		ans := maps.Clone(answered)
		mu.Unlock()
		now := time.Now()
		for _, l := range lines {
			id := l.Labels["trace_id"]
			if at, ok := ans[id]; ok && logSeen[id] == 0 {
				logSeen[id] = now.Sub(at)
			}
		}
		var pending []string
		for id := range ans {
			if traceSeen[id] == 0 {
				pending = append(pending, id)
			}
		}
		bad := e2eCheckTraces(lab.JaegerURL, pending, func(string, e2eJaegerTrace) error { return nil })
		for _, id := range pending {
			if bad[id] == nil {
				traceSeen[id] = now.Sub(ans[id])
			}
		}
		if len(traceSeen) < n || len(logSeen) < n {
			return fmt.Errorf("%d of %d traces, %d of %d access logs so far", len(traceSeen), n, len(logSeen), n)
		}
		return nil
	})
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	stats := func(m map[string]time.Duration) (p50, max time.Duration) {
		d := slices.Sorted(maps.Values(m))
		return d[len(d)/2].Round(10 * time.Millisecond), d[len(d)-1].Round(10 * time.Millisecond)
	}
	tp50, tmax := stats(traceSeen)
	lp50, lmax := stats(logSeen)
	t.Logf("FRESHNESS on the %s lab, %d requests at 10/s, polled while they are sent (every ~250 ms plus the queries' time, so up to that much late):", lab.Name, n)
	t.Logf("  trace queryable in Jaeger after the response: p50 %v, max %v", tp50, tmax)
	t.Logf("  access log queryable in Loki after the response: p50 %v, max %v", lp50, lmax)
}

// 5. Exemplars on the latency histogram point at traces that exist in Jaeger.
func e2eExemplars(t *testing.T, lab *e2eLab, st *e2eState) {
	if st.orderTrace.TraceID == "" {
		e2eMixedTraffic(t, lab.ShopURL, 10)
	}
	type exemplarSeries struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
		} `json:"exemplars"`
	}
	var ids []string
	e2ePoll(t, "exemplars on request_duration_seconds_bucket", 30*time.Second, func() error {
		now := time.Now()
		q := url.Values{"query": {`request_duration_seconds_bucket{job="minishop"}`},
			"start": {strconv.FormatInt(now.Add(-30*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)}}
		var r struct {
			Status string           `json:"status"`
			Data   []exemplarSeries `json:"data"`
		}
		if err := getJSON(lab.PrometheusURL+"/api/v1/query_exemplars?"+q.Encode(), &r); err != nil {
			return err
		}
		if r.Status != "success" {
			return fmt.Errorf("query_exemplars: status %q", r.Status)
		}
		seen := map[string]bool{}
		ids = ids[:0]
		for _, s := range r.Data {
			for _, e := range s.Exemplars {
				id := e.Labels["trace_id"]
				if id == "" {
					return fmt.Errorf("exemplar without trace_id on %v: %v", s.SeriesLabels, e.Labels)
				}
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		if len(ids) == 0 {
			return fmt.Errorf("no exemplars yet")
		}
		return nil
	})
	check := e2eSample(ids, 300)
	bad := e2eCheckTraces(lab.JaegerURL, check, func(id string, tr e2eJaegerTrace) error {
		if tr.TraceID != id {
			return fmt.Errorf("Jaeger answered trace %s", tr.TraceID)
		}
		return nil
	})
	if len(bad) > 0 {
		t.Errorf("%d of %d exemplar trace ids are not in Jaeger:\n%s", len(bad), len(check), e2eSomeErrors(bad, 10))
	}
	t.Logf("%d distinct exemplar trace ids in Prometheus; checked %d in Jaeger (%s): %d found", len(ids), len(check),
		map[bool]string{true: "all", false: "a random sample"}[len(check) == len(ids)], len(check)-len(bad))
}

// 8. Volume: a few hundred requests per second for ~20s; exact counts and every trace in Jaeger.
func e2eVolume(t *testing.T, lab *e2eLab, st *e2eState) {
	ctx := context.Background()
	// Shelves refilled every 200ms so that most orders succeed; everything else as compose runs it.
	if lab.native != nil {
		defer e2eShopWith(t, lab.native, "MINISHOP_RESTOCK_INTERVAL=200ms")()
	}
	e2eSettle(t, lab)
	before, err := e2eCounterSnapshot(lab.PrometheusURL, "request_total")
	if err != nil {
		t.Fatal(err)
	}
	tally := newE2ETally()
	const flowsPerSecond, seconds = 150, 20 // two requests per flow: ~300 requests/s
	started, elapsed := e2eLoad(ctx, flowsPerSecond, seconds*time.Second, flowsPerSecond*seconds, 64,
		func(i int) []e2eResp { return e2eFlow(lab.ShopURL, i) }, tally)
	n := tally.total()
	rps := float64(n) / elapsed.Seconds()
	t.Logf("volume: %d flows, %d requests in %s = %.0f requests/s; statuses %v; %d without answer",
		started, n, elapsed.Round(time.Millisecond), rps, tally.statusMix(), len(tally.Transport))
	if len(tally.Transport) > 0 {
		t.Fatalf("%d requests got no answer, e.g. %v", len(tally.Transport), tally.Transport[0])
	}
	if rps < 150 {
		t.Errorf("the load reached only %.0f requests/s; the test wants a few hundred", rps)
	}
	wantReq, _ := tally.want()
	e2eExpectCounts(t, lab, "request_total", before, wantReq, 60*time.Second)

	// Every sampled trace: each one checked, not a sample.
	var ids []string
	byID := map[string]e2eResp{}
	unsampled := 0
	for _, r := range tally.All {
		if !r.Sampled {
			unsampled++
			continue
		}
		ids = append(ids, r.TraceID)
		byID[r.TraceID] = r
	}
	if unsampled > 0 {
		t.Logf("%d responses were not sampled (traceresponse flags 00); not looked for in Jaeger", unsampled)
	}
	spans := func(r e2eResp) []string {
		switch {
		case r.Route == "/order" && r.Status == http.StatusCreated:
			return []string{"POST /order", "CreateOrder", "DeductInventory"}
		case r.Route == "/payment/pay" && (r.Status == http.StatusOK || r.Status == http.StatusPaymentRequired || r.Status == http.StatusGatewayTimeout):
			// Answered by the payment gateway: its spans are part of the trace.
			return []string{"POST /payment/pay", "ChargePayment", "POST /v1/charges", "FraudCheck", "Authorize"}
		case r.Route == "/payment/pay":
			return []string{"POST /payment/pay"}
		}
		return []string{"POST " + r.Route}
	}
	check := func(id string, tr e2eJaegerTrace) error {
		r := byID[id]
		for _, op := range spans(r) {
			if _, ok := tr.span(op); !ok {
				return fmt.Errorf("no %s span (have %d spans)", op, len(tr.Spans))
			}
		}
		root, _ := tr.span("POST " + r.Route)
		if root.SpanID != r.SpanID {
			return fmt.Errorf("server span %s, client saw %s", root.SpanID, r.SpanID)
		}
		return nil
	}
	t0 := time.Now()
	var bad map[string]error
	e2ePoll(t, fmt.Sprintf("all %d sampled traces complete in Jaeger", len(ids)), 60*time.Second, func() error {
		bad = e2eCheckTraces(lab.JaegerURL, ids, check)
		if len(bad) > 0 {
			ids = ids[:0]
			for id := range bad {
				ids = append(ids, id) // look again only at the missing ones
			}
			return fmt.Errorf("%d traces missing or incomplete, e.g.:\n%s", len(bad), e2eSomeErrors(bad, 5))
		}
		return nil
	})
	t.Logf("all %d sampled traces (every one, not a sample) found complete in Jaeger, checked in %s", len(byID), time.Since(t0).Round(time.Millisecond))
}

// Throughput with telemetry on (through the real Collector) vs off (OTEL_SDK_DISABLED=true), same load,
// one run each: a measurement for the report, not an assertion.
func e2eThroughput(t *testing.T, lab *e2eLab, st *e2eState) {
	ctx := context.Background()
	defer func() {
		if err := lab.native.RestartShop(ctx); err != nil {
			t.Errorf("restarting the shop with its defaults: %v", err)
		}
	}()
	measure := func(env ...string) (rps float64, p50, p99 time.Duration) {
		if err := lab.native.RestartShop(ctx, append(env, "MINISHOP_RESTOCK_INTERVAL=100ms")...); err != nil {
			t.Fatal(err)
		}
		// Closed loop: 16 clients, each creating an order and reading it back, as fast as the shop answers.
		run := func(d time.Duration) *e2eTally {
			tally := newE2ETally()
			e2eLoad(ctx, 1e6, d, 1<<30, 16, func(i int) []e2eResp {
				o := e2eOrder(lab.ShopURL, e2eSKUs[i%len(e2eSKUs)])
				if o.OrderID == "" {
					return []e2eResp{o}
				}
				return []e2eResp{o, e2eDo(lab.ShopURL, "GET", "/order/"+o.OrderID, "/order/{id}", "", "")}
			}, tally)
			return tally
		}
		run(time.Second) // warm up
		const d = 6 * time.Second
		start := time.Now()
		tally := run(d)
		el := time.Since(start)
		if len(tally.Transport) > 0 {
			t.Fatalf("%d requests without answer: %v", len(tally.Transport), tally.Transport[0])
		}
		var lat []time.Duration
		for _, r := range tally.All {
			lat = append(lat, r.Elapsed)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return float64(len(lat)) / el.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100]
	}
	onRPS, onP50, onP99 := measure()
	offRPS, offP50, offP99 := measure("OTEL_SDK_DISABLED=true")
	t.Logf("THROUGHPUT (16 closed-loop clients, POST /order + GET /order/{id}, 6s each, load generator on the same 2 cores):")
	t.Logf("  telemetry on  (OTLP to the real Collector): %7.0f requests/s, p50 %v, p99 %v", onRPS, onP50.Round(10*time.Microsecond), onP99.Round(10*time.Microsecond))
	t.Logf("  telemetry off (OTEL_SDK_DISABLED=true):     %7.0f requests/s, p50 %v, p99 %v", offRPS, offP50.Round(10*time.Microsecond), offP99.Round(10*time.Microsecond))
	t.Logf("  on/off ratio: %.2f", onRPS/offRPS)
	if e2eRaceDetector {
		t.Logf("  (this test binary runs under -race: the instrumented load generator, not the shop, limits both runs, so the ratio understates the telemetry's cost; run without -race for the real number: go test -run '^TestE2E$/Throughput' -v .)")
	}
	if math.IsNaN(onRPS / offRPS) {
		t.Errorf("no measurement")
	}
}

// 7a. Resilience: the Collector stops under load; the shop answers as before with bounded memory; after
// the Collector is back, new data flows again.
func e2eCollectorOutage(t *testing.T, lab *e2eLab, st *e2eState) {
	ctx := context.Background()
	// No simulated payment failures, so that the status mix is exact: 201 for each order, 200 for each payment.
	defer e2eShopWith(t, lab.native, "MINISHOP_RESTOCK_INTERVAL=100ms")()
	lab.fault(t, "-payment-failure-rate", "0") // the payment gateway holds it
	e2eSettle(t, lab)
	before, err := e2eCounterSnapshot(lab.PrometheusURL, "request_total")
	if err != nil {
		t.Fatal(err)
	}
	all := newE2ETally()
	phase := func(name string, d time.Duration) *e2eTally {
		tally := newE2ETally()
		e2eLoad(ctx, 50, d, int(50*d.Seconds()), 16, func(i int) []e2eResp {
			rs := e2eFlow(lab.ShopURL, i)
			all.add(rs...)
			return rs
		}, tally)
		var lat []time.Duration
		for _, r := range tally.All {
			lat = append(lat, r.Elapsed)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		t.Logf("%s: %d requests, statuses %v, p99 latency %v, %d without answer", name, tally.total(), tally.statusMix(), lat[len(lat)*99/100], len(tally.Transport))
		return tally
	}
	pid := lab.native.PID(nativelab.Shop)
	up := phase("collector up", 5*time.Second)
	rssBefore, err := nativelab.RSSKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.native.StopCollector(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	down := phase("collector down", 15*time.Second)
	rssAfter, err := nativelab.RSSKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shop VmRSS %d KiB before the outage, %d KiB after 15s of load without a Collector", rssBefore, rssAfter)
	for name, tally := range map[string]*e2eTally{"up": up, "down": down} {
		mix := tally.statusMix()
		if len(tally.Transport) > 0 || len(mix) != 2 || mix[201] == 0 || mix[201] != mix[200] {
			t.Errorf("collector %s: status mix %v (%d without answer); want only 201 for each order and 200 for each payment", name, mix, len(tally.Transport))
		}
	}
	if rssAfter > rssBefore+64*1024 {
		t.Errorf("shop RSS grew from %d KiB to %d KiB while the Collector was down (bound: +64 MiB)", rssBefore, rssAfter)
	}

	if err := lab.native.StartCollector(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("collector was down for %s and is back", time.Since(stoppedAt).Round(100*time.Millisecond))
	// New data flows again: a new request's trace reaches Jaeger (the SDK reconnects with backoff) ...
	var o e2eResp
	e2ePoll(t, "a new trace through the restarted Collector", 90*time.Second, func() error {
		o = e2eOrder(lab.ShopURL, "STICKER-PACK")
		all.add(o)
		if o.Status != http.StatusCreated {
			return fmt.Errorf("POST /order: %d", o.Status)
		}
		return poll(5*time.Second, 250*time.Millisecond, func() error {
			_, err := e2eJaegerGet(lab.JaegerURL, o.TraceID)
			return err
		})
	})
	// ... and the counters move: cumulative, so they catch up with everything this shop served, the
	// outage included.
	wantReq, _ := all.want()
	e2eExpectCounts(t, lab, "request_total", before, wantReq, 60*time.Second)
	t.Logf("after the restart Jaeger has the new trace %s and request_total counts all %d requests of this shop, the outage included", o.TraceID, all.total())
}

// 7b. SIGTERM: a shop whose telemetry would only leave on shutdown delivers every completed request's
// spans and logs when it is told to stop.
func e2eShutdownFlush(t *testing.T, lab *e2eLab, st *e2eState) {
	// Ten minutes between exports: nothing leaves the shop before its shutdown flush. Fewer spans and log
	// records than one export batch (512), so no batch leaves early either.
	defer e2eShopWith(t, lab.native, "OTEL_BSP_SCHEDULE_DELAY=600000", "OTEL_BLRP_SCHEDULE_DELAY=600000", "OTEL_METRIC_EXPORT_INTERVAL=600000")()
	lab.fault(t, "-payment-failure-rate", "0.3") // the payment gateway holds it
	e2eSettle(t, lab)
	before, err := e2eCounterSnapshot(lab.PrometheusURL, "request_total")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tally := newE2ETally()
	for i := 0; i < 40; i++ {
		tally.add(e2eFlow(lab.ShopURL, i)...)
	}
	if len(tally.Transport) > 0 {
		t.Fatal(tally.Transport)
	}
	// The lines in Loki of this test's requests, by trace id (the shop is the only traffic now).
	linesByTrace := func() map[string][]string {
		lines, err := e2eLokiLines(lab.LokiURL, `{app="minishop"}`, start)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, l := range lines {
			m[l.Labels["trace_id"]] = append(m[l.Labels["trace_id"]], l.Line)
		}
		return m
	}
	var ids []string
	byID := map[string]e2eResp{}
	for _, r := range tally.All {
		ids = append(ids, r.TraceID)
		byID[r.TraceID] = r
	}
	// The shop's own spans of a trace (the payment gateway exports its spans of the same traces on its own).
	shopSpans := func(tr e2eJaegerTrace) int {
		n := 0
		for _, s := range tr.Spans {
			if tr.service(s) == "minishop" {
				n++
			}
		}
		return n
	}
	// Before the signal: none of it has left the shop (else this test proves nothing).
	early := e2eCheckTraces(lab.JaegerURL, ids, func(_ string, tr e2eJaegerTrace) error {
		if shopSpans(tr) == 0 {
			return errE2ETraceNotFound
		}
		return nil
	})
	if len(early) != len(ids) {
		t.Fatalf("%d of %d traces reached Jaeger before SIGTERM; the long export delays did not hold them", len(ids)-len(early), len(ids))
	}
	if m := linesByTrace(); len(m) > 0 {
		t.Fatalf("log lines of %d traces arrived before SIGTERM", len(m))
	}

	exit, err := lab.native.SignalShop(syscall.SIGTERM, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if exit != nil {
		t.Errorf("shop exited with %v after SIGTERM, want status 0", exit)
	}
	t.Logf("shop exited after SIGTERM (%v); %d requests (%d traces) were completed before", exit, tally.total(), len(ids))

	check := func(id string, tr e2eJaegerTrace) error {
		r := byID[id]
		want := map[string]int{"/order": 3, "/payment/pay": 2}[r.Route]
		if n := shopSpans(tr); n < want {
			return fmt.Errorf("%d spans of minishop, want %d", n, want)
		}
		return nil
	}
	pending := ids
	e2ePoll(t, "every completed request's trace in Jaeger after the shutdown flush", 30*time.Second, func() error {
		bad := e2eCheckTraces(lab.JaegerURL, pending, check)
		pending = pending[:0]
		for id := range bad {
			pending = append(pending, id)
		}
		if len(bad) > 0 {
			return fmt.Errorf("%d of %d traces missing or incomplete:\n%s", len(bad), len(ids), e2eSomeErrors(bad, 5))
		}
		return nil
	})
	var logs map[string][]string
	e2ePoll(t, "every completed request's access log in Loki", 30*time.Second, func() error {
		logs = linesByTrace()
		var missing []string
		for _, id := range ids {
			if !slices.Contains(logs[id], "request") {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d access logs missing, e.g. %v", len(missing), len(ids), missing[:min(3, len(missing))])
		}
		return nil
	})
	// Payment outcome logs too: one "payment succeeded" or "payment failed" per payment.
	pays := 0
	for _, r := range tally.All {
		if r.Route == "/payment/pay" {
			pays++
			if !slices.ContainsFunc(logs[r.TraceID], func(l string) bool { return strings.HasPrefix(l, "payment ") }) {
				t.Errorf("no payment outcome log for trace %s (HTTP %d)", r.TraceID, r.Status)
			}
		}
	}
	// And the final metric export: the counters equal what was served.
	wantReq, _ := tally.want()
	e2eExpectCounts(t, lab, "request_total", before, wantReq, 30*time.Second)
	t.Logf("after SIGTERM: all %d traces complete in Jaeger, %d access logs and %d payment logs received, request_total exact", len(ids), len(ids), pays)
}
