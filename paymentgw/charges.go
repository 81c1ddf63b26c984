// This file is the gateway's domain: what a charge is, how one is decided (FraudCheck, then
// Authorize, with the fault settings of the moment), and the bounded ledger that remembers every
// idempotency key's first answer, so a retry never charges twice.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Outcomes of a charge: succeeded, or the reason it failed (app.payment.outcome, the outcome label).
const (
	outcomeSucceeded         = "succeeded"
	outcomeCardDeclined      = "card_declined"
	outcomeInsufficientFunds = "insufficient_funds"
	outcomeGatewayTimeout    = "gateway_timeout"
)

// statusOf is the HTTP status a charge of this outcome is answered with; 0 for no outcome.
func statusOf(outcome string) int {
	switch outcome {
	case outcomeSucceeded:
		return http.StatusCreated
	case outcomeCardDeclined, outcomeInsufficientFunds:
		return http.StatusPaymentRequired
	case outcomeGatewayTimeout:
		return http.StatusGatewayTimeout // the acquirer did not answer in time
	}
	return 0
}

const (
	maxAmountCents     = 100_000_000
	maxReferenceLength = 64
	maxKeyLength       = 255
)

// chargeRequest is the body of POST /v1/charges. It is comparable: two requests with the same
// idempotency key must be equal, field by field, to be the same request. No card numbers: the
// API has none, so none can leak into telemetry.
type chargeRequest struct {
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Method      string `json:"method"`
	Reference   string `json:"reference"`
}

func (req chargeRequest) validate() map[string]string {
	problems := map[string]string{}
	if req.AmountCents < 1 || req.AmountCents > maxAmountCents {
		problems["amount_cents"] = fmt.Sprintf("must be between 1 and %d", maxAmountCents)
	}
	if len(req.Currency) != 3 || !isUpper(req.Currency) {
		problems["currency"] = "must be 3 uppercase letters, such as USD"
	}
	switch req.Method {
	case "card", "paypal", "wallet":
	default:
		problems["method"] = "must be one of card, paypal, wallet"
	}
	switch {
	case req.Reference == "":
		problems["reference"] = "required"
	case len(req.Reference) > maxReferenceLength:
		problems["reference"] = fmt.Sprintf("at most %d characters", maxReferenceLength)
	}
	return problems
}

func isUpper(s string) bool {
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// checkIdempotencyKey answers the reason a key is unusable, or "".
func checkIdempotencyKey(key string) (reason, msg string) {
	if key == "" {
		return "missing_idempotency_key", "the Idempotency-Key header is required"
	}
	if len(key) > maxKeyLength {
		return "invalid_idempotency_key", fmt.Sprintf("the Idempotency-Key header must be 1 to %d printable ASCII characters", maxKeyLength)
	}
	for _, c := range []byte(key) {
		if c < 0x20 || c > 0x7e {
			return "invalid_idempotency_key", fmt.Sprintf("the Idempotency-Key header must be 1 to %d printable ASCII characters", maxKeyLength)
		}
	}
	return "", ""
}

// charge is a decided charge, as GET /v1/charges/{id} shows it.
type charge struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"` // succeeded or failed
	AmountCents   int64     `json:"amount_cents"`
	Currency      string    `json:"currency"`
	Method        string    `json:"method"`
	Reference     string    `json:"reference"`
	FailureReason string    `json:"failure_reason,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

func (ch charge) outcome() string {
	if ch.FailureReason != "" {
		return ch.FailureReason
	}
	return outcomeSucceeded
}

// answer is the response to the first request with a key, kept byte for byte for its replays.
type answer struct {
	status int
	body   json.RawMessage
}

func answerFor(ch charge) answer {
	var v any = ch
	switch ch.FailureReason {
	case "":
	case outcomeGatewayTimeout:
		v = errorResponse{Error: "gateway timeout: the acquirer did not answer in time", Reason: ch.FailureReason,
			Details: map[string]string{"charge_id": ch.ID}}
	default:
		v = errorResponse{Error: "payment declined: " + ch.FailureReason, Reason: ch.FailureReason,
			Details: map[string]string{"charge_id": ch.ID}}
	}
	body, _ := json.Marshal(v) // plain structs: cannot fail
	return answer{status: statusOf(ch.outcome()), body: body}
}

// processCharge decides a new charge: span FraudCheck, then span Authorize. The caller passes a
// context that is never cancelled: a charge, once started, runs to the end and is recorded.
func processCharge(ctx context.Context, tel *telemetry, s faultSettings, key string, req chargeRequest) charge {
	ch := charge{ID: fmt.Sprintf("ch_%016x", rand.Uint64()), Status: "succeeded",
		AmountCents: req.AmountCents, Currency: req.Currency, Method: req.Method, Reference: req.Reference}

	_, fraud := tel.tracer.Start(ctx, "FraudCheck", trace.WithAttributes(attribute.String("app.fraud.result", "pass")))
	sleep(ctx, time.Millisecond+rand.N(2*time.Millisecond))
	fraud.End()

	_, auth := tel.tracer.Start(ctx, "Authorize", trace.WithAttributes(
		attribute.String("app.payment.charge_id", ch.ID),
		attribute.Int64("app.payment.amount_cents", req.AmountCents),
		attribute.String("app.payment.currency", req.Currency),
		attribute.String("app.payment.method", req.Method),
	))
	sleep(ctx, s.Latency.draw())
	if rand.Float64() < s.FailureRate {
		ch.Status, ch.FailureReason = "failed", s.FailureReason
		if ch.FailureReason == "" {
			switch p := rand.Float64(); {
			case p < 0.5:
				ch.FailureReason = outcomeCardDeclined
			case p < 0.8:
				ch.FailureReason = outcomeInsufficientFunds
			default:
				ch.FailureReason = outcomeGatewayTimeout
			}
		}
		auth.SetStatus(codes.Error, "payment declined: "+ch.FailureReason)
	}
	ch.CreatedAt = time.Now().UTC()
	auth.SetAttributes(attribute.String("app.payment.outcome", ch.outcome()))
	auth.End()

	tel.charges.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", ch.outcome()), attribute.String("method", ch.Method)))
	level, msg := slog.LevelInfo, "charge succeeded"
	switch ch.FailureReason {
	case "":
	case outcomeGatewayTimeout:
		level, msg = slog.LevelError, "charge failed"
	default:
		level, msg = slog.LevelWarn, "charge declined"
	}
	attrs := []slog.Attr{slog.String("charge_id", ch.ID), slog.String("reference", ch.Reference),
		slog.Int64("amount_cents", ch.AmountCents), slog.String("method", ch.Method), slog.String("idempotency_key", key)}
	if ch.FailureReason != "" {
		attrs = append(attrs, slog.String("reason", ch.FailureReason))
	}
	tel.logger.LogAttrs(ctx, level, msg, attrs...)
	return ch
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// entry is one idempotency key: the request first sent with it and, once done is closed, its
// charge and answer (written once, before done is closed; read only after).
type entry struct {
	req     chargeRequest
	done    chan struct{}
	charge  charge
	answer  answer
	evicted bool // guarded by the ledger's mutex
}

// ledger remembers the last max idempotency keys with their charges; the oldest are forgotten
// first, so memory stays bounded.
type ledger struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*entry
	keys  []string // creation order, for eviction
	byID  map[string]*entry
	byRef map[string][]*entry // decided charges of a reference, in creation order
}

func newLedger(max int) *ledger {
	return &ledger{max: max, byKey: map[string]*entry{}, byID: map[string]*entry{}, byRef: map[string][]*entry{}}
}

// begin returns the entry of key, and whether it is new: then the caller must decide the charge and finish it.
func (l *ledger) begin(key string, req chargeRequest) (*entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byKey[key]; ok {
		return e, false
	}
	e := &entry{req: req, done: make(chan struct{})}
	l.byKey[key] = e
	l.keys = append(l.keys, key)
	for len(l.keys) > l.max {
		old := l.byKey[l.keys[0]]
		delete(l.byKey, l.keys[0])
		l.keys = l.keys[1:]
		old.evicted = true
		if id := old.charge.ID; id != "" {
			delete(l.byID, id)
			ref := old.charge.Reference
			if l.byRef[ref] = slices.DeleteFunc(l.byRef[ref], func(x *entry) bool { return x == old }); len(l.byRef[ref]) == 0 {
				delete(l.byRef, ref)
			}
		}
	}
	return e, true
}

// finish records the decided charge of a new entry and wakes the requests waiting for it.
func (l *ledger) finish(e *entry, ch charge) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.charge, e.answer = ch, answerFor(ch)
	close(e.done)
	if !e.evicted {
		l.byID[ch.ID] = e
		l.byRef[ch.Reference] = append(l.byRef[ch.Reference], e)
	}
}

func (l *ledger) get(id string) (charge, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byID[id]
	if !ok {
		return charge{}, false
	}
	return e.charge, true
}

func (l *ledger) byReference(ref string) []charge {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]charge, 0, len(l.byRef[ref]))
	for _, e := range l.byRef[ref] {
		out = append(out, e.charge)
	}
	return out
}
