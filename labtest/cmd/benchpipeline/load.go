package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// newClient keeps conns connections open to the shop.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		},
	}
}

// loadResult is what one stretch of load got back.
type loadResult struct {
	ok, failed int64 // 2xx; anything else (status or transport error)
	elapsed    time.Duration
	p50        time.Duration
}

// generate POSTs body to url from conns workers for d: at rate requests/s in total (a pacer hands out
// one token per request; tokens the workers cannot take in time are skipped, so the rate is a ceiling),
// or, with rate 0, as fast as the workers go. After d no request starts, and those in flight finish, so
// that every request the shop served is counted; ctx ending stops everything.
func generate(ctx context.Context, client *http.Client, url, body string, rate float64, conns int, d time.Duration) loadResult {
	stop, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var tokens chan struct{}
	if rate > 0 {
		tokens = make(chan struct{}, conns)
		go pace(stop, tokens, rate)
	}
	type workerResult struct {
		ok, failed int64
		latencies  []time.Duration
	}
	results := make([]workerResult, conns)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			w := &results[i]
			for {
				if tokens != nil {
					select {
					case <-stop.Done():
						return
					case <-tokens:
					}
				}
				if stop.Err() != nil {
					return
				}
				t0 := time.Now()
				ok := post(ctx, client, url, body)
				if ctx.Err() != nil {
					return
				}
				w.latencies = append(w.latencies, time.Since(t0))
				if ok {
					w.ok++
				} else {
					w.failed++
				}
			}
		})
	}
	wg.Wait()
	var out loadResult
	out.elapsed = time.Since(start)
	var all []time.Duration
	for _, w := range results {
		out.ok += w.ok
		out.failed += w.failed
		all = append(all, w.latencies...)
	}
	if len(all) > 0 {
		slices.Sort(all)
		out.p50 = all[len(all)/2]
	}
	return out
}

// pace sends rate tokens per second (in 1 ms steps) until ctx ends; a token nobody takes is skipped.
func pace(ctx context.Context, tokens chan<- struct{}, rate float64) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := int64(now.Sub(start).Seconds() * rate)
			for ; sent < due; sent++ {
				select {
				case tokens <- struct{}{}:
				default: // every worker busy: skip
				}
			}
		}
	}
}

func post(ctx context.Context, client *http.Client, url, body string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// counts are the Collector receiver's totals so far.
type counts struct{ spans, logs, points float64 }

// collectorCounts reads what the Collector's OTLP receiver accepted, from its own metrics
// (v0.161 names: no _total suffix, see collector/config.yaml).
func collectorCounts(ctx context.Context, metricsURL string) (counts, error) {
	ss, err := scrape(ctx, metricsURL)
	if err != nil {
		return counts{}, err
	}
	return counts{
		spans:  ss.total("otelcol_receiver_accepted_spans"),
		logs:   ss.total("otelcol_receiver_accepted_log_records"),
		points: ss.total("otelcol_receiver_accepted_metric_points"),
	}, nil
}

// sample is one line of the Prometheus text format.
type sample struct {
	name, labels string
	value        float64
}

type samples []sample

// total adds up the samples of a metric whose labels contain every one of the given label pairs
// (as written in the exposition, e.g. `exporter="otlp_grpc/jaeger"`).
func (ss samples) total(name string, labels ...string) float64 {
	var t float64
	for _, s := range ss {
		if s.name != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(s.labels, l)
		}
		if match {
			t += s.value
		}
	}
	return t
}

// scrape reads a /metrics page.
func scrape(ctx context.Context, url string) (samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out samples
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var s sample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.name, s.labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if s.value, err = strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		out = append(out, s)
	}
	return out, sc.Err()
}
