package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// payer takes the money for an order: the payment gateway over HTTP (paymentgw/, when
// MINISHOP_PAYMENT_GATEWAY_URL is set), or the in-process simulator (go run . alone).
type payer interface {
	// charge runs inside the ChargePayment span; it answers a payment id, or why there is none.
	charge(ctx context.Context, c charge) (paymentID string, failure *paymentFailure)
}

// charge is what the shop asks the provider for. The idempotency key names one payment attempt of
// one order: a retry of that attempt sends the same key, and the gateway charges it once at most.
type charge struct {
	IdempotencyKey string `json:"-"`
	AmountCents    int64  `json:"amount_cents"`
	Currency       string `json:"currency"`
	Method         string `json:"method"`
	Reference      string `json:"reference"`
}

// simulatedPayments is the in-process provider, configured by the fault settings of the moment.
type simulatedPayments struct{ f *faults }

func (s simulatedPayments) charge(context.Context, charge) (string, *paymentFailure) {
	return s.f.provider().charge()
}

// gatewayPayments calls the payment gateway's POST /v1/charges with W3C trace context, so the
// gateway's spans join the shop's trace as children of ChargePayment. Each attempt has its own
// timeout; a timed-out attempt is retried once with the same idempotency key (the gateway may have
// charged already and only its answer was late; the key makes the retry return that first answer).
type gatewayPayments struct {
	endpoint   *url.URL // .../v1/charges
	client     *http.Client
	timeout    time.Duration
	propagator propagation.TextMapPropagator
}

func newGatewayPayments(base string, timeout time.Duration, propagator propagation.TextMapPropagator) (*gatewayPayments, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("payment gateway URL %q: want http://host:port", base)
	}
	return &gatewayPayments{
		endpoint: u.JoinPath("v1", "charges"),
		client: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}},
		timeout:    timeout,
		propagator: propagator,
	}, nil
}

// maxAttempts: the first try and one retry after a timeout.
const maxAttempts = 2

func (g *gatewayPayments) charge(ctx context.Context, c charge) (string, *paymentFailure) {
	span := trace.SpanFromContext(ctx)
	port, _ := strconv.Atoi(g.endpoint.Port())
	span.SetAttributes(
		attribute.String("http.request.method", http.MethodPost),
		attribute.String("server.address", g.endpoint.Hostname()),
		attribute.Int("server.port", port),
		attribute.String("url.full", g.endpoint.String()),
		attribute.String("app.payment.idempotency_key", c.IdempotencyKey),
	)
	body, err := json.Marshal(c)
	if err != nil {
		return "", &paymentFailure{Reason: "payment_gateway_error", Status: http.StatusBadGateway, Detail: err.Error()}
	}
	// Once sent, a charge runs to its end even if our client goes away, as with the in-process simulator:
	// the money may move, and the order must learn how it ended.
	ctx = context.WithoutCancel(ctx)
	// sent: some attempt may have reached the gateway, so a failure says nothing about the money.
	sent := false
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// Semantic conventions: how often this request was sent again.
			span.SetAttributes(attribute.Int("http.request.resend_count", attempt-1))
		}
		status, resp, err := g.post(ctx, c.IdempotencyKey, body)
		timedOut := errors.Is(err, context.DeadlineExceeded)
		sent = sent || (err != nil && !isDialError(err))
		switch {
		case timedOut && attempt < maxAttempts:
			span.AddEvent("payment gateway timed out, retrying with the same idempotency key", trace.WithAttributes(
				attribute.Int("app.payment.attempt", attempt), attribute.String("app.payment.timeout", g.timeout.String())))
			continue
		case timedOut:
			return "", &paymentFailure{Reason: "gateway_timeout", Status: http.StatusGatewayTimeout, Unknown: true,
				Detail: fmt.Sprintf("no answer from the payment gateway within %s, %d times", g.timeout, attempt)}
		case err != nil:
			return "", &paymentFailure{Reason: "payment_gateway_unavailable", Status: http.StatusBadGateway, Unknown: sent,
				Detail: err.Error()}
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		return gatewayAnswer(status, resp)
	}
}

// isDialError: the connection was never made, so nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// gatewayResponse is both of the gateway's answers: a charge (id) or an error (reason).
type gatewayResponse struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
}

// gatewayAnswer turns the gateway's response into a payment id or the gateway's own failure reason,
// so the shop's "payment failed" log and error_total{reason} say what the gateway said.
func gatewayAnswer(status int, resp gatewayResponse) (string, *paymentFailure) {
	if status == http.StatusCreated && resp.ID != "" {
		return resp.ID, nil
	}
	if f := failureByReason(resp.Reason); f != nil && status == f.Status {
		return "", &paymentFailure{Reason: resp.Reason, Status: status, Detail: truncate(resp.Error)}
	}
	// Anything else is the gateway misbehaving, for our client. A 5xx of its own, or "that key is still being
	// processed" (409), says nothing about the money: the next payment of the order resends this attempt.
	return "", &paymentFailure{Reason: "payment_gateway_error", Status: http.StatusBadGateway,
		Unknown: status >= 500 || status == http.StatusConflict,
		Detail:  fmt.Sprintf("payment gateway answered %d %s: %s", status, truncate(resp.Reason), truncate(resp.Error))}
}

// post sends one attempt. The attempt's context carries the timeout; its trace context is ChargePayment's.
func (g *gatewayPayments) post(ctx context.Context, key string, body []byte) (int, gatewayResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return 0, gatewayResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	g.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	res, err := g.client.Do(req)
	if err != nil {
		return 0, gatewayResponse{}, err
	}
	defer res.Body.Close()
	var out gatewayResponse
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return 0, gatewayResponse{}, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		out.Error = fmt.Sprintf("not JSON: %.80q", raw)
	}
	return res.StatusCode, out, nil
}
