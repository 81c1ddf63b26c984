package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func adminDo(t *testing.T, h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAdminNeedsTheToken(t *testing.T) {
	ts := newTestShop(t, noFailures)
	for _, token := range []string{"", "wrong", "secre", "secrets"} {
		rec := adminDo(t, ts.admin, "PATCH", "/faults", token, `{"payment_failure_rate":1}`)
		if rec.Code != http.StatusUnauthorized || decodeBody[errorResponse](t, rec).Reason != "unauthorized" {
			t.Errorf("token %q: %d %s", token, rec.Code, rec.Body)
		}
	}
	if got := ts.faults.get().PaymentFailureRate; got != 0 {
		t.Errorf("failure rate changed without the token: %v", got)
	}
}

func TestPaymentFailureRateChangesAtRuntime(t *testing.T) {
	ts := newTestShop(t, faultSettings{PaymentLatency: latency{Jitter: duration(time.Millisecond)}})
	rec := adminDo(t, ts.admin, "PATCH", "/faults", "secret", `{"payment_failure_rate":1}`)
	if rec.Code != 200 {
		t.Fatalf("PATCH = %d %s", rec.Code, rec.Body)
	}
	got := decodeBody[faultSettings](t, rec)
	if got.PaymentFailureRate != 1 || got.PaymentLatency.Jitter != duration(time.Millisecond) {
		t.Errorf("settings after patch = %+v; fields left out must keep their value", got)
	}
	id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	if rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`); rec.Code != 402 && rec.Code != 504 {
		t.Errorf("payment with failure rate 1 = %d", rec.Code)
	}

	// The change is visible as telemetry: a span event, a log record and a gauge.
	change := spanNamed(t, ts.spans.Ended(), "ChangeFaults")
	if len(change.Events()) != 1 || change.Events()[0].Name != "faults changed" {
		t.Errorf("ChangeFaults events = %v", change.Events())
	}
	if !hasLog(ts.logs.all(), "fault injection changed", map[string]string{"payment_failure_rate": "1", "change": "patch"}) {
		t.Error("no 'fault injection changed' log record")
	}
	gauge := ts.collect(t)["minishop_fault_payment_failure_rate"].Data.(metricdata.Gauge[float64])
	if len(gauge.DataPoints) != 1 || gauge.DataPoints[0].Value != 1 {
		t.Errorf("minishop_fault_payment_failure_rate = %+v, want 1", gauge.DataPoints)
	}

	if rec := adminDo(t, ts.admin, "POST", "/faults/reset", "secret", ""); rec.Code != 200 || decodeBody[faultSettings](t, rec).PaymentFailureRate != 0 {
		t.Errorf("reset = %d %s", rec.Code, rec.Body)
	}
}

func TestFaultSettingsAreValidated(t *testing.T) {
	ts := newTestShop(t, noFailures)
	for _, body := range []string{
		`{"payment_failure_rate":2}`,
		`{"payment_failure_reason":"bank_on_fire"}`,
		`{"out_of_stock_rate":-0.1}`,
		`{"inventory_delay":{"fixed":"forever"}}`,
		`{"inventory_delay":{"fixed":"1h"}}`,
		`{"route_latency":{"/admin":{"fixed":"1s"}}}`,
		`{"payment_failure_rate":"high"}`,
		`{"chaos":true}`,
		`{`,
	} {
		if rec := adminDo(t, ts.admin, "PATCH", "/faults", "secret", body); rec.Code != 400 {
			t.Errorf("PATCH %s = %d %s", body, rec.Code, rec.Body)
		}
	}
	if got := ts.faults.get(); got.PaymentFailureRate != 0 || got.InventoryDelay.Fixed != 0 || len(got.RouteLatency) != 0 {
		t.Errorf("rejected patches changed the settings: %+v", got)
	}
}

// A provider outage: every payment times out at the gateway (504), a server-side failure the SLO counts.
func TestPaymentOutageIsGatewayTimeouts(t *testing.T) {
	ts := newTestShop(t, faultSettings{PaymentFailureRate: 1, PaymentFailureReason: "gateway_timeout"})
	for range 10 {
		id := mustCreateOrder(t, ts.handler, `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`)
		rec := do(t, ts.handler, "POST", "/payment/pay", `{"order_id":"`+id+`"}`)
		if rec.Code != 504 || decodeBody[errorResponse](t, rec).Reason != "gateway_timeout" {
			t.Fatalf("payment during an outage = %d %s", rec.Code, rec.Body)
		}
	}
}

func TestSlowInventoryShowsInDeductInventory(t *testing.T) {
	ts := newTestShop(t, faultSettings{InventoryDelay: latency{Fixed: duration(30 * time.Millisecond)}})
	mustCreateOrder(t, ts.handler, `{"items":[{"sku":"MUG-OTEL","quantity":1}]}`)
	deduct := spanNamed(t, ts.spans.Ended(), "DeductInventory")
	if took := deduct.EndTime().Sub(deduct.StartTime()); took < 30*time.Millisecond {
		t.Errorf("DeductInventory took %v, want at least the 30ms injected", took)
	}
}

func TestOutOfStockStorm(t *testing.T) {
	ts := newTestShop(t, faultSettings{OutOfStockRate: 1})
	rec := do(t, ts.handler, "POST", "/order", `{"items":[{"sku":"STICKER-PACK","quantity":1}]}`)
	if rec.Code != 409 || decodeBody[errorResponse](t, rec).Reason != "out_of_stock" {
		t.Fatalf("order in an out-of-stock storm = %d %s", rec.Code, rec.Body)
	}
	if v, _ := spanAttr(spanNamed(t, ts.spans.Ended(), "DeductInventory"), "app.fault.injected"); !v.AsBool() {
		t.Error("DeductInventory does not say the shortage was injected")
	}
}

func TestRouteLatency(t *testing.T) {
	ts := newTestShop(t, noFailures)
	adminDo(t, ts.admin, "PATCH", "/faults", "secret", `{"route_latency":{"/order/{id}":{"fixed":"40ms"}}}`)
	start := time.Now()
	do(t, ts.handler, "GET", "/order/ord_x", "")
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("GET /order/{id} took %v, want at least 40ms", took)
	}
	server := spanNamed(t, ts.spans.Ended(), "GET /order/{id}")
	if took := server.EndTime().Sub(server.StartTime()); took < 40*time.Millisecond {
		t.Errorf("the injected latency is not inside the server span (%v)", took)
	}
}

// `minishop fault` drives the admin API of a running shop.
func TestFaultCommand(t *testing.T) {
	adminAddr := freeAddr(t)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	t.Setenv("MINISHOP_ADMIN_TOKEN", "lab-token")
	t.Setenv("MINISHOP_ADMIN_ADDR", adminAddr)
	addr, stop, _ := startRun(t)
	defer stop()

	var out syncBuffer
	env := func(k string) string {
		return map[string]string{"MINISHOP_ADMIN_TOKEN": "lab-token", "MINISHOP_ADMIN_ADDR": adminAddr}[k]
	}
	if err := run(t.Context(), []string{"minishop", "fault", "-payment-failure-rate", "1", "-payment-failure-reason", "card_declined", "-route-latency", "/order=1ms+1ms"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"payment_failure_rate": 1`) || !strings.Contains(out.String(), `"/order"`) {
		t.Errorf("fault output:\n%s", out.String())
	}
	resp, err := http.Post("http://"+addr+"/order", "application/json", strings.NewReader(`{"items":[{"sku":"MUG-OTEL","quantity":1}]}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("order: %v %v", resp, err)
	}
	var o order
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp := post(t, "http://"+addr+"/payment/pay", `{"order_id":"`+o.ID+`"}`); resp.StatusCode != 402 {
		t.Errorf("payment after `fault -payment-failure-rate 1` = %d, want a failure", resp.StatusCode)
	}

	wrong := func(k string) string {
		return map[string]string{"MINISHOP_ADMIN_TOKEN": "nope", "MINISHOP_ADMIN_ADDR": adminAddr}[k]
	}
	if err := run(t.Context(), []string{"minishop", "fault"}, wrong, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("fault with a wrong token: %v", err)
	}
}
