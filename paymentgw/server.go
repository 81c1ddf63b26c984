// This file is the gateway's public HTTP API: the routes, their handlers, and the one JSON
// encode/decode pair and error shape ({"error","reason","details"}) every answer uses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// maxBodyBytes bounds every request body; larger ones get 413.
const maxBodyBytes = 16 << 10

// newServer is the whole public API of the gateway.
func newServer(tel *telemetry, led *ledger, f *faults, ready *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, tel, led, f, ready)
	return mux
}

// addRoutes is the one place that lists every route.
func addRoutes(mux *http.ServeMux, tel *telemetry, led *ledger, f *faults, ready *atomic.Bool) {
	obs := observe(tel)
	mux.Handle("POST /v1/charges", obs(handleCreateCharge(tel, led, f)))
	mux.Handle("GET /v1/charges", obs(handleListCharges(led)))
	mux.Handle("GET /v1/charges/{id}", obs(handleGetCharge(led)))
	// The same paths with any other method: a JSON 405 instead of the mux's plain text.
	mux.Handle("/v1/charges", obs(handleMethodNotAllowed("GET, HEAD, POST")))
	mux.Handle("/v1/charges/{id}", obs(handleMethodNotAllowed("GET, HEAD")))
	mux.Handle("/", obs(handleNotFound("try POST /v1/charges, GET /v1/charges/{id} or GET /v1/charges?reference=")))
	// Health checks stay out of the traces, metrics and logs.
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(ready))
	mux.Handle("/healthz", handleMethodNotAllowed("GET, HEAD"))
	mux.Handle("/readyz", handleMethodNotAllowed("GET, HEAD"))
}

// handleCreateCharge is POST /v1/charges. A new idempotency key is charged (and recorded even if
// the client goes away); a known one is answered with its first answer, byte for byte.
func handleCreateCharge(tel *telemetry, led *ledger, f *faults) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		span := trace.SpanFromContext(ctx)
		key := r.Header.Get("Idempotency-Key")
		if reason, msg := checkIdempotencyKey(key); reason != "" {
			writeError(w, r, http.StatusBadRequest, reason, msg, nil)
			return
		}
		span.SetAttributes(attribute.String("app.payment.idempotency_key", key))
		req, ok := decode(w, r, chargeRequest{})
		if !ok {
			return
		}
		span.SetAttributes(
			attribute.String("app.payment.reference", req.Reference),
			attribute.Int64("app.payment.amount_cents", req.AmountCents),
			attribute.String("app.payment.method", req.Method),
		)
		e, fresh := led.begin(key, req)
		if e.req != req {
			writeError(w, r, http.StatusUnprocessableEntity, "idempotency_key_reused",
				"this Idempotency-Key was used with a different request; use a new key for a new charge", nil)
			return
		}
		if !fresh {
			select {
			case <-e.done:
			case <-ctx.Done():
				writeError(w, r, http.StatusConflict, "idempotency_key_in_use",
					"a request with this Idempotency-Key is still being processed; retry later", nil)
				return
			}
			span.SetAttributes(
				attribute.Bool("app.payment.idempotent_replay", true),
				attribute.String("app.payment.charge_id", e.charge.ID),
				attribute.String("app.payment.outcome", e.charge.outcome()),
			)
			tel.replays.Add(ctx, 1)
			tel.logger.InfoContext(ctx, "idempotent replay", "charge_id", e.charge.ID, "reference", req.Reference,
				"idempotency_key", key, "status", e.answer.status)
			w.Header().Set("Idempotent-Replayed", "true")
			encode(w, e.answer.status, e.answer.body)
			return
		}

		s := f.get()
		ch := processCharge(context.WithoutCancel(ctx), tel, s, key, req)
		led.finish(e, ch)
		stalled := s.TimeoutRate > 0 && rand.Float64() < s.TimeoutRate
		span.SetAttributes(
			attribute.Bool("app.payment.idempotent_replay", false),
			attribute.String("app.payment.charge_id", ch.ID),
			attribute.String("app.payment.outcome", ch.outcome()),
			attribute.Bool("app.fault.timeout_injected", stalled),
		)
		if stalled {
			// The charge is made and recorded; only its answer is late, past the client's timeout.
			span.AddEvent("answer held back", trace.WithAttributes(attribute.String("app.fault.stall", time.Duration(s.Stall).String())))
			sleep(ctx, time.Duration(s.Stall))
		}
		encode(w, e.answer.status, e.answer.body)
	})
}

func handleGetCharge(led *ledger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ch, ok := led.get(id)
		if !ok {
			writeError(w, r, http.StatusNotFound, "charge_not_found", fmt.Sprintf("charge %q not found", truncate(id)), nil)
			return
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("app.payment.charge_id", ch.ID))
		encode(w, http.StatusOK, ch)
	})
}

// handleListCharges is GET /v1/charges?reference=…: every charge of one reference (the shop's
// order id), oldest first.
func handleListCharges(led *ledger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := r.URL.Query().Get("reference")
		if ref == "" {
			writeError(w, r, http.StatusBadRequest, "invalid_request", "the reference query parameter is required",
				map[string]string{"reference": "required"})
			return
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("app.payment.reference", ref))
		encode(w, http.StatusOK, struct {
			Data []charge `json:"data"`
		}{led.byReference(ref)})
	})
}

func handleMethodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("method %s not allowed; use %s", truncate(r.Method), allow), nil)
	})
}

func handleNotFound(hint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "not_found", "no such endpoint; "+hint, nil)
	})
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz answers 503 before the gateway listens and while it shuts down.
func handleReadyz(ready *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			encode(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
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

// decode reads one JSON object from the request body onto v (fields left out keep v's values)
// and validates it. On any problem it writes a JSON error with the right 4xx status and returns false.
func decode[T validator](w http.ResponseWriter, r *http.Request, v T) (T, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", nil)
			return v, false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&v)
	if err == nil {
		if err = dec.Decode(&struct{}{}); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errTrailingData
		}
	}
	if err != nil {
		status, reason, msg := decodeProblem(err)
		writeError(w, r, status, reason, msg, nil)
		return v, false
	}
	if problems := v.validate(); len(problems) > 0 {
		writeError(w, r, http.StatusBadRequest, "invalid_request", "invalid request", problems)
		return v, false
	}
	return v, true
}

// errTrailingData: a second JSON value after the first.
var errTrailingData = errors.New("body must hold a single JSON object")

// decodeProblem explains a JSON decoding error to the client.
func decodeProblem(err error) (status int, reason, msg string) {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "invalid_request", "request body is empty; send a JSON object"
	case errors.As(err, &syntaxErr):
		return http.StatusBadRequest, "invalid_request", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "invalid_request", "malformed JSON: body ends too early"
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return http.StatusBadRequest, "invalid_request", fmt.Sprintf("body must be a JSON object, not %s", typeErr.Value)
	case errors.As(err, &typeErr):
		return http.StatusBadRequest, "invalid_request", fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return http.StatusBadRequest, "invalid_request", strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, errTrailingData):
		return http.StatusBadRequest, "invalid_request", err.Error()
	}
	return http.StatusBadRequest, "invalid_request", "malformed JSON: " + truncate(err.Error())
}

// errorResponse is the body of every error: a human message and a machine-readable reason.
type errorResponse struct {
	Error   string            `json:"error"`
	Reason  string            `json:"reason"`
	Details map[string]string `json:"details,omitempty"`
}

// writeError answers an error, and names its reason on the request's span (error.type).
func writeError(w http.ResponseWriter, r *http.Request, status int, reason, msg string, details map[string]string) {
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("error.type", reason))
	encode(w, status, errorResponse{Error: msg, Reason: reason, Details: details})
}

// truncate keeps client-supplied strings echoed in errors short.
func truncate(s string) string {
	if len(s) > maxReferenceLength {
		return s[:maxReferenceLength] + "…"
	}
	return s
}
