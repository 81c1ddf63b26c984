package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const userAgent = "minishop-loadgen/1.0"

// generator sends the load. One goroutine (dispatch) decides what to send and when, from one
// random source; a pool of workers sends it. A journey's next step is queued when its previous
// step is answered, and is sent on a later tick, ahead of any new journey.
type generator struct {
	cfg        config
	client     *http.Client
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	logger     *slog.Logger
	rng        *rand.Rand // dispatch goroutine only
	badPick    float64
	stats      *stats
	followUps  followUps
	paid       recentOrders
}

func newGenerator(cfg config, client *http.Client, tp trace.TracerProvider, logger *slog.Logger) *generator {
	seed := cfg.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &generator{
		cfg:        cfg,
		client:     client,
		tracer:     tp.Tracer("minishop/loadgen"),
		propagator: propagation.TraceContext{},
		logger:     logger,
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		badPick:    cfg.mix.badPick(),
		stats:      newStats(time.Now()),
		paid:       recentOrders{max: 64},
	}
}

// journey is one simulated shopper: a checkout (create, then maybe pay, then maybe look up)
// or a single bad request. Only one of its steps is in flight at a time.
type journey struct {
	name    string // span name: checkout or bad_request
	steps   []step
	next    int // index of the step to send
	items   []line
	method  string // payment method
	orderID string
	outcome string
	span    trace.Span // started with the first step
}

type task struct{ j *journey }

// unreachableError ends the run when a whole progress window got no response at all.
type unreachableError struct {
	target  string
	failed  int64
	window  time.Duration
	lastErr string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("shop at %s unreachable: none of the %d requests of the last %s got a response (last error: %s)",
		e.target, e.failed, e.window, e.lastErr)
}

// run sends load until ctx ends, the duration is up, the requests are sent, or the shop is
// unreachable for a whole progress window; then it lets in-flight requests finish (for up to
// the request timeout, at most 5 s), ends the open journeys' spans and prints the summary.
func (g *generator) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	loadCtx, endLoad := context.WithCancel(ctx)
	defer endLoad()
	if g.cfg.duration > 0 {
		var cancelLoad context.CancelFunc
		loadCtx, cancelLoad = context.WithTimeout(loadCtx, g.cfg.duration)
		defer cancelLoad()
	}
	// Requests outlive the load by a grace period, so a stop does not turn in-flight requests into errors.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()

	g.logger.Info("loadgen started",
		"target", g.cfg.target.String(),
		"rate", g.cfg.rate,
		"concurrency", g.cfg.concurrency,
		"duration", g.cfg.duration.String(),
		"requests", g.cfg.requests,
		"bad_rate", g.cfg.mix.bad,
		"pay_rate", g.cfg.mix.pay,
		"lookup_rate", g.cfg.mix.lookup,
		"expected_error_ratio_at_5pct_payment_failures", round(g.cfg.mix.expectedErrorRatio(0.05), 3))

	// busy holds a token per request handed out and not yet answered; with all concurrency
	// tokens taken a due request is dropped. work never blocks: it has room for every token.
	busy := make(chan struct{}, g.cfg.concurrency)
	work := make(chan task, g.cfg.concurrency)
	var workers sync.WaitGroup
	for range g.cfg.concurrency {
		workers.Go(func() {
			for t := range work {
				g.do(reqCtx, t.j)
				<-busy
			}
		})
	}
	var reporter sync.WaitGroup
	reporter.Go(func() { g.report(loadCtx, cancel) })

	g.dispatch(loadCtx, busy, work)
	endLoad() // stops the reporter too, when the requests ran out before the time
	close(work)
	drained := make(chan struct{})
	go func() { workers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(min(g.cfg.timeout, 5*time.Second)):
		cancelRequests()
		<-drained
	}
	reporter.Wait()
	for _, j := range g.followUps.drain() {
		j.outcome = "abandoned"
		g.finish(j)
	}
	g.logSummary()

	var unreachable *unreachableError
	if errors.As(context.Cause(ctx), &unreachable) {
		return unreachable
	}
	return nil
}

// dispatch is the open-loop pacer: request slot n is due at n/rate seconds after the start,
// whatever the shop's latency. A tick offers every slot that has come due (catching up if the
// ticker fell behind); a slot that finds no idle worker is dropped and counted, never delayed.
func (g *generator) dispatch(ctx context.Context, busy chan<- struct{}, work chan<- task) {
	interval := time.Duration(float64(time.Second) / g.cfg.rate)
	ticker := time.NewTicker(max(interval, 5*time.Millisecond))
	defer ticker.Stop()
	start := time.Now()
	var slots, sent int64
	// offerDue reports false once the run's requests are all sent.
	offerDue := func(now time.Time) bool {
		due := int64(now.Sub(start).Seconds()*g.cfg.rate) + 1 // slot 0 is due at once
		for ; slots < due; slots++ {
			if ctx.Err() != nil {
				return true
			}
			if g.offer(busy, work) {
				sent++
			}
			if g.cfg.requests > 0 && sent >= g.cfg.requests {
				return false
			}
		}
		return true
	}
	if !offerDue(start) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			if !offerDue(now) {
				return
			}
		}
	}
}

// offer hands the next request to a worker, if fewer than concurrency requests are in flight:
// a queued journey step first, else a new journey. It reports whether it sent one.
func (g *generator) offer(busy chan<- struct{}, work chan<- task) bool {
	select {
	case busy <- struct{}{}:
	default:
		g.stats.dropped()
		return false // a queued step waits for the next slot; a new shopper never arrives
	}
	j, queued := g.followUps.pop()
	if !queued {
		j = g.newJourney()
	}
	work <- task{j}
	g.stats.sent()
	return true
}

// newJourney draws what the next shopper does.
func (g *generator) newJourney() *journey {
	if g.rng.Float64() < g.badPick {
		s := badSteps[g.rng.IntN(len(badSteps))]
		j := &journey{name: "bad_request", steps: []step{s}}
		if s == stepPayAgain {
			if id, ok := g.paid.pick(g.rng); ok {
				j.orderID = id
			} else {
				j.steps[0] = stepBadJSON // nothing paid yet to pay again
			}
		}
		return j
	}
	j := &journey{name: "checkout", steps: []step{stepCreate}, items: randomItems(g.rng)}
	if g.rng.Float64() < g.cfg.mix.pay {
		j.steps = append(j.steps, stepPay)
		j.method = payMethods.pick(g.rng)
	}
	if g.rng.Float64() < g.cfg.mix.lookup {
		j.steps = append(j.steps, stepLookup)
	}
	return j
}

// do sends the journey's next step and queues the step after it, or ends the journey.
func (g *generator) do(ctx context.Context, j *journey) {
	if j.span == nil {
		_, j.span = g.tracer.Start(context.WithoutCancel(ctx), j.name,
			trace.WithNewRoot(),
			trace.WithAttributes(attribute.String("loadgen.journey", j.name)))
	}
	ctx = trace.ContextWithSpan(ctx, j.span)
	s := j.steps[j.next]
	j.next++
	res := g.send(ctx, s, j)
	cont := true
	switch s {
	case stepCreate:
		if res.status == http.StatusCreated {
			var o struct {
				OrderID string `json:"order_id"`
			}
			if err := json.Unmarshal(res.body, &o); err == nil && o.OrderID != "" {
				j.orderID = o.OrderID
				j.span.SetAttributes(attribute.String("app.order.id", o.OrderID))
				j.outcome = "created"
				break
			}
		}
		cont = false // no order, nothing to pay or look up
		j.outcome = outcome(res)
	case stepPay:
		if res.status == http.StatusOK {
			g.paid.add(j.orderID)
			j.outcome = "paid"
		} else {
			j.outcome = outcome(res)
		}
	case stepLookup:
		if res.status != http.StatusOK {
			j.outcome = outcome(res)
		}
	default: // a bad request: its answer is the outcome
		j.outcome = outcome(res)
	}
	switch {
	case res.err != nil && ctx.Err() != nil:
		j.outcome = "cancelled" // stopped on the way out
	case res.err != nil || res.status >= 500:
		j.span.SetStatus(codes.Error, j.outcome)
	}
	if cont && ctx.Err() == nil && j.next < len(j.steps) {
		g.followUps.push(j)
		return
	}
	g.finish(j)
}

func (g *generator) finish(j *journey) {
	if j.span == nil {
		return
	}
	j.span.SetAttributes(attribute.String("loadgen.journey.outcome", j.outcome))
	j.span.End()
}

// result is what one request got back.
type result struct {
	status int    // 0: no response
	reason string // the shop's machine-readable reason, for statuses >= 400
	body   []byte
	err    error
}

// outcome names a failed step for the journey span: the shop's reason, or the transport error.
func outcome(r result) string {
	switch {
	case r.err != nil:
		return "no_response"
	case r.reason != "":
		return r.reason
	}
	return "http_" + strconv.Itoa(r.status)
}

// send makes the step's HTTP request in a client span, with the trace context in its headers.
func (g *generator) send(ctx context.Context, s step, j *journey) result {
	method, route, path, body := request(s, j)
	u := g.cfg.target.JoinPath(path)
	ctx, span := g.tracer.Start(ctx, method+" "+route,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("url.full", u.String()),
			attribute.String("url.template", route),
			attribute.String("server.address", u.Hostname()),
			attribute.Int("server.port", port(u)),
			attribute.String("loadgen.step", s.String()),
		))
	defer span.End()

	var bodyReader io.Reader
	if body != nil {
		bodyReader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bodyReader)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return result{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", userAgent)
	g.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))

	start := time.Now()
	resp, err := g.client.Do(req)
	var res result
	if err == nil {
		res.body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		res.status = resp.StatusCode
	}
	elapsed := time.Since(start)
	if err != nil && res.status == 0 {
		res.err = err
		if ctx.Err() != nil {
			// Stopped by us on the way out: neither the shop's fault nor a measurement.
			span.SetAttributes(attribute.String("error.type", "cancelled"))
			span.SetStatus(codes.Error, "cancelled by loadgen shutdown")
			return res
		}
		span.RecordError(err)
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.SetStatus(codes.Error, err.Error())
		g.stats.record(s, 0, elapsed, err)
		return res
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.status))
	if res.status >= 400 {
		var e struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(res.body, &e) == nil {
			res.reason = e.Reason
		}
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(res.status)))
		if res.reason != "" {
			span.SetAttributes(attribute.String("app.error.reason", res.reason))
		}
	}
	// 4xx is an expected answer here (a third of them are sent on purpose); 5xx is an error.
	if res.status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(res.status)+" "+res.reason)
	}
	g.stats.record(s, res.status, elapsed, nil)
	return res
}

// request builds the HTTP request of a step: method, route (for the span name), path and body.
func request(s step, j *journey) (method, route, path string, body []byte) {
	switch s {
	case stepCreate:
		body, _ = json.Marshal(struct {
			Items []line `json:"items"`
		}{j.items})
		return http.MethodPost, "/order", "/order", body
	case stepPay, stepPayAgain:
		body, _ = json.Marshal(struct {
			OrderID string `json:"order_id"`
			Method  string `json:"method,omitempty"`
		}{j.orderID, j.method})
		return http.MethodPost, "/payment/pay", "/payment/pay", body
	case stepLookup:
		return http.MethodGet, "/order/{id}", "/order/" + url.PathEscape(j.orderID), nil
	case stepBadJSON:
		// A body cut short, as by a client that gave up mid-write.
		return http.MethodPost, "/order", "/order", []byte(`{"items":[{"sku":"MUG-OTEL","quantity":1}`)
	case stepUnknownSKU:
		// A size the shop does not stock.
		return http.MethodPost, "/order", "/order", []byte(`{"items":[{"sku":"TEE-BLK-XXL","quantity":1}]}`)
	}
	panic(fmt.Sprintf("loadgen: no request for %v", s))
}

func port(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// errorType is a low-cardinality name for a transport error (the error.type attribute).
func errorType(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	return "transport"
}

// followUps are journeys waiting for a slot to send their next step.
type followUps struct {
	mu       sync.Mutex
	journeys []*journey
}

func (f *followUps) push(j *journey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.journeys = append(f.journeys, j)
}

func (f *followUps) pop() (*journey, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.journeys) == 0 {
		return nil, false
	}
	j := f.journeys[0]
	f.journeys = f.journeys[1:]
	return j, true
}

func (f *followUps) drain() []*journey {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.journeys
	f.journeys = nil
	return out
}

// recentOrders remembers the last few paid orders, for the bad "pay it again" request.
type recentOrders struct {
	mu  sync.Mutex
	max int
	ids []string
}

func (r *recentOrders) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == r.max {
		r.ids = r.ids[1:]
	}
	r.ids = append(r.ids, id)
}

// pick draws one of the orders. It takes one number from rng whether or not there is an order
// to pick, so that a seeded run makes the same choices however fast the shop answers.
func (r *recentOrders) pick(rng *rand.Rand) (string, bool) {
	n := rng.Uint64()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return "", false
	}
	return r.ids[n%uint64(len(r.ids))], true
}
