package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// Whatever the body, decoding answers with a 2xx or a JSON 4xx: never a 5xx or a panic.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"items":[{"sku":"MUG-OTEL","quantity":2}]}`,
		`{"items":[{"sku":"LIMITED-PIN","quantity":6}]}`,
		`{"order_id":"ord_0000000000000001","method":"card"}`,
		`{"items":[`, `null`, `[]`, `""`, `{"items":[{"sku":"A","quantity":-1}]}`,
		`{"items":[{"sku":"MUG-OTEL","quantity":1e309}]}`, "\xff\xfe", `{"items":{}}`,
	} {
		f.Add(seed)
	}
	ts := newTestShop(f, noFailures)
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/order", "/payment/pay"} {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			ts.handler.ServeHTTP(rec, req)
			switch {
			case rec.Code == 200 || rec.Code == 201:
			case rec.Code >= 400 && rec.Code < 500:
				var e errorResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Reason == "" || e.Error == "" {
					t.Fatalf("POST %s %q: %d with body %q", path, body, rec.Code, rec.Body)
				}
			default:
				t.Fatalf("POST %s %q: status %d", path, body, rec.Code)
			}
		}
	})
}
