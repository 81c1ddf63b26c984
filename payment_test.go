package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace"
)

// fakeGateway plays paymentgw's POST /v1/charges (the real one runs in the e2e suite): it records
// what the shop sent and answers with answer(call number).
type fakeGateway struct {
	mu     sync.Mutex
	calls  []*http.Request
	bodies []charge
	answer func(n int, w http.ResponseWriter, r *http.Request)
}

func newFakeGateway(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) (*fakeGateway, *httptest.Server) {
	g := &fakeGateway{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c charge
		_ = json.NewDecoder(r.Body).Decode(&c)
		g.mu.Lock()
		g.calls = append(g.calls, r)
		g.bodies = append(g.bodies, c)
		n := len(g.calls)
		g.mu.Unlock()
		g.answer(n, w, r)
	}))
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *fakeGateway) keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, r := range g.calls {
		out = append(out, r.Header.Get("Idempotency-Key"))
	}
	return out
}

func created(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"id":"ch_0123456789abcdef","status":"succeeded"}`)
}

func (ts *testShop) span(t *testing.T, name string) trace.ReadOnlySpan {
	t.Helper()
	for _, s := range ts.spans.Ended() {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no %s span", name)
	return nil
}

func TestPaymentThroughTheGatewayCarriesTraceContext(t *testing.T) {
	gw, srv := newFakeGateway(t, func(_ int, w http.ResponseWriter, _ *http.Request) { created(w) })
	ts := newTestShopWith(t, noFailures, srv.URL, "")
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":2}]}`)

	rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`","method":"wallet"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("pay = %d %s", rec.Code, rec.Body)
	}
	if got := decodeBody[payResponse](t, rec).PaymentID; got != "ch_0123456789abcdef" {
		t.Errorf("payment_id = %q, want the gateway's charge id", got)
	}
	if keys := gw.keys(); len(keys) != 1 || keys[0] != id+"-1" {
		t.Errorf("Idempotency-Key = %q, want [%s-1]", keys, id)
	}
	if c := gw.bodies[0]; c.AmountCents != 2500 || c.Currency != "USD" || c.Method != "wallet" || c.Reference != id {
		t.Errorf("charge sent = %+v", c)
	}
	// The gateway's server span will be a child of ChargePayment: traceparent names it.
	charge := ts.span(t, "ChargePayment")
	want := "00-" + charge.SpanContext().TraceID().String() + "-" + charge.SpanContext().SpanID().String() + "-01"
	if got := gw.calls[0].Header.Get("traceparent"); got != want {
		t.Errorf("traceparent = %q, want %q (ChargePayment's context)", got, want)
	}
}

func TestTimedOutChargeIsRetriedOnceWithTheSameKey(t *testing.T) {
	gw, srv := newFakeGateway(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 { // the answer is late: the shop's client gives up first
			<-r.Context().Done()
			return
		}
		created(w)
	})
	ts := newTestShopWith(t, noFailures, srv.URL, "")
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)

	rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("pay = %d %s", rec.Code, rec.Body)
	}
	if keys := gw.keys(); len(keys) != 2 || keys[0] != keys[1] {
		t.Errorf("keys sent = %q, want the same key twice", keys)
	}
	charge := ts.span(t, "ChargePayment")
	var resend int64
	for _, a := range charge.Attributes() {
		if a.Key == "http.request.resend_count" {
			resend = a.Value.AsInt64()
		}
	}
	if resend != 1 || len(charge.Events()) != 1 || !strings.Contains(charge.Events()[0].Name, "retrying") {
		t.Errorf("ChargePayment: resend_count %d, events %v; want 1 and one retry event", resend, charge.Events())
	}
}

func TestGatewayThatNeverAnswersIsATimeoutAndTheKeyIsKept(t *testing.T) {
	gw, srv := newFakeGateway(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ts := newTestShopWith(t, noFailures, srv.URL, "")
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)

	for range 2 {
		rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
		if rec.Code != http.StatusGatewayTimeout || decodeBody[errorResponse](t, rec).Reason != "gateway_timeout" {
			t.Fatalf("pay = %d %s, want 504 gateway_timeout", rec.Code, rec.Body)
		}
	}
	// Two payments of two attempts each, all with the first key: whatever the gateway did, at most one charge.
	if keys := gw.keys(); len(keys) != 4 || keys[0] != id+"-1" || keys[3] != id+"-1" {
		t.Errorf("keys sent = %q, want %s-1 four times", keys, id)
	}
}

func TestGatewayAnswersBecomeTheShopsReasons(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		status       int
		wantStatus   int
		wantReason   string
		unknown      bool // the answer says nothing about the money: the next payment resends the attempt
	}{
		{"declined", `{"error":"payment declined: card_declined","reason":"card_declined"}`, 402, 402, "card_declined", false},
		{"insufficient funds", `{"error":"payment declined","reason":"insufficient_funds"}`, 402, 402, "insufficient_funds", false},
		{"acquirer timeout", `{"error":"the acquirer did not answer","reason":"gateway_timeout"}`, 504, 504, "gateway_timeout", false},
		{"gateway bug", `{"error":"invalid request","reason":"invalid_request"}`, 400, 502, "payment_gateway_error", false},
		{"key in use", `{"error":"still processing","reason":"idempotency_key_in_use"}`, 409, 502, "payment_gateway_error", true},
		{"not JSON", `<html>oops</html>`, 500, 502, "payment_gateway_error", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw, srv := newFakeGateway(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			})
			ts := newTestShopWith(t, noFailures, srv.URL, "")
			id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
			rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
			if rec.Code != tc.wantStatus || decodeBody[errorResponse](t, rec).Reason != tc.wantReason {
				t.Fatalf("pay = %d %s, want %d %s", rec.Code, rec.Body, tc.wantStatus, tc.wantReason)
			}
			if !strings.Contains(ts.stdout.String(), `"msg":"payment failed","reason":"`+tc.wantReason+`"`) {
				t.Errorf("no payment failed log with reason %s:\n%s", tc.wantReason, ts.stdout)
			}
			// A known answer: the next payment is a new attempt with a new key; else the same attempt again.
			do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
			want := id + "-2"
			if tc.unknown {
				want = id + "-1"
			}
			if keys := gw.keys(); len(keys) != 2 || keys[1] != want {
				t.Errorf("keys sent = %q, want %s for the second payment", keys, want)
			}
		})
	}
}

func TestUnansweredAttemptIsResentAsItWas(t *testing.T) {
	gw, srv := newFakeGateway(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 2 { // the first payment: no answer to either attempt
			<-r.Context().Done()
			return
		}
		created(w)
	})
	ts := newTestShopWith(t, noFailures, srv.URL, "")
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	if rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`","method":"card"}`); rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("first payment = %d %s, want 504", rec.Code, rec.Body)
	}
	// Paying again with another method must not become a second charge: the unanswered attempt goes again.
	if rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`","method":"paypal"}`); rec.Code != http.StatusOK {
		t.Fatalf("second payment = %d %s, want 200", rec.Code, rec.Body)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if len(gw.bodies) != 3 || gw.bodies[2] != gw.bodies[0] || gw.calls[2].Header.Get("Idempotency-Key") != id+"-1" {
		t.Errorf("third call sent %+v with key %q; want the first attempt again (%+v, %s-1)",
			gw.bodies[len(gw.bodies)-1], gw.calls[len(gw.calls)-1].Header.Get("Idempotency-Key"), gw.bodies[0], id)
	}
}

func TestChargeOutlivesTheClient(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	_, srv := newFakeGateway(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		<-release
		created(w)
	})
	ts := newTestShopWith(t, noFailures, srv.URL, "")
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "POST", "/payment/pay", strings.NewReader(`{"order_id":"`+id+`"}`))
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.handler.ServeHTTP(httptest.NewRecorder(), req)
	}()
	<-arrived // the charge is at the gateway
	cancel()  // the customer gives up
	close(release)
	<-done
	if o, _ := ts.store.getOrder(id); o.Status != statusPaid || o.PaymentID != "ch_0123456789abcdef" {
		t.Errorf("order after the client left: %+v, want paid with the gateway's charge", o)
	}
}

func TestUnreachableGatewayIs502(t *testing.T) {
	_, srv := newFakeGateway(t, func(int, http.ResponseWriter, *http.Request) {})
	url := srv.URL
	srv.Close()
	ts := newTestShopWith(t, noFailures, url, "")
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
	if rec.Code != http.StatusBadGateway || decodeBody[errorResponse](t, rec).Reason != "payment_gateway_unavailable" {
		t.Fatalf("pay = %d %s, want 502 payment_gateway_unavailable", rec.Code, rec.Body)
	}
}

func TestPaymentFaultsLiveInTheGateway(t *testing.T) {
	var mu sync.Mutex
	gwSettings := gatewayFaultSettings{FailureRate: 0.05}
	var paths []string
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer gw-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		paths = append(paths, r.Method+" "+r.URL.Path)
		switch r.Method + " " + r.URL.Path {
		case "PATCH /faults":
			_ = json.NewDecoder(r.Body).Decode(&gwSettings)
		case "POST /faults/reset":
			gwSettings = gatewayFaultSettings{FailureRate: 0.05}
		}
		_ = json.NewEncoder(w).Encode(gwSettings)
	}))
	t.Cleanup(admin.Close)
	ts := newTestShopWith(t, faultSettings{PaymentFailureRate: 0.5}, "http://127.0.0.1:1", admin.URL)

	rec := adminDo(t, ts.admin, "GET", "/faults", "secret", "")
	if got := decodeBody[faultSettings](t, rec); rec.Code != 200 || got.PaymentFailureRate != 0.05 {
		t.Fatalf("GET /faults = %d %s, want the gateway's failure rate 0.05", rec.Code, rec.Body)
	}
	rec = adminDo(t, ts.admin, "PATCH", "/faults", "secret", `{"payment_failure_rate":1,"payment_failure_reason":"gateway_timeout","payment_timeout_rate":0.5,"out_of_stock_rate":0.25}`)
	got := decodeBody[faultSettings](t, rec)
	if rec.Code != 200 || got.PaymentFailureRate != 1 || got.PaymentTimeoutRate != 0.5 || got.OutOfStockRate != 0.25 {
		t.Fatalf("PATCH /faults = %d %s", rec.Code, rec.Body)
	}
	mu.Lock()
	if gwSettings.FailureRate != 1 || gwSettings.FailureReason != "gateway_timeout" || gwSettings.TimeoutRate != 0.5 {
		t.Errorf("gateway got %+v, want failure rate 1, gateway_timeout, timeout rate 0.5", gwSettings)
	}
	mu.Unlock()
	if ts.faults.get().OutOfStockRate != 0.25 {
		t.Errorf("the shop's own setting did not change")
	}
	rec = adminDo(t, ts.admin, "POST", "/faults/reset", "secret", "")
	if got := decodeBody[faultSettings](t, rec); rec.Code != 200 || got.PaymentFailureRate != 0.05 || got.OutOfStockRate != 0 {
		t.Errorf("reset = %d %s, want the gateway's 0.05 and the shop's defaults", rec.Code, rec.Body)
	}
	// The gateway exports the failure-rate gauge now, not the shop.
	if _, ok := ts.collect(t)["minishop_fault_payment_failure_rate"]; ok {
		t.Error("the shop still exports minishop_fault_payment_failure_rate; the gateway holds it")
	}

	admin.Close()
	if rec := adminDo(t, ts.admin, "GET", "/faults", "secret", ""); rec.Code != http.StatusBadGateway {
		t.Errorf("GET /faults with the gateway down = %d %s, want 502", rec.Code, rec.Body)
	}
}

func TestTimeoutFaultNeedsTheGateway(t *testing.T) {
	ts := newTestShop(t, noFailures)
	rec := adminDo(t, ts.admin, "PATCH", "/faults", "secret", `{"payment_timeout_rate":0.5}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "MINISHOP_PAYMENT_GATEWAY_URL") {
		t.Errorf("PATCH payment_timeout_rate in-process = %d %s, want 400 naming the gateway setting", rec.Code, rec.Body)
	}
}

func TestPaymentFaultsNeedTheGatewaysAdminAPI(t *testing.T) {
	ts := newTestShopWith(t, noFailures, "http://127.0.0.1:1", "")
	rec := adminDo(t, ts.admin, "PATCH", "/faults", "secret", `{"payment_failure_rate":1}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "MINISHOP_PAYMENT_GATEWAY_ADMIN_URL") {
		t.Errorf("PATCH payment_failure_rate with a gateway but no admin URL = %d %s, want 400 naming the setting", rec.Code, rec.Body)
	}
	if rec := adminDo(t, ts.admin, "PATCH", "/faults", "secret", `{"out_of_stock_rate":0.5}`); rec.Code != http.StatusOK {
		t.Errorf("the shop's own settings still change: %d %s", rec.Code, rec.Body)
	}
}
