package labtest

// Checks of jaeger/config.yaml with the real Jaeger v2 (jaeger, built by scripts/native-tools.sh from
// tools/jaeger/go.mod; same release as the jaegertracing/jaeger:2.13.0 image compose runs).

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

const jaegerConfig = "jaeger/config.yaml"

// jaegerEnv are the addresses of a Jaeger run on free loopback ports.
type jaegerEnv struct {
	otlpGRPC, otlpHTTP, query, queryGRPC, health, metrics string
}

// startJaeger runs jaeger with jaeger/config.yaml on free loopback ports (set through the config's env
// variables) and waits until its health check and query API answer.
func startJaeger(t *testing.T) (*labProcess, jaegerEnv) {
	t.Helper()
	bin := toolPath(t, "jaeger")
	e := jaegerEnv{
		otlpGRPC:  freeAddr(t),
		otlpHTTP:  freeAddr(t),
		query:     freeAddr(t),
		queryGRPC: freeAddr(t),
		health:    freeAddr(t),
		metrics:   freeAddr(t),
	}
	_, metricsPort, _ := net.SplitHostPort(e.metrics)
	p := startLabProcess(t, "jaeger", bin, []string{
		"JAEGER_OTLP_GRPC_LISTEN=" + e.otlpGRPC,
		"JAEGER_OTLP_HTTP_LISTEN=" + e.otlpHTTP,
		"JAEGER_QUERY_HTTP_LISTEN=" + e.query,
		"JAEGER_QUERY_GRPC_LISTEN=" + e.queryGRPC,
		"JAEGER_HEALTH_LISTEN=" + e.health,
		"JAEGER_METRICS_HOST=127.0.0.1",
		"JAEGER_METRICS_PORT=" + metricsPort,
	}, "--config", jaegerConfig)
	procs := []*labProcess{p}
	pollUntil(t, "jaeger health (/status)", 60*time.Second, procs, func() error {
		return wantHTTPOK("http://" + e.health + "/status")
	})
	pollUntil(t, "jaeger GET /api/services", 30*time.Second, procs, func() error {
		body, err := httpGetOK("http://" + e.query + "/api/services")
		if err != nil {
			return err
		}
		var r struct {
			Data []string `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("/api/services: %v: %s", err, body)
		}
		return nil
	})
	return p, e
}

// Jaeger starts with jaeger/config.yaml on loopback ports only, answers its health check and query API,
// serves its own metrics on the configured port, and stops (by PID) releasing its ports.
func TestJaegerStartsHealthyAndStops(t *testing.T) {
	t.Parallel()
	p, e := startJaeger(t)
	pollUntil(t, "jaeger own metrics", 15*time.Second, []*labProcess{p}, func() error {
		body, err := httpGetOK("http://" + e.metrics + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), "otelcol_") {
			return fmt.Errorf("no otelcol_ metrics in jaeger's /metrics yet")
		}
		return nil
	})
	// Nothing may listen on the compose defaults: every address must come from the environment.
	for _, port := range []string{"16686", "16685", "4317", "4318", "13133", "8888"} {
		if listensOnAllInterfaces(p.cmd.Process.Pid, port) {
			t.Errorf("jaeger listens on *:%s although the test gave it loopback addresses only", port)
		}
	}
	p.stop(t)
	if p.err != nil {
		t.Errorf("jaeger exited with %v after SIGTERM; output:\n%s", p.err, p.out.String())
	}
	// jaeger_query.enable_tracing: false. Otherwise Jaeger exports its own spans to localhost:4317 (our
	// Collector, natively) and stalls for seconds at shutdown trying to flush them.
	if strings.Contains(p.out.String(), "traces export") {
		t.Errorf("jaeger tried to export its own traces; output:\n%s", p.out.String())
	}
	// Its ports are free again once the process has exited.
	ln, err := net.Listen("tcp", e.query)
	if err != nil {
		t.Errorf("query port %s still busy after jaeger exited: %v", e.query, err)
	} else {
		ln.Close()
	}
}

// listensOnAllInterfaces reports whether the process pid has a socket listening on 0.0.0.0:port or
// [::]:port. It matches the socket inodes of /proc/<pid>/fd against /proc/net/tcp{,6} (Linux only; elsewhere
// it reports false).
func listensOnAllInterfaces(pid int, port string) bool {
	var n int
	if _, err := fmt.Sscan(port, &n); err != nil {
		return false
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	hexPort := fmt.Sprintf(":%04X", n)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A = LISTEN
				continue
			}
			local := fields[1]
			if strings.HasSuffix(local, hexPort) && strings.Trim(strings.TrimSuffix(local, hexPort), "0") == "" {
				return true
			}
		}
	}
	return false
}

// The whole trace path of the lab: OTLP into the Collector (collector/config.yaml), its otlp_grpc/jaeger
// exporter, Jaeger's OTLP receiver and memory store, and back out of Jaeger's query API by trace id.
func TestCollectorExportsTracesToJaeger(t *testing.T) {
	t.Parallel()
	jg, je := startJaeger(t)
	col, ce := startCollector(t, map[string]string{"JAEGER_OTLP_ENDPOINT": je.otlpGRPC})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	now := time.Now()
	attr := func(k, v string) map[string]any {
		return map[string]any{"key": k, "value": map[string]any{"stringValue": v}}
	}
	otlpJSONPost(t, ce.http, "traces", map[string]any{"resourceSpans": []any{map[string]any{
		"resource": shopResource(),
		"scopeSpans": []any{map[string]any{
			"scope": map[string]any{"name": "minishop"},
			"spans": []any{
				map[string]any{"traceId": traceID, "spanId": "00f067aa0ba902b7", "name": "POST /payment/pay", "kind": 2,
					"startTimeUnixNano": fmt.Sprint(now.Add(-300 * time.Millisecond).UnixNano()), "endTimeUnixNano": fmt.Sprint(now.UnixNano()),
					"attributes": []any{attr("http.route", "/payment/pay")}},
				map[string]any{"traceId": traceID, "spanId": "53995c3f42cd8ad8", "parentSpanId": "00f067aa0ba902b7",
					"name": "ChargePayment", "kind": 3,
					"startTimeUnixNano": fmt.Sprint(now.Add(-250 * time.Millisecond).UnixNano()), "endTimeUnixNano": fmt.Sprint(now.Add(-50 * time.Millisecond).UnixNano()),
					"attributes": []any{attr("app.payment.failure_reason", "card_declined")},
					"status":     map[string]any{"code": 2, "message": "card_declined"}},
			},
		}},
	}}})

	pollUntil(t, "trace in jaeger", 30*time.Second, []*labProcess{jg, col}, func() error {
		body, err := httpGetOK("http://" + je.query + "/api/traces/" + traceID)
		if err != nil {
			return err
		}
		var r struct {
			Data []struct {
				Spans []struct {
					OperationName string `json:"operationName"`
				} `json:"spans"`
				Processes map[string]struct {
					ServiceName string `json:"serviceName"`
				} `json:"processes"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		if len(r.Data) != 1 || len(r.Data[0].Spans) != 2 {
			return fmt.Errorf("want 1 trace with 2 spans: %s", body)
		}
		for _, p := range r.Data[0].Processes {
			if p.ServiceName != "minishop" {
				return fmt.Errorf("service %q, want minishop", p.ServiceName)
			}
		}
		return nil
	})
	body, err := httpGetOK("http://" + je.query + "/api/services")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"minishop"`) {
		t.Errorf("/api/services does not list minishop: %s", body)
	}
}

// The all-interfaces check above must be able to fail.
func TestListensOnAllInterfacesSeesWildcardListeners(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this system")
	}
	for _, c := range []struct {
		addr string
		want bool
	}{{":0", true}, {"127.0.0.1:0", false}} {
		ln, err := net.Listen("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		if got := listensOnAllInterfaces(os.Getpid(), port); got != c.want {
			t.Errorf("listening on %s (port %s): listensOnAllInterfaces = %v, want %v", c.addr, port, got, c.want)
		}
		ln.Close()
	}
}

// testSpan is one span of an OTLP/JSON trace export, in the shop's shape.
type testSpan struct {
	traceID, spanID, name string
	kind                  int           // 2 = server, 3 = client
	duration              time.Duration // ends now
	errStatus             bool
	attrs                 map[string]string
}

// postSpans sends the spans as one OTLP/HTTP JSON request to the Collector.
func postSpans(t *testing.T, httpAddr string, spans ...testSpan) {
	t.Helper()
	now := time.Now()
	var out []any
	for _, s := range spans {
		var attrs []any
		for k, v := range s.attrs {
			attrs = append(attrs, map[string]any{"key": k, "value": map[string]any{"stringValue": v}})
		}
		span := map[string]any{"traceId": s.traceID, "spanId": s.spanID, "name": s.name, "kind": s.kind,
			"startTimeUnixNano": fmt.Sprint(now.Add(-s.duration).UnixNano()), "endTimeUnixNano": fmt.Sprint(now.UnixNano()),
			"attributes": attrs}
		if s.errStatus {
			span["status"] = map[string]any{"code": 2, "message": "card_declined"}
		}
		out = append(out, span)
	}
	otlpJSONPost(t, httpAddr, "traces", map[string]any{"resourceSpans": []any{map[string]any{
		"resource":   shopResource(),
		"scopeSpans": []any{map[string]any{"scope": map[string]any{"name": "minishop"}, "spans": out}},
	}}})
}

// jaegerTrace fetches a trace by id: its spans' tags, or found=false when Jaeger does not have it.
func jaegerTrace(queryAddr, traceID string) (tags []map[string]string, found bool, err error) {
	resp, err := labHTTP.Get("http://" + queryAddr + "/api/traces/" + traceID)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return nil, false, nil
	}
	var r struct {
		Data []struct {
			Spans []struct {
				Tags []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, false, err
	}
	if len(r.Data) == 0 {
		return nil, false, nil
	}
	for _, s := range r.Data[0].Spans {
		m := map[string]string{}
		for _, tag := range s.Tags {
			m[tag.Key] = fmt.Sprint(tag.Value)
		}
		tags = append(tags, m)
	}
	return tags, true, nil
}

// traceIDFor makes a distinct, valid 32-hex-digit trace id.
func traceIDFor(prefix byte, i int) string { return fmt.Sprintf("%c%031x", prefix, i+1) }

// Each recipe does what collector/recipes/README.md and docs/labs.md say, observed in a real Jaeger.
func TestCollectorRecipesBehaveInJaeger(t *testing.T) {
	t.Parallel()
	toolPath(t, "jaeger")
	toolPath(t, "otelcol-minishop")

	t.Run("redact-attributes", func(t *testing.T) {
		t.Parallel()
		jg, je := startJaeger(t)
		col, ce := startCollector(t, map[string]string{"JAEGER_OTLP_ENDPOINT": je.otlpGRPC}, "collector/recipes/redact-attributes.yaml")
		id := traceIDFor('a', 0)
		postSpans(t, ce.http, testSpan{traceID: id, spanID: "00f067aa0ba902b7", name: "POST /order", kind: 2,
			duration: 50 * time.Millisecond, attrs: map[string]string{
				"client.address": "127.0.0.1:55555", "user_agent.original": "curl/8.5.0", "http.route": "/order"}})
		pollUntil(t, "redacted span in jaeger", 30*time.Second, []*labProcess{jg, col}, func() error {
			tags, found, err := jaegerTrace(je.query, id)
			if err != nil || !found {
				return fmt.Errorf("trace not in jaeger yet (%v)", err)
			}
			got := tags[0]
			if _, ok := got["user_agent.original"]; ok {
				t.Errorf("user_agent.original survived: %v", got)
			}
			if a := got["client.address"]; a == "" || a == "127.0.0.1:55555" {
				t.Errorf("client.address = %q, want a hash", a)
			}
			if got["http.route"] != "/order" {
				t.Errorf("http.route = %q: the recipe must leave other attributes alone", got["http.route"])
			}
			return nil
		})
	})

	t.Run("drop-health-checks", func(t *testing.T) {
		t.Parallel()
		jg, je := startJaeger(t)
		col, ce := startCollector(t, map[string]string{"JAEGER_OTLP_ENDPOINT": je.otlpGRPC}, "collector/recipes/drop-health-checks.yaml")
		health, order := traceIDFor('b', 0), traceIDFor('b', 1)
		postSpans(t, ce.http,
			testSpan{traceID: health, spanID: "00f067aa0ba902b7", name: "GET /healthz", kind: 2, duration: time.Millisecond,
				attrs: map[string]string{"url.path": "/healthz"}},
			testSpan{traceID: order, spanID: "00f067aa0ba902b8", name: "POST /order", kind: 2, duration: 20 * time.Millisecond,
				attrs: map[string]string{"url.path": "/order"}})
		pollUntil(t, "order trace in jaeger", 30*time.Second, []*labProcess{jg, col}, func() error {
			_, found, err := jaegerTrace(je.query, order)
			if err != nil || !found {
				return fmt.Errorf("order trace not in jaeger yet (%v)", err)
			}
			return nil
		})
		// Both spans came in one request, so they were exported together: the health check is gone for good.
		if _, found, err := jaegerTrace(je.query, health); err != nil || found {
			t.Errorf("health-check trace reached jaeger (found=%v, err=%v)", found, err)
		}
	})

	t.Run("tail-sampling", func(t *testing.T) {
		t.Parallel()
		jg, je := startJaeger(t)
		col, ce := startCollector(t, map[string]string{"JAEGER_OTLP_ENDPOINT": je.otlpGRPC}, "collector/recipes/tail-sampling.yaml")
		failed, slow := traceIDFor('c', 0), traceIDFor('c', 1)
		spans := []testSpan{
			{traceID: failed, spanID: "00f067aa0ba902b7", name: "ChargePayment", kind: 3, duration: 30 * time.Millisecond, errStatus: true},
			{traceID: slow, spanID: "00f067aa0ba902b8", name: "POST /order", kind: 2, duration: 900 * time.Millisecond},
		}
		const fast = 20
		for i := range fast {
			spans = append(spans, testSpan{traceID: traceIDFor('d', i), spanID: fmt.Sprintf("%016x", i+1), name: "POST /order",
				kind: 2, duration: 10 * time.Millisecond})
		}
		postSpans(t, ce.http, spans...)
		pollUntil(t, "error and slow traces kept (after decision_wait)", 60*time.Second, []*labProcess{jg, col}, func() error {
			for _, id := range []string{failed, slow} {
				if _, found, err := jaegerTrace(je.query, id); err != nil || !found {
					return fmt.Errorf("trace %s not in jaeger yet (%v)", id, err)
				}
			}
			return nil
		})
		kept := 0
		for i := range fast {
			if _, found, _ := jaegerTrace(je.query, traceIDFor('d', i)); found {
				kept++
			}
		}
		// 10% baseline: keeping all 20 fast traces would happen with probability 1e-20.
		if kept == fast {
			t.Errorf("all %d fast, successful traces were kept: tail sampling did not sample", fast)
		}
		t.Logf("fast successful traces kept by the 10%% baseline: %d of %d", kept, fast)
	})
}
