// These tests drive the public API through its handler: answers, idempotency, faults and telemetry.
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

func TestChargeSucceeds(t *testing.T) {
	g := newTestGateway(t, instant)
	rec := g.charge(t, "key-1", validCharge)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /v1/charges = %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Idempotent-Replayed") != "" {
		t.Error("a first answer says Idempotent-Replayed")
	}
	ch := decodeBody[charge](t, rec.Body.Bytes())
	want := charge{ID: ch.ID, Status: "succeeded", AmountCents: 1999, Currency: "USD", Method: "card",
		Reference: "ord_0123456789abcdef", CreatedAt: ch.CreatedAt}
	if ch != want || !strings.HasPrefix(ch.ID, "ch_") || len(ch.ID) != 19 || time.Since(ch.CreatedAt) > time.Minute {
		t.Errorf("charge = %+v", ch)
	}
	got := do(t, g.handler, "GET", "/v1/charges/"+ch.ID, "")
	if got.Code != http.StatusOK || decodeBody[charge](t, got.Body.Bytes()) != ch {
		t.Errorf("GET /v1/charges/%s = %d %s", ch.ID, got.Code, got.Body)
	}
	if n := g.counter(t, "payment_gateway_charges", attribute.String("outcome", "succeeded"), attribute.String("method", "card")); n != 1 {
		t.Errorf("payment_gateway_charges{succeeded,card} = %d, want 1", n)
	}
	logs := g.logs.find("charge succeeded")
	if len(logs) != 1 || !logs[0].TraceID().IsValid() {
		t.Fatalf("want one 'charge succeeded' record with a trace id, got %d", len(logs))
	}
	if !strings.Contains(g.stdout.String(), `"charge_id":"`+ch.ID+`"`) {
		t.Errorf("stdout does not name the charge:\n%s", g.stdout)
	}
}

func TestChargeFailures(t *testing.T) {
	for _, tt := range []struct {
		reason string
		status int
		log    string
	}{
		{"card_declined", http.StatusPaymentRequired, "charge declined"},
		{"insufficient_funds", http.StatusPaymentRequired, "charge declined"},
		{"gateway_timeout", http.StatusGatewayTimeout, "charge failed"},
	} {
		t.Run(tt.reason, func(t *testing.T) {
			fs := instant
			fs.FailureRate, fs.FailureReason = 1, tt.reason
			g := newTestGateway(t, fs)
			rec := g.charge(t, "k", validCharge)
			body := decodeBody[errorResponse](t, rec.Body.Bytes())
			if rec.Code != tt.status || body.Reason != tt.reason || !strings.HasPrefix(body.Details["charge_id"], "ch_") {
				t.Fatalf("POST /v1/charges = %d %s", rec.Code, rec.Body)
			}
			got := decodeBody[charge](t, do(t, g.handler, "GET", "/v1/charges/"+body.Details["charge_id"], "").Body.Bytes())
			if got.Status != "failed" || got.FailureReason != tt.reason {
				t.Errorf("stored charge = %+v", got)
			}
			auth := g.spansNamed("Authorize")
			if len(auth) != 1 || auth[0].Status().Code != codes.Error || auth[0].Status().Description != "payment declined: "+tt.reason {
				t.Errorf("Authorize span status = %+v", auth[0].Status())
			}
			server := g.spansNamed("POST /v1/charges")[0]
			if isErr := server.Status().Code == codes.Error; isErr != (tt.status >= 500) {
				t.Errorf("server span status = %v for a %d", server.Status(), tt.status)
			}
			if v, _ := attr(server, "app.payment.outcome"); v.AsString() != tt.reason {
				t.Errorf("app.payment.outcome = %q", v.AsString())
			}
			if len(g.logs.find(tt.log)) != 1 {
				t.Errorf("no %q log record", tt.log)
			}
			if n := g.counter(t, "payment_gateway_charges", attribute.String("outcome", tt.reason)); n != 1 {
				t.Errorf("payment_gateway_charges{%s} = %d, want 1", tt.reason, n)
			}
		})
	}
}

// The failure mix without a fixed reason: every failure is one of the three reasons.
func TestFailureMix(t *testing.T) {
	fs := instant
	fs.FailureRate = 1
	g := newTestGateway(t, fs)
	seen := map[string]bool{}
	for i := range 60 {
		rec := g.charge(t, fmt.Sprint("k", i), validCharge)
		r := decodeBody[errorResponse](t, rec.Body.Bytes()).Reason
		if statusOf(r) != rec.Code || r == "succeeded" {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
		seen[r] = true
	}
	if len(seen) != 3 {
		t.Errorf("60 failures had reasons %v, want all three", seen)
	}
}

func TestChargeBadRequests(t *testing.T) {
	g := newTestGateway(t, instant)
	big := `{"reference":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	for _, tt := range []struct {
		name, key, contentType, body string
		status                       int
		reason                       string
		details                      []string
	}{
		{"no key", "", "application/json", validCharge, 400, "missing_idempotency_key", nil},
		{"key too long", strings.Repeat("k", 256), "application/json", validCharge, 400, "invalid_idempotency_key", nil},
		{"key not printable", "k\x01y", "application/json", validCharge, 400, "invalid_idempotency_key", nil},
		{"key not ASCII", "kéy", "application/json", validCharge, 400, "invalid_idempotency_key", nil},
		{"malformed", "k", "application/json", `{"amount_cents":`, 400, "invalid_request", nil},
		{"not an object", "k", "application/json", `[1]`, 400, "invalid_request", nil},
		{"two objects", "k", "application/json", validCharge + validCharge, 400, "invalid_request", nil},
		{"empty", "k", "application/json", ``, 400, "invalid_request", nil},
		{"unknown field", "k", "application/json", `{"card_number":"4242"}`, 400, "invalid_request", nil},
		{"wrong type", "k", "application/json", `{"amount_cents":"5"}`, 400, "invalid_request", nil},
		{"invalid fields", "k", "", `{"amount_cents":0,"currency":"usd","method":"cash"}`, 400, "invalid_request",
			[]string{"amount_cents", "currency", "method", "reference"}},
		{"too much", "k", "application/json", `{"amount_cents":100000001,"currency":"USD","method":"card","reference":"` + strings.Repeat("r", 65) + `"}`,
			400, "invalid_request", []string{"amount_cents", "reference"}},
		{"form", "k", "application/x-www-form-urlencoded", validCharge, 415, "unsupported_media_type", nil},
		{"too large", "k", "application/json", big, 413, "body_too_large", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/charges", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			rec := httptest.NewRecorder()
			g.handler.ServeHTTP(rec, req)
			body := decodeBody[errorResponse](t, rec.Body.Bytes())
			if rec.Code != tt.status || body.Reason != tt.reason || body.Error == "" {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.reason)
			}
			for _, field := range tt.details {
				if body.Details[field] == "" {
					t.Errorf("details lack %q: %v", field, body.Details)
				}
			}
			if len(body.Details) != len(tt.details) {
				t.Errorf("details = %v, want fields %v", body.Details, tt.details)
			}
		})
	}
	if n := len(g.chargesOf(t, "ord_0123456789abcdef")); n != 0 {
		t.Errorf("bad requests made %d charges", n)
	}
}

func TestRoutes(t *testing.T) {
	g := newTestGateway(t, instant)
	for _, tt := range []struct {
		method, path string
		status       int
		reason       string
		allow        string
	}{
		{"GET", "/nope", 404, "not_found", ""},
		{"GET", "/v1/charges/ch_0000000000000000", 404, "charge_not_found", ""},
		{"GET", "/v1/charges", 400, "invalid_request", ""},
		{"DELETE", "/v1/charges", 405, "method_not_allowed", "GET, HEAD, POST"},
		{"PUT", "/v1/charges/ch_1", 405, "method_not_allowed", "GET, HEAD"},
		{"POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
	} {
		rec := do(t, g.handler, tt.method, tt.path, "")
		if body := decodeBody[errorResponse](t, rec.Body.Bytes()); rec.Code != tt.status || body.Reason != tt.reason || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d %s (Allow %q)", tt.method, tt.path, rec.Code, rec.Body, rec.Header().Get("Allow"))
		}
	}
	if len(g.spansNamed("unmatched")) != 1 || len(g.spansNamed("DELETE /v1/charges")) != 1 || len(g.spansNamed("GET /v1/charges/{id}")) != 1 {
		var names []string
		for _, s := range g.spans.Ended() {
			names = append(names, s.Name())
		}
		t.Errorf("span names = %q", names)
	}
	before := len(g.spans.Ended())
	for _, path := range []string{"/healthz", "/readyz"} {
		if rec := do(t, g.handler, "GET", path, ""); rec.Code != 200 {
			t.Errorf("GET %s = %d", path, rec.Code)
		}
	}
	if after := len(g.spans.Ended()); after != before {
		t.Errorf("health checks made %d spans", after-before)
	}
}

func TestIdempotentReplay(t *testing.T) {
	fs := instant
	fs.FailureRate, fs.FailureReason = 0.5, "card_declined" // either answer must replay the same
	g := newTestGateway(t, fs)
	first := g.charge(t, "key-1", validCharge)
	for range 3 {
		again := g.charge(t, "key-1", validCharge)
		if again.Code != first.Code || again.Body.String() != first.Body.String() || again.Header().Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay = %d %s %v, first %d %s", again.Code, again.Body, again.Header(), first.Code, first.Body)
		}
	}
	if n := len(g.chargesOf(t, "ord_0123456789abcdef")); n != 1 {
		t.Errorf("%d charges, want exactly 1", n)
	}
	if n := g.counter(t, "payment_gateway_charges"); n != 1 {
		t.Errorf("payment_gateway_charges = %d, want 1", n)
	}
	if n := g.counter(t, "payment_gateway_idempotent_replays"); n != 3 {
		t.Errorf("payment_gateway_idempotent_replays = %d, want 3", n)
	}
	if n := len(g.logs.find("idempotent replay")); n != 3 {
		t.Errorf("%d 'idempotent replay' records, want 3", n)
	}
	servers := g.spansNamed("POST /v1/charges")
	if len(servers) != 4 || len(g.spansNamed("Authorize")) != 1 || len(g.spansNamed("FraudCheck")) != 1 {
		t.Fatalf("%d server spans, %d Authorize", len(servers), len(g.spansNamed("Authorize")))
	}
	for i, s := range servers {
		if v, _ := attr(s, "app.payment.idempotent_replay"); v.AsBool() != (i > 0) {
			t.Errorf("span %d: app.payment.idempotent_replay = %v", i, v.AsBool())
		}
		if s.ChildSpanCount() != map[bool]int{true: 0, false: 2}[i > 0] {
			t.Errorf("span %d has %d children", i, s.ChildSpanCount())
		}
	}

	// The same key with another body is refused, and charges nothing.
	other := strings.Replace(validCharge, "1999", "2000", 1)
	if rec := g.charge(t, "key-1", other); rec.Code != 422 || decodeBody[errorResponse](t, rec.Body.Bytes()).Reason != "idempotency_key_reused" {
		t.Errorf("reused key = %d %s", rec.Code, rec.Body)
	}
	// Another key is another charge.
	if rec := g.charge(t, "key-2", validCharge); rec.Header().Get("Idempotent-Replayed") != "" {
		t.Error("a new key was replayed")
	}
	if n := len(g.chargesOf(t, "ord_0123456789abcdef")); n != 2 {
		t.Errorf("%d charges after a second key, want 2", n)
	}
}

// Duplicates sent while the first is still being decided wait for it and replay it.
func TestConcurrentDuplicates(t *testing.T) {
	fs := instant
	fs.Latency.Fixed = duration(100 * time.Millisecond)
	g := newTestGateway(t, fs)
	const n = 10
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { recs[i] = g.charge(t, "dup", validCharge) })
	}
	wg.Wait()
	replays := 0
	for _, rec := range recs {
		if rec.Code != 201 || rec.Body.String() != recs[0].Body.String() {
			t.Errorf("answer %d %s, want the same 201 as %s", rec.Code, rec.Body, recs[0].Body)
		}
		if rec.Header().Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	if replays != n-1 {
		t.Errorf("%d replays, want %d", replays, n-1)
	}
	if got := len(g.chargesOf(t, "ord_0123456789abcdef")); got != 1 {
		t.Errorf("%d charges, want exactly 1", got)
	}
}

// A duplicate whose own context ends before the first is decided gets 409; the first still completes.
func TestDuplicateInFlightGivesUp(t *testing.T) {
	fs := instant
	fs.Latency.Fixed = duration(500 * time.Millisecond)
	g := newTestGateway(t, fs)
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- g.charge(t, "slow", validCharge) }()
	eventually(t, 5*time.Second, "the first charge is in FraudCheck", func() bool {
		return len(g.spansNamed("FraudCheck")) == 1
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/charges", strings.NewReader(validCharge))
	req.Header.Set("Idempotency-Key", "slow")
	rec := httptest.NewRecorder()
	g.handler.ServeHTTP(rec, req)
	if rec.Code != 409 || decodeBody[errorResponse](t, rec.Body.Bytes()).Reason != "idempotency_key_in_use" {
		t.Errorf("duplicate in flight = %d %s", rec.Code, rec.Body)
	}
	if r := <-first; r.Code != 201 {
		t.Errorf("first = %d %s", r.Code, r.Body)
	}
}

// The timeout fault: the charge happens, its answer comes too late for the client; the client's
// retry with the same key gets the charge at once, and there is exactly one.
func TestTimeoutFault(t *testing.T) {
	fs := instant
	fs.TimeoutRate, fs.Stall = 1, duration(10*time.Second)
	g := newTestGateway(t, fs)
	srv := httptest.NewServer(g.handler)
	defer srv.Close()
	post := func(timeout time.Duration) (*http.Response, error) {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/charges", strings.NewReader(validCharge))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "order-1-attempt-1")
		return (&http.Client{Timeout: timeout}).Do(req)
	}
	if resp, err := post(200 * time.Millisecond); err == nil {
		resp.Body.Close()
		t.Fatalf("the first attempt answered %d; want a client timeout", resp.StatusCode)
	}
	start := time.Now()
	resp, err := post(2 * time.Second)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "true" || time.Since(start) > time.Second {
		t.Errorf("retry = %d replayed=%q after %v", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), time.Since(start))
	}
	if n := len(g.chargesOf(t, "ord_0123456789abcdef")); n != 1 {
		t.Errorf("%d charges, want exactly 1", n)
	}
	// The stalled request ends once its client is gone; its span says the fault was injected.
	eventually(t, 5*time.Second, "the stalled request's span ends", func() bool {
		for _, s := range g.spansNamed("POST /v1/charges") {
			if v, _ := attr(s, "app.fault.timeout_injected"); v.AsBool() {
				return true
			}
		}
		return false
	})
}

func TestTraceContextContinues(t *testing.T) {
	g := newTestGateway(t, instant)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req := httptest.NewRequest("POST", "/v1/charges", strings.NewReader(validCharge))
	req.Header.Set("Idempotency-Key", "k")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	req.Header.Set("User-Agent", "minishop-test")
	g.handler.ServeHTTP(httptest.NewRecorder(), req)

	server := g.spansNamed("POST /v1/charges")
	if len(server) != 1 {
		t.Fatalf("%d server spans", len(server))
	}
	s := server[0]
	if s.SpanKind() != trace.SpanKindServer || s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != parentID || !s.Parent().IsRemote() {
		t.Errorf("server span kind %v trace %s parent %s", s.SpanKind(), s.SpanContext().TraceID(), s.Parent().SpanID())
	}
	for _, name := range []string{"FraudCheck", "Authorize"} {
		c := g.spansNamed(name)
		if len(c) != 1 || c[0].Parent().SpanID() != s.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the server span", name)
		}
	}
	want := map[string]string{
		"http.request.method": "POST", "http.route": "/v1/charges", "url.path": "/v1/charges",
		"http.response.status_code": "201", "user_agent.original": "minishop-test",
		"app.payment.idempotency_key": "k", "app.payment.reference": "ord_0123456789abcdef",
		"app.payment.amount_cents": "1999", "app.payment.method": "card", "app.payment.outcome": "succeeded",
		"app.payment.idempotent_replay": "false", "app.fault.timeout_injected": "false",
	}
	for k, v := range want {
		if got, ok := attr(s, k); !ok || got.Emit() != v {
			t.Errorf("%s = %q, want %q", k, got.Emit(), v)
		}
	}
	if v, _ := attr(s, "app.payment.charge_id"); !strings.HasPrefix(v.AsString(), "ch_") {
		t.Errorf("app.payment.charge_id = %q", v.AsString())
	}
}

// The ledger forgets the oldest keys and their charges beyond its bound.
func TestLedgerEvictsOldest(t *testing.T) {
	l := newLedger(2)
	var ids []string
	for i := range 3 {
		req := chargeRequest{AmountCents: 1, Currency: "USD", Method: "card", Reference: "ord_1"}
		e, fresh := l.begin(fmt.Sprint("k", i), req)
		if !fresh {
			t.Fatal("a new key is not fresh")
		}
		ch := charge{ID: fmt.Sprint("ch_", i), Reference: req.Reference}
		l.finish(e, ch)
		ids = append(ids, ch.ID)
	}
	if _, ok := l.get(ids[0]); ok {
		t.Error("the oldest charge is still kept")
	}
	if got := l.byReference("ord_1"); len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[2] {
		t.Errorf("charges of ord_1 = %+v", got)
	}
	if len(l.byKey) != 2 || len(l.byID) != 2 {
		t.Errorf("kept %d keys and %d charges, want 2", len(l.byKey), len(l.byID))
	}
}

func FuzzDecodeCharge(f *testing.F) {
	f.Add(validCharge)
	f.Add(`{"amount_cents":-1,"currency":"ÜSD"}`)
	f.Add(`{"amount_cents":1e30}`)
	g := newTestGateway(f, instant)
	f.Fuzz(func(t *testing.T, body string) {
		rec := g.charge(t, "fuzz-"+fmt.Sprint(len(body)), body)
		if rec.Code >= 500 && rec.Code != http.StatusGatewayTimeout {
			t.Errorf("%q: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code != 201 && rec.Code != 422 && decodeBody[errorResponse](t, rec.Body.Bytes()).Reason == "" {
			t.Errorf("%q: %d without a reason: %s", body, rec.Code, rec.Body)
		}
	})
}
