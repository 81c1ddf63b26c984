package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// duration is a time.Duration that reads and writes JSON as "250ms".
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"250ms\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"250ms\", not %q", s)
	}
	*d = duration(v)
	return nil
}

// latency is a fixed delay plus a random one of up to Jitter.
type latency struct {
	Fixed  duration `json:"fixed"`
	Jitter duration `json:"jitter"`
}

func (l latency) draw() time.Duration {
	d := time.Duration(l.Fixed)
	if l.Jitter > 0 {
		d += rand.N(time.Duration(l.Jitter))
	}
	return d
}

// faultSettings are the lab's knobs for trouble. They start from flags and
// environment variables and can be changed at runtime through the admin API.
type faultSettings struct {
	// PaymentFailureRate is the share of payments the simulated provider fails.
	PaymentFailureRate float64 `json:"payment_failure_rate"`
	// PaymentFailureReason makes every failure this one (card_declined, insufficient_funds or
	// gateway_timeout) instead of the usual mix; gateway_timeout is a provider outage (504).
	PaymentFailureReason string `json:"payment_failure_reason"`
	// PaymentLatency is how long the simulated provider takes.
	PaymentLatency latency `json:"payment_latency"`
	// PaymentTimeoutRate (payment gateway only) is the share of charges the gateway makes but answers too
	// late: the shop's client times out and retries with the same idempotency key.
	PaymentTimeoutRate float64 `json:"payment_timeout_rate"`
	// InventoryDelay slows DeductInventory down (the "slow inventory" scenario).
	InventoryDelay latency `json:"inventory_delay"`
	// OutOfStockRate refuses this share of reservations as out of stock (an "out-of-stock storm").
	OutOfStockRate float64 `json:"out_of_stock_rate"`
	// RouteLatency adds latency to every request of a route, by route pattern ("/order").
	RouteLatency map[string]latency `json:"route_latency"`
}

// maxFaultDelay bounds every injected delay below the server's write timeout.
const maxFaultDelay = 20 * time.Second

func (s faultSettings) validate() map[string]string {
	problems := map[string]string{}
	rate := func(name string, v float64) {
		if v < 0 || v > 1 {
			problems[name] = "must be between 0 and 1"
		}
	}
	delay := func(name string, l latency) {
		if l.Fixed < 0 || l.Jitter < 0 || time.Duration(l.Fixed+l.Jitter) > maxFaultDelay {
			problems[name] = fmt.Sprintf("fixed and jitter must be positive and add up to at most %s", maxFaultDelay)
		}
	}
	rate("payment_failure_rate", s.PaymentFailureRate)
	rate("payment_timeout_rate", s.PaymentTimeoutRate)
	if s.PaymentFailureReason != "" && failureByReason(s.PaymentFailureReason) == nil {
		problems["payment_failure_reason"] = "must be empty (the usual mix), card_declined, insufficient_funds or gateway_timeout"
	}
	rate("out_of_stock_rate", s.OutOfStockRate)
	delay("payment_latency", s.PaymentLatency)
	delay("inventory_delay", s.InventoryDelay)
	for route, l := range s.RouteLatency {
		if !slices.Contains(apiRoutes, route) {
			problems["route_latency."+truncate(route)] = "unknown route; use one of " + strings.Join(apiRoutes, ", ")
			continue
		}
		delay("route_latency."+route, l)
	}
	return problems
}

// apiRoutes are the routes whose latency can be raised.
var apiRoutes = []string{"/order", "/order/{id}", "/payment/pay"}

// faults holds the current settings; handlers read them on every request.
// With a payment gateway, the gateway holds the payment settings (it simulates the provider):
// remote is its admin API, and the admin handlers read and change those settings there; without
// remote they cannot be changed from the shop.
type faults struct {
	mu       sync.RWMutex
	current  faultSettings
	defaults faultSettings
	gateway  bool // payments go to the payment gateway, not the in-process simulator
	remote   *gatewayFaults
}

func newFaults(defaults faultSettings, gateway bool, remote *gatewayFaults) *faults {
	return &faults{current: defaults.clone(), defaults: defaults.clone(), gateway: gateway, remote: remote}
}

func (s faultSettings) clone() faultSettings {
	if s.RouteLatency != nil {
		m := make(map[string]latency, len(s.RouteLatency))
		for k, v := range s.RouteLatency {
			m[k] = v
		}
		s.RouteLatency = m
	}
	return s
}

func (f *faults) get() faultSettings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.current.clone()
}

// routeLatency is the latency injected into a route, read without copying the settings
// (it runs on every request).
func (f *faults) routeLatency(route string) (latency, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	l, ok := f.current.RouteLatency[route]
	return l, ok
}

func (f *faults) set(s faultSettings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current = s.clone()
}

// view is the settings as they are: the payment ones from the gateway when it holds them.
func (f *faults) view(ctx context.Context) (faultSettings, error) {
	s := f.get()
	if f.remote == nil {
		return s, nil
	}
	g, err := f.remote.call(ctx, http.MethodGet, "/faults", nil)
	return s.withGateway(g), err
}

// provider is the simulated payment provider as currently configured.
func (f *faults) provider() paymentProvider {
	s := f.get()
	return paymentProvider{
		failureRate:   s.PaymentFailureRate,
		failureReason: s.PaymentFailureReason,
		latency:       time.Duration(s.PaymentLatency.Fixed),
		jitter:        time.Duration(s.PaymentLatency.Jitter),
	}
}

// wait sleeps as long as l says, or until ctx ends.
func wait(ctx context.Context, l latency) {
	d := l.draw()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// registerFaultGauges exports the current settings as gauges, so a dashboard
// shows when trouble was switched on: minishop_fault_payment_failure_rate,
// minishop_fault_out_of_stock_rate, minishop_fault_inventory_delay_seconds and
// minishop_fault_route_latency_seconds{route} in Prometheus.
func registerFaultGauges(mp metric.MeterProvider, f *faults) error {
	meter := mp.Meter("minishop")
	failRate, err := meter.Float64ObservableGauge("minishop_fault_payment_failure_rate",
		metric.WithDescription("Share of payments the simulated provider fails, as set now."))
	if err != nil {
		return err
	}
	oosRate, err := meter.Float64ObservableGauge("minishop_fault_out_of_stock_rate",
		metric.WithDescription("Share of reservations refused as out of stock by fault injection, as set now."))
	if err != nil {
		return err
	}
	invDelay, err := meter.Float64ObservableGauge("minishop_fault_inventory_delay", metric.WithUnit("s"),
		metric.WithDescription("Mean delay injected into DeductInventory, as set now."))
	if err != nil {
		return err
	}
	routeDelay, err := meter.Float64ObservableGauge("minishop_fault_route_latency", metric.WithUnit("s"),
		metric.WithDescription("Mean latency injected into every request of a route, as set now."))
	if err != nil {
		return err
	}
	mean := func(l latency) float64 { return (time.Duration(l.Fixed) + time.Duration(l.Jitter)/2).Seconds() }
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := f.get()
		if !f.gateway { // else the gateway holds it, and exports it
			o.ObserveFloat64(failRate, s.PaymentFailureRate)
		}
		o.ObserveFloat64(oosRate, s.OutOfStockRate)
		o.ObserveFloat64(invDelay, mean(s.InventoryDelay))
		for _, route := range apiRoutes {
			o.ObserveFloat64(routeDelay, mean(s.RouteLatency[route]), metric.WithAttributes(attribute.String("route", route)))
		}
		return nil
	}, failRate, oosRate, invDelay, routeDelay)
	return err
}

// newAdminServer is the fault-injection API. It listens on its own address
// (localhost natively, the internal network in compose) and wants the token.
//
//	GET  /faults        the current settings
//	PATCH /faults       change some of them: {"payment_failure_rate":0.5}
//	POST /faults/reset  back to the settings the shop started with
func newAdminServer(tel *telemetry, f *faults, token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /faults", handleGetFaults(f))
	mux.Handle("PATCH /faults", handlePatchFaults(tel, f))
	mux.Handle("POST /faults/reset", handleResetFaults(tel, f))
	// Profiles of the running shop, for `go tool pprof` (the pipeline benchmark's -profile uses them).
	mux.Handle("GET /debug/pprof/profile", handleCPUProfile())
	mux.Handle("GET /debug/pprof/{name}", handleProfile())
	mux.Handle("/", handleNotFound())
	return requireToken(token)(mux)
}

// injectLatency delays requests of routes that fault injection slowed down.
func injectLatency(f *faults) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if l, ok := f.routeLatency(routeLabel(r.Pattern)); ok {
				wait(r.Context(), l)
			}
			next.ServeHTTP(w, r)
		})
	}
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// requireToken lets through only requests with "Authorization: Bearer <token>".
func requireToken(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || !constantTimeEqual(got, token) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="minishop-admin"`)
				writeError(r.Context(), w, http.StatusUnauthorized, "unauthorized", "missing or wrong admin token (Authorization: Bearer $MINISHOP_ADMIN_TOKEN)")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func handleGetFaults(f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := f.view(r.Context())
		if err != nil {
			writeGatewayAdminError(r.Context(), w, err)
			return
		}
		encode(w, http.StatusOK, s)
	})
}

// faultPatch decodes onto the current settings, so fields left out keep their value.
type faultPatch struct{ faultSettings }

func (p faultPatch) validate() map[string]string { return p.faultSettings.validate() }

func handlePatchFaults(tel *telemetry, f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read-modify-write under the lock would block every request; the admin API
		// has one user at a time, so a last-writer-wins race is acceptable here.
		ctx := r.Context()
		before, err := f.view(ctx)
		if err != nil {
			writeGatewayAdminError(ctx, w, err)
			return
		}
		patch, ok := decodeOnto(w, r, faultPatch{before.clone()})
		if !ok {
			return
		}
		after := patch.faultSettings
		switch {
		case !f.gateway && after.PaymentTimeoutRate != 0:
			writeJSONError(ctx, w, http.StatusBadRequest, "invalid_request", "invalid request", map[string]string{
				"payment_timeout_rate": "needs the payment gateway (MINISHOP_PAYMENT_GATEWAY_URL); the in-process provider always answers"})
			return
		case f.gateway && f.remote == nil && gatewayPart(after) != gatewayPart(before):
			writeJSONError(ctx, w, http.StatusBadRequest, "invalid_request", "invalid request", map[string]string{
				"payment_*": "the payment gateway holds the payment settings; set MINISHOP_PAYMENT_GATEWAY_ADMIN_URL (and its token) to change them from here"})
			return
		case f.remote != nil:
			g, err := f.remote.call(ctx, http.MethodPatch, "/faults", gatewayPart(after))
			if err != nil {
				writeGatewayAdminError(ctx, w, err)
				return
			}
			after = after.withGateway(g)
		}
		changeFaults(ctx, tel, f, before, after, "patch")
		encode(w, http.StatusOK, after)
	})
}

func handleResetFaults(tel *telemetry, f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		before, err := f.view(ctx)
		if err != nil {
			writeGatewayAdminError(ctx, w, err)
			return
		}
		after := f.defaults.clone()
		if f.remote != nil {
			g, err := f.remote.call(ctx, http.MethodPost, "/faults/reset", nil)
			if err != nil {
				writeGatewayAdminError(ctx, w, err)
				return
			}
			after = after.withGateway(g)
		}
		changeFaults(ctx, tel, f, before, after, "reset")
		encode(w, http.StatusOK, after)
	})
}

// gatewayFaults is the payment gateway's fault-injection API (paymentgw/, GET/PATCH /faults,
// POST /faults/reset), where the payment settings live when the shop has a gateway.
type gatewayFaults struct {
	base   string
	token  string
	client *http.Client
}

func newGatewayFaults(base, token string) *gatewayFaults {
	return &gatewayFaults{base: strings.TrimSuffix(base, "/"), token: token, client: &http.Client{Timeout: 5 * time.Second}}
}

// gatewayFaultSettings are the gateway's names for the payment settings.
type gatewayFaultSettings struct {
	FailureRate   float64 `json:"failure_rate"`
	FailureReason string  `json:"failure_reason"`
	Latency       latency `json:"latency"`
	TimeoutRate   float64 `json:"timeout_rate"`
}

func gatewayPart(s faultSettings) gatewayFaultSettings {
	return gatewayFaultSettings{FailureRate: s.PaymentFailureRate, FailureReason: s.PaymentFailureReason,
		Latency: s.PaymentLatency, TimeoutRate: s.PaymentTimeoutRate}
}

func (s faultSettings) withGateway(g gatewayFaultSettings) faultSettings {
	s.PaymentFailureRate, s.PaymentFailureReason = g.FailureRate, g.FailureReason
	s.PaymentLatency, s.PaymentTimeoutRate = g.Latency, g.TimeoutRate
	return s
}

// call sends one admin request to the gateway and answers its settings.
func (g *gatewayFaults) call(ctx context.Context, method, path string, body any) (gatewayFaultSettings, error) {
	var out gatewayFaultSettings
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return out, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := g.client.Do(req)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return out, &gatewayAdminError{status: res.StatusCode, body: truncate(string(bytes.TrimSpace(raw)))}
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("payment gateway admin API: %w", err)
	}
	return out, nil
}

// gatewayAdminError is the gateway's admin API saying no (a wrong token, a setting it refuses).
type gatewayAdminError struct {
	status int
	body   string
}

func (e *gatewayAdminError) Error() string {
	return fmt.Sprintf("payment gateway admin API answered %d: %s", e.status, e.body)
}

// writeGatewayAdminError: the gateway holds the payment settings and could not be asked, or refused.
func writeGatewayAdminError(ctx context.Context, w http.ResponseWriter, err error) {
	var refused *gatewayAdminError
	if errors.As(err, &refused) {
		writeError(ctx, w, http.StatusBadGateway, "payment_gateway_admin_error", err.Error())
		return
	}
	writeError(ctx, w, http.StatusBadGateway, "payment_gateway_unavailable", err.Error())
}

// changeFaults applies new settings and leaves a trace of it: a span with a
// "faults changed" event and a log record with the old and new values.
func changeFaults(ctx context.Context, tel *telemetry, f *faults, before, after faultSettings, how string) {
	ctx, span := tel.tracer.Start(ctx, "ChangeFaults", trace.WithNewRoot())
	defer span.End()
	f.set(after)
	old, _ := json.Marshal(before)
	now, _ := json.Marshal(after)
	span.AddEvent("faults changed", trace.WithAttributes(
		attribute.String("app.faults.change", how),
		attribute.String("app.faults.before", string(old)),
		attribute.String("app.faults.after", string(now)),
	))
	tel.logger.WarnContext(ctx, "fault injection changed", "change", how,
		"payment_failure_rate", after.PaymentFailureRate,
		"payment_latency", time.Duration(after.PaymentLatency.Fixed).String(),
		"inventory_delay", time.Duration(after.InventoryDelay.Fixed).String(),
		"out_of_stock_rate", after.OutOfStockRate,
		"before", string(old), "after", string(now))
}

// handleCPUProfile answers a CPU profile of the next ?seconds=N (default 10, at most 120).
func handleCPUProfile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seconds := 10
		if s := r.URL.Query().Get("seconds"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 120 {
				writeError(r.Context(), w, http.StatusBadRequest, "invalid_request", "seconds must be 1 to 120")
				return
			}
			seconds = n
		}
		d := time.Duration(seconds) * time.Second
		// The admin server's write timeout is shorter than a long profile.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 10*time.Second))
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := pprof.StartCPUProfile(w); err != nil {
			writeError(r.Context(), w, http.StatusConflict, "profile_running", err.Error())
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		pprof.StopCPUProfile()
	})
}

// handleProfile answers a runtime profile by name: allocs, heap, goroutine, mutex, block, threadcreate.
func handleProfile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := pprof.Lookup(r.PathValue("name"))
		if p == nil {
			writeError(r.Context(), w, http.StatusNotFound, "not_found", "no such profile; try allocs, heap, goroutine")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_ = p.WriteTo(w, 0)
	})
}
