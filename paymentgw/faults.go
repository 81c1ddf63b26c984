// This file holds the gateway's fault-injection knobs and the token-protected admin API that turns
// them at runtime, so a lab scenario can make the payment provider slow, failing or silent.
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
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

// faultSettings are the knobs. They start from the PAYMENTGW_* variables and change through the admin API.
type faultSettings struct {
	// FailureRate is the share of charges that fail.
	FailureRate float64 `json:"failure_rate"`
	// FailureReason makes every failure this one; empty: a mix of card_declined, insufficient_funds, gateway_timeout.
	FailureReason string `json:"failure_reason"`
	// Latency is how long Authorize takes.
	Latency latency `json:"latency"`
	// TimeoutRate is the share of charges whose answer is held back for Stall after the charge is made.
	TimeoutRate float64  `json:"timeout_rate"`
	Stall       duration `json:"stall"`
}

// maxFaultDelay bounds every injected delay below the server's write timeout.
const maxFaultDelay = 20 * time.Second

func (s faultSettings) validate() map[string]string {
	problems := map[string]string{}
	if s.FailureRate < 0 || s.FailureRate > 1 {
		problems["failure_rate"] = "must be between 0 and 1"
	}
	if s.TimeoutRate < 0 || s.TimeoutRate > 1 {
		problems["timeout_rate"] = "must be between 0 and 1"
	}
	if s.FailureReason != "" && statusOf(s.FailureReason) == 0 {
		problems["failure_reason"] = "must be empty (a mix), card_declined, insufficient_funds or gateway_timeout"
	}
	if l := s.Latency; l.Fixed < 0 || l.Jitter < 0 || time.Duration(l.Fixed+l.Jitter) > maxFaultDelay {
		problems["latency"] = fmt.Sprintf("fixed and jitter must not be negative and add up to at most %s", maxFaultDelay)
	}
	if s.Stall < 0 || time.Duration(s.Stall) > maxFaultDelay {
		problems["stall"] = fmt.Sprintf("must be between 0s and %s", maxFaultDelay)
	}
	return problems
}

// faults holds the current settings; every charge reads them.
type faults struct {
	edit     sync.Mutex // held by an admin change, from reading the settings to storing the new ones
	mu       sync.RWMutex
	current  faultSettings
	defaults faultSettings
}

func newFaults(defaults faultSettings) *faults {
	return &faults{current: defaults, defaults: defaults}
}

func (f *faults) get() faultSettings {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.current
}

func (f *faults) set(s faultSettings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current = s
}

// registerFaultGauges exports the current rates, so a dashboard shows when trouble began:
// minishop_fault_payment_failure_rate (the name the shop uses for the same knob when it simulates
// payments in-process; whoever holds the setting exports it) and minishop_fault_payment_timeout_rate.
func registerFaultGauges(mp metric.MeterProvider, f *faults) error {
	meter := mp.Meter(scopeName)
	failRate, err := meter.Float64ObservableGauge("minishop_fault_payment_failure_rate",
		metric.WithDescription("Share of charges the payment gateway fails, as set now."))
	if err != nil {
		return err
	}
	timeoutRate, err := meter.Float64ObservableGauge("minishop_fault_payment_timeout_rate",
		metric.WithDescription("Share of charges whose answer the payment gateway holds back, as set now."))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := f.get()
		o.ObserveFloat64(failRate, s.FailureRate)
		o.ObserveFloat64(timeoutRate, s.TimeoutRate)
		return nil
	}, failRate, timeoutRate)
	return err
}

// newAdminServer is the fault-injection API, on its own address, for holders of the token only.
//
//	GET   /faults        the current settings
//	PATCH /faults        change some of them: {"failure_rate":0.5}
//	POST  /faults/reset  back to the settings the gateway started with
func newAdminServer(tel *telemetry, f *faults, token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /faults", handleGetFaults(f))
	mux.Handle("PATCH /faults", handlePatchFaults(tel, f))
	mux.Handle("POST /faults/reset", handleResetFaults(tel, f))
	mux.Handle("/faults", handleMethodNotAllowed("GET, HEAD, PATCH"))
	mux.Handle("/faults/reset", handleMethodNotAllowed("POST"))
	mux.Handle("/", handleNotFound("try GET or PATCH /faults, POST /faults/reset"))
	return requireToken(token)(mux)
}

// requireToken lets through only requests with "Authorization: Bearer <token>".
func requireToken(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="payment-gateway-admin"`)
				writeError(w, r, http.StatusUnauthorized, "unauthorized",
					"missing or wrong admin token (Authorization: Bearer $PAYMENTGW_ADMIN_TOKEN)", nil)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func handleGetFaults(f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, f.get())
	})
}

func handlePatchFaults(tel *telemetry, f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.edit.Lock()
		defer f.edit.Unlock()
		before := f.get()
		// Decoded onto the current settings, so the fields left out keep their values.
		after, ok := decode(w, r, before)
		if !ok {
			return
		}
		changeFaults(r.Context(), tel, f, before, after, "patch")
		encode(w, http.StatusOK, after)
	})
}

func handleResetFaults(tel *telemetry, f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.edit.Lock()
		defer f.edit.Unlock()
		changeFaults(r.Context(), tel, f, f.get(), f.defaults, "reset")
		encode(w, http.StatusOK, f.defaults)
	})
}

// changeFaults applies new settings and leaves a trace of it: a new root span ChangeFaults with a
// "faults changed" event, and a warning log record with the settings before and after.
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
	tel.logger.WarnContext(ctx, "fault injection changed", "change", how, "before", string(old), "after", string(now))
}
