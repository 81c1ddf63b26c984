package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"minishop/labtest/nativelab"
)

// delivery is what arrived where, for one capacity run.
type delivery struct {
	rate, achieved float64
	served         int64 // responses the load generator got (all 201 when the run is clean)
	clientErrors   int64
	// Prometheus: request_total of the shop's run; Loki: its access-log lines.
	promRequests, lokiLines float64
	// The Collector: accepted and refused by its receiver, sent and failed by its exporters.
	accepted, refused, sent, failed counts
	// Jaeger's own receiver: spans it accepted from the Collector.
	jaegerSpans float64
	// The shop SDK's own loss counters, as Prometheus has them.
	sdkLost float64
	// CPU µs per request of each program, over the load (the shop's flush and the backends' tail excluded).
	cpu map[string]float64
}

// cpuPrograms are the programs whose CPU time a capacity run reports.
var cpuPrograms = []string{nativelab.Shop, nativelab.Collector, nativelab.Jaeger, nativelab.Loki, nativelab.Prometheus}

// complete: every request counted, every span in Jaeger, every access log in Loki, nothing refused or lost.
func (d delivery) complete() bool {
	n := float64(d.served)
	return d.clientErrors == 0 && d.promRequests == n && d.lokiLines == n &&
		d.accepted.spans == 3*n && d.sent.spans == d.accepted.spans && d.jaegerSpans == d.accepted.spans &&
		d.accepted.logs >= n && d.sent.logs == d.accepted.logs && // the access logs, and the shop's start and stop lines
		d.sent.points == d.accepted.points &&
		d.refused == (counts{}) && d.failed == (counts{}) && d.sdkLost == 0
}

// capacity runs POST /order (3 spans, 1 log record, 3 metric updates each) at each rate for d against the
// whole lab, unpinned as compose runs it, and checks that everything arrived.
func (b *bench) capacity(ctx context.Context, rates []float64, d time.Duration, stdout io.Writer) error {
	var rows []delivery
	for _, rate := range rates {
		r, err := b.deliver(ctx, rate, d)
		if err != nil {
			return fmt.Errorf("%.0f req/s: %w", rate, err)
		}
		rows = append(rows, r)
		b.logf("%.0f req/s: complete=%v %+v", rate, r.complete(), r)
	}
	fmt.Fprintf(stdout, "\nComplete delivery, POST %s for %s per rate, whole lab unpinned on %s (load average at end %s).\n\n",
		b.cfg.path, d, cpuText(), loadAvg())
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| target req/s\t achieved\t requests\t request_total\t access logs in Loki\t log records accepted / sent\t spans accepted (want 3×)\t sent to Jaeger\t in Jaeger\t refused\t send failed\t SDK lost\t complete\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "| %.0f\t %.0f\t %d\t %.0f\t %.0f\t %.0f / %.0f\t %.0f\t %.0f\t %.0f\t %.0f\t %.0f\t %.0f\t %v\t\n",
			r.rate, r.achieved, r.served, r.promRequests, r.lokiLines, r.accepted.logs, r.sent.logs, r.accepted.spans, r.sent.spans, r.jaegerSpans,
			r.refused.spans+r.refused.logs+r.refused.points, r.failed.spans+r.failed.logs+r.failed.points, r.sdkLost,
			map[bool]string{true: "yes", false: "NO"}[r.complete()])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nCPU µs per request of each program during the load:\n\n")
	fmt.Fprintf(tw, "| target req/s\t %s\t\n|---\t%s\n", strings.Join(cpuPrograms, "\t "), strings.Repeat("---\t", len(cpuPrograms)))
	for _, r := range rows {
		fmt.Fprintf(tw, "| %.0f\t", r.rate)
		for _, name := range cpuPrograms {
			fmt.Fprintf(tw, " %.1f\t", r.cpu[name])
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func cpuText() string { return fmt.Sprintf("%d CPUs", runtime.NumCPU()) }

// deliver is one capacity run: a fresh shop, load at rate for d, the shop stopped (flushed), then every
// counter polled until it stops moving (up to a minute).
func (b *bench) deliver(ctx context.Context, rate float64, d time.Duration) (delivery, error) {
	r := delivery{rate: rate}
	// Let the Collector send what it still holds from before (its batches wait up to 200 ms).
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(3 * time.Second):
	}
	col0, err := scrape(ctx, b.lab.CollectorMetricsURL)
	if err != nil {
		return r, err
	}
	jaegerMetrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", b.lab.Ports.JaegerMetrics)
	jae0, err := scrape(ctx, jaegerMetrics)
	if err != nil {
		return r, err
	}
	if err := b.lab.StartShop(ctx); err != nil {
		return r, err
	}
	cpu0 := b.programCPU()
	start := time.Now()
	load := generate(ctx, b.client, b.lab.ShopURL+b.cfg.path, b.cfg.body, rate, b.cfg.conns, d)
	r.served, r.clientErrors = load.ok, load.failed
	r.cpu = map[string]float64{}
	for name, t := range b.programCPU() {
		r.cpu[name] = float64((t - cpu0[name]).Microseconds()) / float64(max(1, load.ok+load.failed))
	}
	r.achieved = float64(load.ok+load.failed) / load.elapsed.Seconds()
	if err := b.lab.StopShop(); err != nil {
		return r, err
	}
	// Poll until nothing moves for 10 s: the Collector's batches, its exporters' retries, Loki's ingestion.
	var last string
	stable := time.Now()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		if err := b.readDelivery(ctx, &r, col0, jae0, jaegerMetrics, start); err != nil {
			b.logf("reading counters: %v", err)
		}
		if now := fmt.Sprint(r); now != last {
			last, stable = now, time.Now()
		} else if time.Since(stable) > 10*time.Second || r.complete() {
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return r, nil
}

func (b *bench) readDelivery(ctx context.Context, r *delivery, col0, jae0 samples, jaegerMetrics string, start time.Time) error {
	col, err := scrape(ctx, b.lab.CollectorMetricsURL)
	if err != nil {
		return err
	}
	delta := func(name string, labels ...string) float64 {
		return col.total(name, labels...) - col0.total(name, labels...)
	}
	r.accepted = counts{delta("otelcol_receiver_accepted_spans"), delta("otelcol_receiver_accepted_log_records"), delta("otelcol_receiver_accepted_metric_points")}
	r.refused = counts{delta("otelcol_receiver_refused_spans"), delta("otelcol_receiver_refused_log_records"), delta("otelcol_receiver_refused_metric_points")}
	r.sent = counts{
		delta("otelcol_exporter_sent_spans", `exporter="otlp_grpc/jaeger"`),
		delta("otelcol_exporter_sent_log_records", `exporter="otlp_http/loki"`),
		delta("otelcol_exporter_sent_metric_points", `exporter="prometheus_remote_write"`),
	}
	r.failed = counts{
		delta("otelcol_exporter_send_failed_spans") + delta("otelcol_exporter_enqueue_failed_spans"),
		delta("otelcol_exporter_send_failed_log_records") + delta("otelcol_exporter_enqueue_failed_log_records"),
		delta("otelcol_exporter_send_failed_metric_points") + delta("otelcol_exporter_enqueue_failed_metric_points"),
	}
	jae, err := scrape(ctx, jaegerMetrics)
	if err != nil {
		return err
	}
	// Jaeger 2.13 is an older Collector core: its own metrics have the _total suffix.
	r.jaegerSpans = jae.total("otelcol_receiver_accepted_spans_total") - jae0.total("otelcol_receiver_accepted_spans_total") +
		jae.total("otelcol_receiver_accepted_spans") - jae0.total("otelcol_receiver_accepted_spans")

	// The shop started afresh: its counters began at 0, so the last values are this run's.
	if r.promRequests, err = promValue(ctx, b.lab.PrometheusURL, `sum(request_total{job="minishop"})`); err != nil {
		return err
	}
	lost, err := promValue(ctx, b.lab.PrometheusURL,
		`(sum(otel_sdk_processor_span_processed_total{job="minishop",error_type!=""}) or vector(0))`+
			` + (sum(otel_sdk_processor_log_processed_total{job="minishop",error_type!=""}) or vector(0))`)
	if err != nil {
		return err
	}
	r.sdkLost = lost
	window := time.Since(start) + 2*time.Second
	r.lokiLines, err = lokiCount(ctx, b.lab.LokiURL, fmt.Sprintf(`sum(count_over_time({app="minishop"} |~ "^request$" [%ds]))`, int(window.Seconds())+1))
	return err
}

// programCPU reads the CPU time so far of every running program of cpuPrograms.
func (b *bench) programCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, name := range cpuPrograms {
		if pid := b.lab.PID(name); pid != 0 {
			if t, err := cpuTime(pid); err == nil {
				out[name] = t
			}
		}
	}
	return out
}

// promValue runs an instant PromQL query with a single (or no) result.
func promValue(ctx context.Context, base, q string) (float64, error) {
	return instantValue(ctx, base+"/api/v1/query?"+url.Values{"query": {q}}.Encode())
}

// lokiCount runs an instant LogQL metric query with a single (or no) result.
func lokiCount(ctx context.Context, base, q string) (float64, error) {
	return instantValue(ctx, base+"/loki/api/v1/query?"+url.Values{"query": {q}, "time": {strconv.FormatInt(time.Now().UnixNano(), 10)}}.Encode())
}

// instantValue reads the first value of a Prometheus-style vector answer (Prometheus and Loki agree on it).
func instantValue(ctx context.Context, u string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return 0, fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	if len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) < 2 {
		return 0, nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(strings.TrimSpace(s), 64)
}
