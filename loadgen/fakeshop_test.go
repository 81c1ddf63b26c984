package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// fakeShop mimics the MiniShop API just enough for the load generator: the same routes, statuses
// and reasons, no stock limits, and payments failing (504 gateway_timeout) at failureRate.
// It counts what it was sent and keeps every request's traceparent header.
type fakeShop struct {
	failureRate float64
	t           *testing.T

	mu         sync.Mutex
	rng        *rand.Rand
	counts     map[string]int // by kind of request: create, pay, lookup, bad_json, unknown_sku, pay_again
	status     map[int]int
	orders     map[string]string // id -> status
	lines      map[int]int       // orders by number of lines
	skus       map[string]int    // lines by SKU
	quantities map[int]int       // lines by quantity
	requests   []recorded
}

type recorded struct {
	method, path, traceparent, userAgent string
	status                               int
}

var fakeCatalogue = map[string]bool{"TEE-BLK-M": true, "MUG-OTEL": true, "HOODIE-GRY-L": true, "STICKER-PACK": true, "LIMITED-PIN": true}

func newFakeShop(t *testing.T, failureRate float64) (*fakeShop, *httptest.Server) {
	s := &fakeShop{
		failureRate: failureRate,
		t:           t,
		rng:         rand.New(rand.NewPCG(1, 2)),
		counts:      map[string]int{},
		status:      map[int]int{},
		orders:      map[string]string{},
		lines:       map[int]int{},
		skus:        map[string]int{},
		quantities:  map[int]int{},
	}
	srv := httptest.NewServer(s.handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *fakeShop) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("POST /order", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Items []struct {
				SKU      string `json:"sku"`
				Quantity int    `json:"quantity"`
			} `json:"items"`
		}
		if !s.decode(w, r, &req) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		seen := map[string]bool{}
		for _, it := range req.Items {
			if !fakeCatalogue[it.SKU] {
				s.count(r, "unknown_sku", 400)
				reply(w, 400, map[string]string{"reason": "unknown_sku"})
				return
			}
			if seen[it.SKU] || it.Quantity < 1 || it.Quantity > 3 {
				s.t.Errorf("order outside the loadgen's shape: %+v", req.Items)
			}
			seen[it.SKU] = true
			s.skus[it.SKU]++
			s.quantities[it.Quantity]++
		}
		if n := len(req.Items); n < 1 || n > 3 {
			s.t.Errorf("order with %d lines", n)
		}
		s.lines[len(req.Items)]++
		id := fmt.Sprintf("ord_%016x", s.rng.Uint64())
		s.orders[id] = "created"
		s.count(r, "create", 201)
		reply(w, 201, map[string]string{"order_id": id, "status": "created"})
	})
	mux.HandleFunc("POST /payment/pay", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			OrderID string `json:"order_id"`
			Method  string `json:"method"`
		}
		if !s.decode(w, r, &req) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		switch st, ok := s.orders[req.OrderID]; {
		case !ok:
			s.count(r, "pay_unknown_order", 404)
			reply(w, 404, map[string]string{"reason": "order_not_found"})
		case st == "paid":
			s.count(r, "pay_again", 409)
			reply(w, 409, map[string]string{"reason": "already_paid"})
		case s.rng.Float64() < s.failureRate:
			s.orders[req.OrderID] = "payment_failed"
			s.count(r, "pay", 504)
			reply(w, 504, map[string]string{"reason": "gateway_timeout"})
		default:
			s.orders[req.OrderID] = "paid"
			s.count(r, "pay", 200)
			reply(w, 200, map[string]string{"order_id": req.OrderID, "status": "paid"})
		}
	})
	mux.HandleFunc("GET /order/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st, ok := s.orders[r.PathValue("id")]
		if !ok {
			s.count(r, "lookup_unknown_order", 404)
			reply(w, 404, map[string]string{"reason": "order_not_found"})
			return
		}
		s.count(r, "lookup", 200)
		reply(w, 200, map[string]string{"order_id": r.PathValue("id"), "status": st})
	})
	return mux
}

// decode answers malformed JSON with 400 invalid_request, as the shop does.
func (s *fakeShop) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("%s %s without Content-Type: application/json", r.Method, r.URL.Path)
	}
	b, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.count(r, "bad_json", 400)
		reply(w, 400, map[string]string{"reason": "invalid_request"})
		return false
	}
	return true
}

// count records a request; s.mu is held.
func (s *fakeShop) count(r *http.Request, kind string, status int) {
	s.counts[kind]++
	s.status[status]++
	s.requests = append(s.requests, recorded{
		method: r.Method, path: r.URL.Path, status: status,
		traceparent: r.Header.Get("traceparent"), userAgent: r.UserAgent(),
	})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// snapshot copies the counters under the lock.
func (s *fakeShop) snapshot() (counts, status map[string]int, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts, status = map[string]int{}, map[string]int{}
	for k, v := range s.counts {
		counts[k] = v
		total += v
	}
	for k, v := range s.status {
		status[fmt.Sprint(k)] = v
	}
	return counts, status, total
}

// otlpSink is a minimal OTLP/gRPC trace receiver: what a Collector would be sent.
type otlpSink struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	names []string // service.name of each span's resource, in step with spans
}

func (s *otlpSink) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				s.spans = append(s.spans, sp)
				s.names = append(s.names, service)
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func startOTLPSink(t *testing.T) (*otlpSink, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &otlpSink{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, sink)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return sink, ln.Addr().String()
}

// freeAddr is a loopback address nothing listens on (it was free a moment ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a getenv over a map, for run().
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// runFor runs the real program with args and fails the test if it takes longer than limit.
func runFor(t *testing.T, limit time.Duration, getenv func(string) string, args ...string) (stdout string, took time.Duration, err error) {
	t.Helper()
	out := &syncBuffer{}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- run(t.Context(), append([]string{"loadgen"}, args...), getenv, out, io.Discard) }()
	select {
	case err = <-done:
	case <-time.After(limit):
		t.Fatalf("run did not return within %v; output so far:\n%s", limit, out)
	}
	return out.String(), time.Since(start), err
}
