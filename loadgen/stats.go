package main

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Latency histogram: log-spaced buckets 5% wide from 100µs to 2 minutes, so percentiles are
// within 5% in constant memory however long the load runs (compose runs it for days).
const (
	histMin    = 100 * time.Microsecond
	histGrowth = 1.05
	histSize   = 288 // histMin·1.05^288 ≈ 125 s
)

type histogram struct {
	counts [histSize]int64
	n      int64
	max    time.Duration
}

func (h *histogram) add(d time.Duration) {
	i := 0
	if d > histMin {
		i = min(int(math.Log(float64(d)/float64(histMin))/math.Log(histGrowth)), histSize-1)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// quantile is the upper bound of the bucket holding the q-th observation (never above the maximum seen).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= max(rank, 1) {
			if i == histSize-1 {
				return h.max // the open-ended last bucket
			}
			return min(time.Duration(float64(histMin)*math.Pow(histGrowth, float64(i+1))), h.max)
		}
	}
	return h.max
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// tally counts what happened over some time: responses by status, requests without a response,
// latencies of the responses, and slots sent or dropped.
type tally struct {
	status     map[int]int64
	noResponse int64
	lastErr    string
	latency    histogram
	sent       int64
	dropped    int64
}

func newTally() tally { return tally{status: map[int]int64{}} }

func (t *tally) responses() (n int64) {
	for _, c := range t.status {
		n += c
	}
	return n
}

// errorRatio is what the shop's MiniShopHighErrorRate alert looks at: responses >= 400 over all responses.
func (t *tally) errorRatio() float64 {
	var bad, all int64
	for s, c := range t.status {
		all += c
		if s >= 400 {
			bad += c
		}
	}
	if all == 0 {
		return 0
	}
	return float64(bad) / float64(all)
}

func (t *tally) merge(o *tally) {
	for s, c := range o.status {
		t.status[s] += c
	}
	t.noResponse += o.noResponse
	if o.lastErr != "" {
		t.lastErr = o.lastErr
	}
	t.latency.merge(&o.latency)
	t.sent += o.sent
	t.dropped += o.dropped
}

// stats is shared by the dispatcher, the workers and the reporter.
type stats struct {
	mu          sync.Mutex
	start       time.Time
	windowStart time.Time
	window      tally // since the last progress line
	total       tally // of the whole run, without the current window
	steps       map[step]int64
}

func newStats(now time.Time) *stats {
	return &stats{start: now, windowStart: now, window: newTally(), total: newTally(), steps: map[step]int64{}}
}

func (s *stats) sent() {
	s.mu.Lock()
	s.window.sent++
	s.mu.Unlock()
}

func (s *stats) dropped() {
	s.mu.Lock()
	s.window.dropped++
	s.mu.Unlock()
}

// record counts one finished request: a status, or err when there was no response.
func (s *stats) record(st step, status int, latency time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps[st]++
	if err != nil {
		s.window.noResponse++
		s.window.lastErr = err.Error()
		return
	}
	s.window.status[status]++
	s.window.latency.add(latency)
}

// takeWindow returns the current window and starts the next one.
func (s *stats) takeWindow(now time.Time) (w tally, length time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, length = s.window, now.Sub(s.windowStart)
	s.total.merge(&w)
	s.window, s.windowStart = newTally(), now
	return w, length
}

// report prints a progress line every interval, and ends the run (cancel) when a whole window
// of requests got no response at all.
func (g *generator) report(ctx context.Context, cancel context.CancelCauseFunc) {
	ticker := time.NewTicker(g.cfg.reportInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			w, length := g.stats.takeWindow(now)
			g.logger.Info("progress", append([]any{"elapsed", now.Sub(g.stats.start).Round(time.Second).String()}, tallyAttrs(&w, length)...)...)
			if w.noResponse > 0 && w.responses() == 0 {
				cancel(&unreachableError{target: g.cfg.target.String(), failed: w.noResponse, window: length.Round(time.Millisecond), lastErr: w.lastErr})
				return
			}
		}
	}
}

// logSummary prints the totals of the whole run.
func (g *generator) logSummary() {
	now := time.Now()
	g.stats.takeWindow(now)
	g.stats.mu.Lock()
	defer g.stats.mu.Unlock()
	t := &g.stats.total
	length := now.Sub(g.stats.start)
	var steps []any
	for _, st := range []step{stepCreate, stepPay, stepLookup, stepBadJSON, stepUnknownSKU, stepPayAgain} {
		steps = append(steps, slog.Int64(st.String(), g.stats.steps[st]))
	}
	attrs := append([]any{"elapsed", length.Round(time.Millisecond).String()}, tallyAttrs(t, length)...)
	attrs = append(attrs,
		slog.Float64("p99_ms", ms(t.latency.quantile(0.99))),
		slog.Float64("max_ms", ms(t.latency.max)),
		slog.Group("requests", steps...))
	g.logger.Info("summary", attrs...)
}

// tallyAttrs are the attributes of a progress or summary line.
func tallyAttrs(t *tally, length time.Duration) []any {
	done := t.responses() + t.noResponse
	var status []any
	for _, c := range slices.Sorted(maps.Keys(t.status)) {
		status = append(status, slog.Int64(strconv.Itoa(c), t.status[c]))
	}
	attrs := []any{
		slog.Float64("rate", round(float64(done)/max(length.Seconds(), 1e-9), 1)),
		slog.Int64("sent", t.sent),
		slog.Int64("dropped", t.dropped),
		slog.Int64("responses", t.responses()),
		slog.Int64("no_response", t.noResponse),
		slog.Float64("error_ratio", round(t.errorRatio(), 4)),
		slog.Float64("p50_ms", ms(t.latency.quantile(0.50))),
		slog.Float64("p95_ms", ms(t.latency.quantile(0.95))),
		slog.Group("status", status...),
	}
	if t.lastErr != "" && t.noResponse > 0 {
		attrs = append(attrs, slog.String("last_error", t.lastErr))
	}
	return attrs
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
