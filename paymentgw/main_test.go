// These tests cover the fault-injection API and the real program, run() with its listeners.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

func TestAdminAPI(t *testing.T) {
	g := newTestGateway(t, faultSettings{FailureRate: 0.05, Latency: latency{Fixed: duration(30 * time.Millisecond), Jitter: duration(40 * time.Millisecond)}, Stall: duration(5 * time.Second)})
	auth := []string{"Authorization", "Bearer secret"}
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "secret"}} {
		rec := do(t, g.admin, "GET", "/faults", "", h...)
		if rec.Code != 401 || decodeBody[errorResponse](t, rec.Body.Bytes()).Reason != "unauthorized" || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("GET /faults with %q = %d %s", h, rec.Code, rec.Body)
		}
	}
	const startup = `{"failure_rate":0.05,"failure_reason":"","latency":{"fixed":"30ms","jitter":"40ms"},"timeout_rate":0,"stall":"5s"}`
	if rec := do(t, g.admin, "GET", "/faults", "", auth...); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != startup {
		t.Fatalf("GET /faults = %d %s", rec.Code, rec.Body)
	}

	rec := do(t, g.admin, "PATCH", "/faults", `{"failure_rate":1,"latency":{"fixed":"250ms"},"timeout_rate":0.5}`, auth...)
	const patched = `{"failure_rate":1,"failure_reason":"","latency":{"fixed":"250ms","jitter":"40ms"},"timeout_rate":0.5,"stall":"5s"}`
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != patched {
		t.Fatalf("PATCH /faults = %d %s", rec.Code, rec.Body)
	}
	if s := g.faults.get(); s.FailureRate != 1 || s.TimeoutRate != 0.5 {
		t.Errorf("settings after PATCH = %+v", s)
	}
	if v, ok := g.gauge(t, "minishop_fault_payment_failure_rate"); !ok || v != 1 {
		t.Errorf("minishop_fault_payment_failure_rate = %v, %v", v, ok)
	}
	if v, ok := g.gauge(t, "minishop_fault_payment_timeout_rate"); !ok || v != 0.5 {
		t.Errorf("minishop_fault_payment_timeout_rate = %v, %v", v, ok)
	}

	for _, tt := range []struct {
		body   string
		fields []string
	}{
		{`{"failure_rate":1.5,"timeout_rate":-1}`, []string{"failure_rate", "timeout_rate"}},
		{`{"failure_reason":"bad_luck","stall":"21s"}`, []string{"failure_reason", "stall"}},
		{`{"latency":{"fixed":"15s","jitter":"6s"}}`, []string{"latency"}},
		{`{"latency":{"fixed":"-1ms"}}`, []string{"latency"}},
		{`{"no_such_knob":1}`, nil},
		{`{"stall":"soon"}`, nil},
	} {
		rec := do(t, g.admin, "PATCH", "/faults", tt.body, auth...)
		body := decodeBody[errorResponse](t, rec.Body.Bytes())
		if rec.Code != 400 || len(body.Details) != len(tt.fields) {
			t.Errorf("PATCH %s = %d %s", tt.body, rec.Code, rec.Body)
		}
		for _, f := range tt.fields {
			if body.Details[f] == "" {
				t.Errorf("PATCH %s: no details for %s: %v", tt.body, f, body.Details)
			}
		}
	}
	if rec := do(t, g.admin, "GET", "/faults", "", auth...); strings.TrimSpace(rec.Body.String()) != patched {
		t.Errorf("a refused PATCH changed the settings: %s", rec.Body)
	}

	if rec := do(t, g.admin, "POST", "/faults/reset", "", auth...); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != startup {
		t.Errorf("POST /faults/reset = %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, g.admin, "DELETE", "/faults", "", auth...); rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD, PATCH" {
		t.Errorf("DELETE /faults = %d %v", rec.Code, rec.Header())
	}
	if rec := do(t, g.admin, "GET", "/nope", "", auth...); rec.Code != 404 {
		t.Errorf("GET /nope = %d", rec.Code)
	}

	// Two changes, two of everything: a log record with before and after, a root span with an event.
	logs := g.logs.find("fault injection changed")
	if len(logs) != 2 {
		t.Fatalf("%d 'fault injection changed' records, want 2", len(logs))
	}
	attrs := map[string]string{}
	logs[0].WalkAttributes(func(kv attribute.KeyValue) bool { attrs[string(kv.Key)] = kv.Value.Emit(); return true })
	if attrs["change"] != "patch" || !strings.Contains(attrs["before"], `"failure_rate":0.05`) || !strings.Contains(attrs["after"], `"failure_rate":1`) {
		t.Errorf("first change record attributes = %v", attrs)
	}
	if !strings.Contains(g.stdout.String(), `"msg":"fault injection changed","change":"patch","before":"{\"failure_rate\":0.05`) {
		t.Errorf("stdout lacks the change with its before value:\n%s", g.stdout)
	}
	spans := g.spansNamed("ChangeFaults")
	if len(spans) != 2 || len(spans[0].Events()) != 1 || spans[0].Events()[0].Name != "faults changed" || spans[0].Parent().IsValid() {
		t.Errorf("ChangeFaults spans = %d", len(spans))
	}
	if strings.Contains(g.stdout.String(), "secret") {
		t.Error("the admin token was logged")
	}
}

// startRun runs the real program with env and waits for both addresses in its startup log lines.
func startRun(t *testing.T, env map[string]string) (addr, adminAddr string, stop func() error, stdout *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"paymentgw"}, func(k string) string { return env[k] }, stdout, io.Discard)
	}()
	eventually(t, 10*time.Second, "the gateway logs its addresses", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(stdout.String()))
		for sc.Scan() {
			var line struct {
				Msg       string `json:"msg"`
				Addr      string `json:"addr"`
				AdminAddr string `json:"admin_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "payment gateway listening":
				addr = line.Addr
			case "fault-injection API listening":
				adminAddr = line.AdminAddr
			}
		}
		return addr != "" && adminAddr != ""
	})
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("run did not return 20s after cancel")
		}
	}
	return addr, adminAddr, stop, stdout
}

func TestRun(t *testing.T) {
	addr, adminAddr, stop, stdout := startRun(t, map[string]string{
		"PAYMENTGW_ADDR": "127.0.0.1:0", "PAYMENTGW_ADMIN_ADDR": "127.0.0.1:0", "PAYMENTGW_ADMIN_TOKEN": "tok",
		"PAYMENTGW_FAILURE_RATE": "0", "PAYMENTGW_LATENCY": "0s", "PAYMENTGW_JITTER": "0s",
		"OTEL_SDK_DISABLED": "true",
	})
	base := "http://" + addr
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("POST", base+"/v1/charges", strings.NewReader(validCharge))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "run-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("POST /v1/charges = %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", "http://"+adminAddr+"/faults", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var s faultSettings
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != 200 || s.FailureRate != 0 || s.Stall != duration(5*time.Second) {
		t.Errorf("GET /faults = %d %+v", resp.StatusCode, s)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, msg := range []string{`"msg":"charge succeeded"`, `"msg":"payment gateway stopped"`} {
		if !strings.Contains(stdout.String(), msg) {
			t.Errorf("stdout lacks %s:\n%s", msg, stdout)
		}
	}
	if strings.Contains(stdout.String(), "tok\"") {
		t.Error("the admin token was logged")
	}
}

// With a Collector address where nothing listens, the gateway still serves and stops in time.
func TestRunWithoutCollector(t *testing.T) {
	addr, _, stop, _ := startRun(t, map[string]string{
		"PAYMENTGW_ADDR": "127.0.0.1:0", "PAYMENTGW_ADMIN_ADDR": "127.0.0.1:0", "PAYMENTGW_ADMIN_TOKEN": "tok",
		"PAYMENTGW_SHUTDOWN_TIMEOUT": "1s", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
	})
	resp, err := http.Get("http://" + addr + "/v1/charges?reference=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if err := stop(); err != nil && !strings.Contains(err.Error(), "telemetry shutdown") {
		t.Fatalf("run: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a 1s timeout", took)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, env := range []map[string]string{
		{"PAYMENTGW_FAILURE_RATE": "2"},
		{"PAYMENTGW_FAILURE_RATE": "lots"},
		{"PAYMENTGW_FAILURE_REASON": "bad_luck"},
		{"PAYMENTGW_LATENCY": "soon"},
		{"PAYMENTGW_JITTER": "-1s"},
		{"PAYMENTGW_LATENCY": "15s", "PAYMENTGW_JITTER": "6s"},
		{"PAYMENTGW_TIMEOUT_RATE": "-0.1"},
		{"PAYMENTGW_STALL": "1m"},
		{"PAYMENTGW_MAX_CHARGES": "0"},
		{"PAYMENTGW_SHUTDOWN_TIMEOUT": "0s"},
		{"OTEL_TRACES_EXPORTER": "zipkin"},
	} {
		err := run(t.Context(), []string{"paymentgw"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run with %v = nil, want an error", env)
		}
	}
	if err := run(t.Context(), []string{"paymentgw", "extra"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("run with an argument = nil, want an error")
	}
}
