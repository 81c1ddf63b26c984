package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxBodyBytes bounds every request body; larger ones get 413.
const maxBodyBytes = 16 << 10

// Limits of an order, so that no request can ask for absurd amounts.
const (
	maxOrderLines  = 20
	maxQuantity    = 100
	maxIDLength    = 64
	defaultPayment = "card"
)

// newServer is the whole HTTP API of the shop.
func newServer(tel *telemetry, st *store, f *faults, pay payer, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, tel, st, f, pay, ready)
	return mux
}

// addRoutes is the one place that lists every route.
func addRoutes(mux *http.ServeMux, tel *telemetry, st *store, f *faults, pay payer, ready *atomic.Bool) {
	obs := observe(tel)
	api := func(h http.Handler) http.Handler { return obs(injectLatency(f)(h)) }
	mux.Handle("POST /order", api(handleCreateOrder(tel, st, f)))
	mux.Handle("GET /order/{id}", api(handleGetOrder(st)))
	mux.Handle("POST /payment/pay", api(handlePay(tel, st, pay)))
	// The same paths with any other method: a JSON 405 instead of the mux's plain text.
	mux.Handle("/order", obs(handleMethodNotAllowed("POST")))
	mux.Handle("/order/{id}", obs(handleMethodNotAllowed("GET, HEAD")))
	mux.Handle("/payment/pay", obs(handleMethodNotAllowed("POST")))
	mux.Handle("/", obs(handleNotFound()))
	// Health checks stay out of the request metrics, traces and access log.
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(ready))
}

type createOrderRequest struct {
	Items []lineRequest `json:"items"`
}

func (req createOrderRequest) validate() map[string]string {
	problems := map[string]string{}
	if len(req.Items) == 0 {
		problems["items"] = "at least one item is required"
	}
	if len(req.Items) > maxOrderLines {
		problems["items"] = fmt.Sprintf("at most %d items per order", maxOrderLines)
	}
	seen := map[string]bool{}
	for i, it := range req.Items {
		field := fmt.Sprintf("items[%d]", i)
		switch {
		case it.SKU == "":
			problems[field+".sku"] = "required"
		case len(it.SKU) > maxIDLength:
			problems[field+".sku"] = fmt.Sprintf("at most %d characters", maxIDLength)
		case seen[it.SKU]:
			problems[field+".sku"] = "duplicate sku; put the whole quantity on one line"
		}
		seen[it.SKU] = true
		if it.Quantity < 1 || it.Quantity > maxQuantity {
			problems[field+".quantity"] = fmt.Sprintf("must be between 1 and %d", maxQuantity)
		}
	}
	return problems
}

func handleCreateOrder(tel *telemetry, st *store, f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := decode[createOrderRequest](w, r)
		if !ok {
			return
		}
		o, err := createOrder(r.Context(), tel, st, f.get(), req.Items)
		if err != nil {
			writeShopError(r.Context(), w, err)
			return
		}
		w.Header().Set("Location", "/order/"+o.ID)
		encode(w, http.StatusCreated, o)
	})
}

// createOrder prices the order and reserves its stock, in span CreateOrder.
func createOrder(ctx context.Context, tel *telemetry, st *store, fs faultSettings, items []lineRequest) (order, error) {
	ctx, span := tel.tracer.Start(ctx, "CreateOrder", trace.WithAttributes(attribute.Int("app.order.items", len(items))))
	defer span.End()
	lines, total, err := st.priceLines(items)
	if err != nil {
		span.SetStatus(codes.Error, "unknown_sku")
		tel.logger.InfoContext(ctx, "order rejected", "reason", "unknown_sku", "error", err.Error())
		return order{}, err
	}
	if err := deductInventory(ctx, tel, st, fs, lines); err != nil {
		span.SetStatus(codes.Error, "out_of_stock")
		return order{}, err
	}
	o := st.addOrder(lines, total)
	span.SetAttributes(attribute.String("app.order.id", o.ID), attribute.Int64("app.order.total_cents", total))
	// No log record of its own: the access log names the order (order_id), the span has the rest.
	setOrderID(ctx, o.ID)
	return o, nil
}

// deductInventory takes the order's items off the shelves, all or nothing, in span DeductInventory.
// Fault injection can slow it down, or refuse a share of orders as out of stock.
func deductInventory(ctx context.Context, tel *telemetry, st *store, fs faultSettings, lines []orderLine) error {
	ctx, span := tel.tracer.Start(ctx, "DeductInventory")
	defer span.End()
	skus := make([]string, len(lines))
	quantities := make([]int, len(lines))
	for i, l := range lines {
		skus[i], quantities[i] = l.SKU, l.Quantity
	}
	span.SetAttributes(attribute.StringSlice("app.product.skus", skus), attribute.IntSlice("app.product.quantities", quantities))
	wait(ctx, fs.InventoryDelay)
	var err error
	injected := fs.OutOfStockRate > 0 && rand.Float64() < fs.OutOfStockRate
	if injected {
		err = &outOfStock{SKU: lines[0].SKU, Requested: lines[0].Quantity}
	} else {
		err = st.reserve(lines)
	}
	var oos *outOfStock
	if errors.As(err, &oos) {
		span.SetStatus(codes.Error, "out_of_stock")
		span.SetAttributes(attribute.String("app.product.sku", oos.SKU), attribute.Int("app.product.available", oos.Available),
			attribute.Bool("app.fault.injected", injected))
		tel.logger.WarnContext(ctx, "out of stock", "reason", "out_of_stock", "sku", oos.SKU, "requested", oos.Requested,
			"available", oos.Available, "injected", injected)
		return &shopError{Status: http.StatusConflict, Reason: "out_of_stock", Msg: oos.Error()}
	}
	return err
}

func handleGetOrder(st *store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		o, ok := st.getOrder(id)
		if !ok {
			writeError(r.Context(), w, http.StatusNotFound, "order_not_found", fmt.Sprintf("order %q not found", truncate(id)))
			return
		}
		encode(w, http.StatusOK, o)
	})
}

type payRequest struct {
	OrderID string `json:"order_id"`
	// Method is how the customer pays: card (default), paypal or wallet. No card
	// numbers here: the shop never sees them, so they can't leak into telemetry.
	Method string `json:"method"`
}

var paymentMethods = map[string]bool{"card": true, "paypal": true, "wallet": true}

func (req payRequest) validate() map[string]string {
	problems := map[string]string{}
	switch {
	case req.OrderID == "":
		problems["order_id"] = "required"
	case len(req.OrderID) > maxIDLength:
		problems["order_id"] = fmt.Sprintf("at most %d characters", maxIDLength)
	}
	if req.Method != "" && !paymentMethods[req.Method] {
		problems["method"] = "must be one of card, paypal, wallet"
	}
	return problems
}

type payResponse struct {
	OrderID     string `json:"order_id"`
	Status      string `json:"status"`
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
}

func handlePay(tel *telemetry, st *store, pay payer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		req, ok := decode[payRequest](w, r)
		if !ok {
			return
		}
		if req.Method == "" {
			req.Method = defaultPayment
		}
		o, c, err := st.startPayment(req.OrderID, req.Method)
		if err != nil {
			writeShopError(ctx, w, err)
			return
		}
		setOrderID(ctx, o.ID)
		paymentID, failure := chargePayment(ctx, tel, pay, o, c)
		st.finishPayment(o.ID, c, paymentID, failure)
		if failure != nil {
			trace.SpanFromContext(ctx).SetStatus(codes.Error, "payment failed: "+failure.Reason)
			retry := "the order can be paid again"
			if failure.Unknown {
				retry = "the order can be paid again: that resends this attempt (same idempotency key and method), so it is never charged twice"
			}
			writeJSONError(ctx, w, failure.Status, failure.Reason, "payment failed: "+failure.Reason,
				map[string]string{"order_id": o.ID, "retry": retry})
			return
		}
		encode(w, http.StatusOK, payResponse{OrderID: o.ID, Status: statusPaid, PaymentID: paymentID, AmountCents: o.TotalCents})
	})
}

// chargePayment asks the payment provider for the money, in client span ChargePayment: with a
// gateway configured, the parent of the gateway's spans (one per attempt).
func chargePayment(ctx context.Context, tel *telemetry, pay payer, o order, c charge) (string, *paymentFailure) {
	ctx, span := tel.tracer.Start(ctx, "ChargePayment",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("app.order.id", o.ID),
			attribute.String("app.payment.method", c.Method),
			attribute.Int64("app.payment.amount_cents", c.AmountCents),
		))
	defer span.End()
	paymentID, failure := pay.charge(ctx, c)
	if failure != nil {
		span.SetAttributes(attribute.String("app.payment.failure_reason", failure.Reason))
		span.SetStatus(codes.Error, "payment failed: "+failure.Reason)
		span.RecordError(errors.New("payment failed: " + failure.Reason))
		attrs := []any{"reason", failure.Reason, "order_id", o.ID, "amount_cents", c.AmountCents, "method", c.Method}
		if failure.Detail != "" {
			attrs = append(attrs, "detail", failure.Detail)
		}
		tel.logger.Log(ctx, failureLevel(failure), "payment failed", attrs...)
		return "", failure
	}
	span.SetAttributes(attribute.String("app.payment.id", paymentID))
	tel.logger.InfoContext(ctx, "payment succeeded", "order_id", o.ID, "payment_id", paymentID, "amount_cents", c.AmountCents, "method", c.Method)
	return paymentID, nil
}

func handleMethodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(r.Context(), w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("method %s not allowed; use %s", truncate(r.Method), allow))
	})
}

func handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(r.Context(), w, http.StatusNotFound, "not_found",
			"no such endpoint; try POST /order, POST /payment/pay or GET /order/{id}")
	})
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz answers 503 before the shop listens and while it shuts down,
// so a load balancer (or compose's healthcheck) stops sending traffic first.
func handleReadyz(ready *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			encode(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// encode writes v as a JSON response.
func encode[T any](w http.ResponseWriter, status int, v T) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status line is out; an encoding error now can only be a client gone away.
	_ = json.NewEncoder(w).Encode(v)
}

// validator is a request body that can check itself; problems maps a field to what is wrong with it.
type validator interface {
	validate() map[string]string
}

// decode reads one JSON object of type T from the request body and validates it.
// On any problem it writes a JSON error with the right 4xx status and returns false.
func decode[T validator](w http.ResponseWriter, r *http.Request) (T, bool) {
	var zero T
	return decodeOnto(w, r, zero)
}

// decodeOnto is decode starting from v: fields the body leaves out keep v's values.
func decodeOnto[T validator](w http.ResponseWriter, r *http.Request, v T) (T, bool) {
	ctx := r.Context()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(ctx, w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
			return v, false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		status, reason, msg := decodeProblem(err)
		writeError(ctx, w, status, reason, msg)
		return v, false
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		status, reason, msg := decodeProblem(err)
		if err == nil {
			msg = "body must hold a single JSON object"
		}
		writeError(ctx, w, status, reason, msg)
		return v, false
	}
	if problems := v.validate(); len(problems) > 0 {
		writeJSONError(ctx, w, http.StatusBadRequest, "invalid_request", "invalid request", problems)
		return v, false
	}
	return v, true
}

// decodeProblem explains a JSON decoding error to the client.
func decodeProblem(err error) (status int, reason, msg string) {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusBadRequest, "invalid_request", ""
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "invalid_request", "request body is empty; send a JSON object"
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit)
	case errors.As(err, &syntaxErr):
		return http.StatusBadRequest, "invalid_request", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "invalid_request", "malformed JSON: body ends too early"
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return http.StatusBadRequest, "invalid_request", fmt.Sprintf("body must be a JSON object, not %s", typeErr.Value)
		}
		return http.StatusBadRequest, "invalid_request", fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return http.StatusBadRequest, "invalid_request", strings.TrimPrefix(err.Error(), "json: ")
	}
	return http.StatusBadRequest, "invalid_request", "malformed JSON"
}

// errorResponse is the body of every error: a human message and a machine-readable reason.
type errorResponse struct {
	Error   string            `json:"error"`
	Reason  string            `json:"reason"`
	Details map[string]string `json:"details,omitempty"`
}

func writeError(ctx context.Context, w http.ResponseWriter, status int, reason, msg string) {
	writeJSONError(ctx, w, status, reason, msg, nil)
}

func writeJSONError(ctx context.Context, w http.ResponseWriter, status int, reason, msg string, details map[string]string) {
	setReason(ctx, reason)
	encode(w, status, errorResponse{Error: msg, Reason: reason, Details: details})
}

// writeShopError answers a domain error with its status and reason.
func writeShopError(ctx context.Context, w http.ResponseWriter, err error) {
	var se *shopError
	if errors.As(err, &se) {
		writeError(ctx, w, se.Status, se.Reason, se.Msg)
		return
	}
	writeError(ctx, w, http.StatusInternalServerError, "internal", "internal error")
}

// truncate keeps client-supplied strings echoed in errors short.
func truncate(s string) string {
	if len(s) > maxIDLength {
		return s[:maxIDLength] + "…"
	}
	return s
}

// failureLevel: a declined payment is a warning; a gateway timeout (a 5xx) is an error.
func failureLevel(f *paymentFailure) slog.Level {
	if f.Status >= 500 {
		return slog.LevelError
	}
	return slog.LevelWarn
}
