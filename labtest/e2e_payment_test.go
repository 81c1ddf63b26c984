package labtest

// A payment across three services (issue 11): the real loadgen pays orders through the shop, which
// charges the payment gateway over HTTP. Jaeger must show one trace per payment over loadgen, minishop
// and payment-gateway, nested across the process boundaries; its dependencies API the two edges; its
// Monitor tab's API (SPM) RED metrics for each service, computed by the Collector's span_metrics
// connector and read back from Prometheus. A gateway that answers too late is retried with the same
// Idempotency-Key and charges once.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func e2ePaymentAcrossServices(t *testing.T, lab *e2eLab, st *e2eState) {
	start := time.Now()
	loadgen := buildRepoProgram(t, "./loadgen")
	e2eLoadgenTraces(t, lab, loadgen, start)
	e2eDependencies(t, lab)
	e2eGatewayAnswersTravelBack(t, lab, st)
	e2eIdempotentRetry(t, lab)
	e2eMonitorTab(t, lab, loadgen)
}

// e2eLoadgen runs the real load generator (bin: ./loadgen built) against the lab, its traces going to
// the lab's Collector like the compose service's.
func e2eLoadgen(ctx context.Context, lab *e2eLab, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, append([]string{"-target", lab.ShopURL, "-report-interval", "1m"}, args...)...)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+lab.CollectorOTLP, "OTEL_BSP_SCHEDULE_DELAY=500",
		"OTEL_SERVICE_NAME=loadgen", "OTEL_RESOURCE_ATTRIBUTES=")
	return cmd
}

// e2eLoadgenTraces runs the real loadgen for a few seconds and finds its payments' traces in Jaeger.
func e2eLoadgenTraces(t *testing.T, lab *e2eLab, loadgen string, since time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e2eLoadgen(ctx, lab, loadgen, "-rate", "20", "-requests", "40", "-pay-rate", "1", "-bad-rate", "0", "-lookup-rate", "0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("loadgen: %v\n%s", err, out)
	}

	// Every payment-gateway span of these traces must hang off the chain
	// loadgen root > loadgen POST /payment/pay (client) > minishop POST /payment/pay (server) > ChargePayment
	// > payment-gateway POST /v1/charges (server) > FraudCheck, Authorize.
	var found int
	e2ePoll(t, "loadgen > minishop > payment-gateway traces in Jaeger", 60*time.Second, func() error {
		traces, err := e2eJaegerSearch(lab.JaegerURL, "payment-gateway", "POST /v1/charges", since, 100)
		if err != nil {
			return err
		}
		found = 0
		for _, tr := range traces {
			if err := e2eCheckPaymentChain(tr); err != nil {
				return fmt.Errorf("trace %s: %w", tr.TraceID, err)
			}
			found++
		}
		if found < 5 {
			return fmt.Errorf("%d complete three-service payment traces so far, want at least 5", found)
		}
		return nil
	})
	t.Logf("%d payment traces from the loadgen, each loadgen > minishop > payment-gateway with FraudCheck and Authorize", found)
}

// e2eCheckPaymentChain checks the parentage of one payment trace across the three services.
func e2eCheckPaymentChain(tr e2eJaegerTrace) error {
	byID := map[string]e2eJaegerSpan{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	parentOf := func(s e2eJaegerSpan) (e2eJaegerSpan, error) {
		p, ok := byID[s.parent()]
		if !ok {
			return p, fmt.Errorf("span %s (%s) has parent %q, not in the trace yet", s.OperationName, tr.service(s), s.parent())
		}
		return p, nil
	}
	want := func(s e2eJaegerSpan, service, op, kind string) error {
		k, _ := s.tag("span.kind")
		if tr.service(s) != service || s.OperationName != op || (kind != "" && k != kind) {
			return fmt.Errorf("span %s/%s (kind %v), want %s/%s (kind %s)", tr.service(s), s.OperationName, k, service, op, kind)
		}
		return nil
	}
	var gw []e2eJaegerSpan
	for _, s := range tr.Spans {
		if tr.service(s) == "payment-gateway" && s.OperationName == "POST /v1/charges" {
			gw = append(gw, s)
		}
	}
	if len(gw) == 0 {
		return fmt.Errorf("no payment-gateway span")
	}
	chain := []struct{ service, op, kind string }{
		{"minishop", "ChargePayment", "client"},
		{"minishop", "POST /payment/pay", "server"},
		{"loadgen", "POST /payment/pay", "client"},
	}
	for _, g := range gw {
		if err := want(g, "payment-gateway", "POST /v1/charges", "server"); err != nil {
			return err
		}
		s := g
		for _, c := range chain {
			p, err := parentOf(s)
			if err != nil {
				return err
			}
			if err := want(p, c.service, c.op, c.kind); err != nil {
				return fmt.Errorf("parent of %s/%s: %w", tr.service(s), s.OperationName, err)
			}
			s = p
		}
		if rootSpan, err := parentOf(s); err != nil || tr.service(rootSpan) != "loadgen" || rootSpan.parent() != "" {
			return fmt.Errorf("the loadgen's request span should hang off the loadgen's journey root (%v)", err)
		}
	}
	// A first charge has its own children; a replay (a retry) has none.
	children := map[string]int{}
	for _, s := range tr.Spans {
		if p, ok := byID[s.parent()]; ok && tr.service(p) == "payment-gateway" && (s.OperationName == "FraudCheck" || s.OperationName == "Authorize") {
			children[p.SpanID]++
		}
	}
	for _, g := range gw {
		if replay, _ := g.tag("app.payment.idempotent_replay"); replay != true && children[g.SpanID] != 2 {
			return fmt.Errorf("gateway span %s has %d of FraudCheck, Authorize as children", g.SpanID, children[g.SpanID])
		}
	}
	return nil
}

// e2eDependencies: Jaeger's dependency graph (the System Architecture view) has the chain's two edges.
func e2eDependencies(t *testing.T, lab *e2eLab) {
	e2ePoll(t, "Jaeger dependencies loadgen -> minishop -> payment-gateway", 30*time.Second, func() error {
		var r struct {
			Data []struct {
				Parent    string `json:"parent"`
				Child     string `json:"child"`
				CallCount int    `json:"callCount"`
			} `json:"data"`
		}
		q := url.Values{"endTs": {strconv.FormatInt(time.Now().UnixMilli(), 10)}, "lookback": {"3600000"}}
		if err := getJSON(lab.JaegerURL+"/api/dependencies?"+q.Encode(), &r); err != nil {
			return err
		}
		edges := map[string]int{}
		for _, d := range r.Data {
			edges[d.Parent+" -> "+d.Child] = d.CallCount
		}
		for _, e := range []string{"loadgen -> minishop", "minishop -> payment-gateway"} {
			if edges[e] == 0 {
				return fmt.Errorf("no edge %s in %v", e, edges)
			}
		}
		t.Logf("Jaeger dependencies: %v", edges)
		return nil
	})
}

// e2eGatewayAnswersTravelBack: a failed payment is the gateway's decline: its span in the same trace
// says the reason the shop answered and logged. (It also gives the Monitor tab an error to show.)
func e2eGatewayAnswersTravelBack(t *testing.T, lab *e2eLab, st *e2eState) {
	t.Run("failed payment", func(t *testing.T) { e2eFailedPaymentTrace(t, lab, st) }) // its fault is reset when it ends
	tr := e2eWaitTrace(t, lab, st.failedPay.TraceID, "POST /v1/charges", "Authorize")
	g, _ := tr.span("POST /v1/charges")
	if outcome, _ := g.tag("app.payment.outcome"); outcome != st.failedPay.Reason || tr.service(g) != "payment-gateway" {
		t.Errorf("gateway span of the failed payment: service %s, app.payment.outcome %v; the shop answered %q",
			tr.service(g), outcome, st.failedPay.Reason)
	}
}

// e2eIdempotentRetry: every gateway answer comes too late once; the shop retries with the same key and
// the order is charged exactly once.
func e2eIdempotentRetry(t *testing.T, lab *e2eLab) {
	lab.fault(t, "-payment-timeout-rate", "1", "-payment-failure-rate", "0")
	o := e2eOrder(lab.ShopURL, "STICKER-PACK")
	if o.Status != http.StatusCreated {
		t.Fatalf("POST /order: %d %s", o.Status, o.Body)
	}
	p := e2ePay(lab.ShopURL, o.OrderID)
	if p.Status != http.StatusOK {
		t.Fatalf("payment with a late first answer: %d %s, want 200 after the retry", p.Status, p.Body)
	}
	var charges struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
	}
	if err := getJSON(lab.GatewayURL+"/v1/charges?reference="+o.OrderID, &charges); err != nil {
		t.Fatal(err)
	}
	if len(charges.Data) != 1 || charges.Data[0].Status != "succeeded" {
		t.Fatalf("charges of %s at the gateway: %+v, want exactly one, succeeded", o.OrderID, charges.Data)
	}
	var payID struct {
		PaymentID string `json:"payment_id"`
	}
	_ = json.Unmarshal(p.Body, &payID)
	if payID.PaymentID != charges.Data[0].ID {
		t.Errorf("the shop's payment_id %q is not the one charge %q", payID.PaymentID, charges.Data[0].ID)
	}

	// The trace: ChargePayment with two gateway server spans, the retry a replay.
	var tr e2eJaegerTrace
	e2ePoll(t, "the retried payment's trace with both gateway attempts", 30*time.Second, func() error {
		var err error
		if tr, err = e2eJaegerGet(lab.JaegerURL, p.TraceID); err != nil {
			return err
		}
		charge, ok := tr.span("ChargePayment")
		if !ok {
			return fmt.Errorf("no ChargePayment yet")
		}
		var attempts, replays int
		for _, s := range tr.Spans {
			if s.OperationName == "POST /v1/charges" && s.parent() == charge.SpanID {
				attempts++
				if r, _ := s.tag("app.payment.idempotent_replay"); r == true {
					replays++
				}
			}
		}
		if attempts != 2 || replays != 1 {
			return fmt.Errorf("%d gateway attempts under ChargePayment (%d replays), want 2 (1)", attempts, replays)
		}
		if n, _ := charge.tag("http.request.resend_count"); fmt.Sprint(n) != "1" {
			return fmt.Errorf("ChargePayment http.request.resend_count = %v, want 1", n)
		}
		return nil
	})
	t.Logf("late gateway answer: paid after %s with one retry, one charge (%s), the retry a replay in trace %s",
		p.Elapsed.Round(10*time.Millisecond), charges.Data[0].ID, p.TraceID)
}

// e2eMonitorTab: Jaeger's SPM API answers calls, latencies and errors for every service from
// Prometheus (the loadgen has client spans only, so it is asked for those).
func e2eMonitorTab(t *testing.T, lab *e2eLab, loadgen string) {
	// Load while the Monitor tab is asked: a rate needs two samples apart, and a series that a burst made
	// in one go (the loadgen's above) has none.
	ctx, cancel := context.WithCancel(context.Background())
	load := e2eLoadgen(ctx, lab, loadgen, "-rate", "5", "-duration", "5m")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = load.Wait() }()
	for _, svc := range []struct{ name, kind string }{{"loadgen", "client"}, {"minishop", "server"}, {"payment-gateway", "server"}} {
		for _, m := range []struct{ path, extra string }{{"calls", ""}, {"latencies", "&quantile=0.95"}, {"errors", ""}} {
			what := fmt.Sprintf("Jaeger /api/metrics/%s for %s (%s spans)", m.path, svc.name, svc.kind)
			var last float64
			e2ePoll(t, what, 90*time.Second, func() error {
				u := fmt.Sprintf("%s/api/metrics/%s?service=%s&spanKind=%s&lookback=600000&step=5000&ratePer=300000%s",
					lab.JaegerURL, m.path, svc.name, svc.kind, m.extra)
				v, err := e2eSPMLatest(u, svc.name)
				if err != nil {
					return err
				}
				// The shop's error rate includes the failed payment made above; the others may well be 0.
				if (m.path != "errors" || svc.name == "minishop") && !(v > 0) {
					return fmt.Errorf("latest value %v, want > 0", v)
				}
				last = v
				return nil
			})
			t.Logf("%s: %.4g", what, last)
		}
	}
}

// e2eSPMLatest fetches one SPM query and answers the newest number of the service's series.
func e2eSPMLatest(u, service string) (float64, error) {
	var r struct {
		Metrics []struct {
			Labels []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"labels"`
			MetricPoints []struct {
				GaugeValue struct {
					DoubleValue any `json:"doubleValue"` // a number, or "NaN"
				} `json:"gaugeValue"`
			} `json:"metricPoints"`
		} `json:"metrics"`
	}
	if err := getJSON(u, &r); err != nil {
		return 0, err
	}
	for _, m := range r.Metrics {
		for _, l := range m.Labels {
			if l.Name != "service_name" || l.Value != service {
				continue
			}
			for i := len(m.MetricPoints) - 1; i >= 0; i-- {
				if f, ok := m.MetricPoints[i].GaugeValue.DoubleValue.(float64); ok && !math.IsNaN(f) {
					return f, nil
				}
			}
			return 0, fmt.Errorf("series for %s has %d points, none a number yet", service, len(m.MetricPoints))
		}
	}
	return 0, fmt.Errorf("no series for service_name=%s among %d", service, len(r.Metrics))
}

// e2eJaegerSearch finds traces of a service and operation since a time (Jaeger's search API).
func e2eJaegerSearch(jaegerURL, service, operation string, since time.Time, limit int) ([]e2eJaegerTrace, error) {
	q := url.Values{
		"service": {service}, "operation": {operation}, "limit": {strconv.Itoa(limit)},
		"start": {strconv.FormatInt(since.UnixMicro(), 10)}, "end": {strconv.FormatInt(time.Now().UnixMicro(), 10)},
	}
	var r struct {
		Data []e2eJaegerTrace `json:"data"`
	}
	if err := getJSON(jaegerURL+"/api/traces?"+q.Encode(), &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}
