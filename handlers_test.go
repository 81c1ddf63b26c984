package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateOrder(t *testing.T) {
	ts := newTestShop(t, noFailures)
	before := ts.store.stockOf("MUG-OTEL")
	rec := do(t, ts.handler, "POST", "/order", `{"items":[{"sku":"MUG-OTEL","quantity":2},{"sku":"STICKER-PACK","quantity":1}]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	o := decodeBody[order](t, rec)
	if !strings.HasPrefix(o.ID, "ord_") || o.Status != statusCreated || o.TotalCents != 2*1250+499 || len(o.Items) != 2 {
		t.Errorf("order = %+v", o)
	}
	if got := rec.Header().Get("Location"); got != "/order/"+o.ID {
		t.Errorf("Location = %q", got)
	}
	if got := ts.store.stockOf("MUG-OTEL"); got != before-2 {
		t.Errorf("stock after order = %d, want %d", got, before-2)
	}

	got := decodeBody[order](t, do(t, ts.handler, "GET", "/order/"+o.ID, ""))
	if got.ID != o.ID || got.Status != statusCreated {
		t.Errorf("GET /order/{id} = %+v", got)
	}
}

func TestEveryResponseCarriesTheTraceID(t *testing.T) {
	ts := newTestShop(t, noFailures)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/order", `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`},
		{"POST", "/order", `{`},
		{"GET", "/order/ord_missing", ""},
		{"GET", "/nowhere", ""},
	} {
		rec := do(t, ts.handler, c.method, c.path, c.body)
		id := rec.Header().Get("X-Trace-Id")
		if len(id) != 32 {
			t.Errorf("%s %s: X-Trace-Id = %q", c.method, c.path, id)
		}
		if tr := rec.Header().Get("traceresponse"); !strings.HasPrefix(tr, "00-"+id+"-") {
			t.Errorf("%s %s: traceresponse = %q, want 00-%s-…", c.method, c.path, tr, id)
		}
	}
}

// Bad input gets a JSON error with the right 4xx status, never a 5xx.
func TestBadRequests(t *testing.T) {
	ts := newTestShop(t, noFailures)
	huge := `{"items":[{"sku":"` + strings.Repeat("A", maxBodyBytes) + `","quantity":1}]}`
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		reason                                string
	}{
		{"malformed JSON", "POST", "/order", "application/json", `{"items":[`, 400, "invalid_request"},
		{"syntax error", "POST", "/order", "application/json", `{"items":]}`, 400, "invalid_request"},
		{"empty body", "POST", "/order", "application/json", ``, 400, "invalid_request"},
		{"JSON null", "POST", "/order", "application/json", `null`, 400, "invalid_request"},
		{"array body", "POST", "/order", "application/json", `[]`, 400, "invalid_request"},
		{"unknown field", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":1}],"coupon":"FREE"}`, 400, "invalid_request"},
		{"wrong type", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":"two"}]}`, 400, "invalid_request"},
		{"fractional quantity", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":1.5}]}`, 400, "invalid_request"},
		{"no items", "POST", "/order", "application/json", `{"items":[]}`, 400, "invalid_request"},
		{"zero quantity", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":0}]}`, 400, "invalid_request"},
		{"negative quantity", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":-3}]}`, 400, "invalid_request"},
		{"huge quantity", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":1000000}]}`, 400, "invalid_request"},
		{"overflowing quantity", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":99999999999999999999}]}`, 400, "invalid_request"},
		{"duplicate sku", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":1},{"sku":"MUG-OTEL","quantity":1}]}`, 400, "invalid_request"},
		{"two objects", "POST", "/order", "application/json", `{"items":[{"sku":"MUG-OTEL","quantity":1}]}{}`, 400, "invalid_request"},
		{"unknown sku", "POST", "/order", "application/json", `{"items":[{"sku":"NOPE","quantity":1}]}`, 400, "unknown_sku"},
		{"not enough stock", "POST", "/order", "application/json", `{"items":[{"sku":"LIMITED-PIN","quantity":6}]}`, 409, "out_of_stock"},
		{"body too large", "POST", "/order", "application/json", huge, 413, "body_too_large"},
		{"wrong content type", "POST", "/order", "text/plain", `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`, 415, "unsupported_media_type"},
		{"form content type", "POST", "/payment/pay", "application/x-www-form-urlencoded", `order_id=1`, 415, "unsupported_media_type"},
		{"wrong method on /order", "GET", "/order", "", ``, 405, "method_not_allowed"},
		{"wrong method on /order/{id}", "DELETE", "/order/ord_1", "", ``, 405, "method_not_allowed"},
		{"wrong method on /payment/pay", "PUT", "/payment/pay", "application/json", `{}`, 405, "method_not_allowed"},
		{"unknown path", "GET", "/admin", "", ``, 404, "not_found"},
		{"unknown order", "GET", "/order/ord_missing", "", ``, 404, "order_not_found"},
		{"pay without order id", "POST", "/payment/pay", "application/json", `{}`, 400, "invalid_request"},
		{"pay with unknown method", "POST", "/payment/pay", "application/json", `{"order_id":"ord_1","method":"cash"}`, 400, "invalid_request"},
		{"pay unknown order", "POST", "/payment/pay", "application/json", `{"order_id":"ord_missing"}`, 404, "order_not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			rec := httptest.NewRecorder()
			ts.handler.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, c.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			e := decodeBody[errorResponse](t, rec)
			if e.Reason != c.reason || e.Error == "" {
				t.Errorf("error body = %+v, want reason %q and a message", e, c.reason)
			}
		})
	}
	if rec := do(t, ts.handler, "GET", "/order", ""); rec.Header().Get("Allow") != "POST" {
		t.Errorf("405 Allow = %q, want POST", rec.Header().Get("Allow"))
	}
}

func TestPayment(t *testing.T) {
	ts := newTestShop(t, noFailures)
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"HOODIE-GRY-L","quantity":1}]}`)

	rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`","method":"paypal"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("pay = %d %s", rec.Code, rec.Body)
	}
	p := decodeBody[payResponse](t, rec)
	if p.Status != statusPaid || p.AmountCents != 4999 || !strings.HasPrefix(p.PaymentID, "pay_") {
		t.Errorf("pay response = %+v", p)
	}
	if o := decodeBody[order](t, do(t, ts.handler, "GET", "/order/"+id, "")); o.Status != statusPaid || o.PaymentID != p.PaymentID {
		t.Errorf("order after payment = %+v", o)
	}

	// Paying again is refused: never a second charge.
	rec = do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
	if rec.Code != http.StatusConflict || decodeBody[errorResponse](t, rec).Reason != "already_paid" {
		t.Errorf("second pay = %d %s", rec.Code, rec.Body)
	}
}

func TestPaymentFailureCanBeRetried(t *testing.T) {
	failing := newTestShop(t, faultSettings{PaymentFailureRate: 1})
	id := mustCreateOrder(t, failing.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	rec := do(t, failing.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
	e := decodeBody[errorResponse](t, rec)
	switch {
	case rec.Code == 402 && (e.Reason == "card_declined" || e.Reason == "insufficient_funds"):
	case rec.Code == 504 && e.Reason == "gateway_timeout":
	default:
		t.Fatalf("failed payment = %d %+v", rec.Code, e)
	}
	if !strings.Contains(e.Error, "payment failed") || e.Details["order_id"] != id {
		t.Errorf("failure body = %+v", e)
	}
	o := decodeBody[order](t, do(t, failing.handler, "GET", "/order/"+id, ""))
	if o.Status != statusPaymentFailed || o.FailureReason != e.Reason {
		t.Errorf("order after failure = %+v", o)
	}
	// The same order can be paid again; with a failure rate of 1 it fails again, and stays retryable.
	if rec := do(t, failing.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`); rec.Code < 402 {
		t.Errorf("retry = %d %s", rec.Code, rec.Body)
	}
}

// Many clients paying the same order at once: exactly one charge goes through.
func TestConcurrentPaymentsChargeOnce(t *testing.T) {
	ts := newTestShop(t, faultSettings{PaymentLatency: latency{Fixed: duration(5 * time.Millisecond)}})
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for range 20 {
		wg.Go(func() {
			codes <- do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`).Code
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[200] != 1 || count[409] != 19 {
		t.Errorf("status counts = %v, want one 200 and nineteen 409", count)
	}
}

// Concurrent orders for the last units sell exactly the stock, never more.
func TestConcurrentOrdersSellExactlyTheStock(t *testing.T) {
	ts := newTestShop(t, noFailures)
	stock := ts.store.stockOf("HOODIE-GRY-L")
	var wg sync.WaitGroup
	results := make(chan int, 3*stock)
	for range 3 * stock {
		wg.Go(func() {
			results <- do(t, ts.handler, "POST", "/order", `{"items":[{"sku":"HOODIE-GRY-L","quantity":1}]}`).Code
		})
	}
	wg.Wait()
	close(results)
	count := map[int]int{}
	for c := range results {
		count[c]++
	}
	if count[201] != stock || count[409] != 2*stock || len(count) != 2 {
		t.Errorf("status counts = %v, want %d×201 and %d×409", count, stock, 2*stock)
	}
	if left := ts.store.stockOf("HOODIE-GRY-L"); left != 0 {
		t.Errorf("stock left = %d, want 0", left)
	}
}

func TestRestockRefillsShelves(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := newStore(10*time.Second, 100, func() time.Time { return now })
	pin := []orderLine{{SKU: "LIMITED-PIN", Quantity: 5}}
	if err := st.reserve(pin); err != nil {
		t.Fatal(err)
	}
	if err := st.reserve(pin); err == nil {
		t.Fatal("second reservation of the whole shelf succeeded before a restock")
	}
	now = now.Add(10 * time.Second)
	if err := st.reserve(pin); err != nil {
		t.Fatalf("after the restock interval: %v", err)
	}
}

func TestOrdersAreBounded(t *testing.T) {
	st := newStore(0, 3, time.Now)
	var ids []string
	for range 5 {
		ids = append(ids, st.addOrder(nil, 0).ID)
	}
	if _, ok := st.getOrder(ids[0]); ok {
		t.Error("oldest order still kept beyond maxOrders")
	}
	if _, ok := st.getOrder(ids[4]); !ok {
		t.Error("newest order missing")
	}
}

func TestPaymentFailureRateIsHonoured(t *testing.T) {
	p := paymentProvider{failureRate: 0.3}
	failed := 0
	const n = 4000
	for range n {
		if _, f := p.charge(); f != nil {
			failed++
		}
	}
	// 4000 draws at p=0.3: the standard deviation is 29, so ±150 is over five of them.
	if rate := float64(failed) / n; rate < 0.2625 || rate > 0.3375 {
		t.Errorf("failure rate = %.3f, want about 0.3", rate)
	}
}

func TestHealthChecks(t *testing.T) {
	ts := newTestShop(t, noFailures)
	for _, path := range []string{"/healthz", "/readyz"} {
		if rec := do(t, ts.handler, "GET", path, ""); rec.Code != 200 {
			t.Errorf("%s = %d", path, rec.Code)
		}
	}
	if n := len(ts.spans.Ended()); n != 0 {
		t.Errorf("health checks made %d spans, want none", n)
	}
	if _, ok := ts.collect(t)["request"]; ok {
		t.Error("health checks were counted in request_total")
	}
}
