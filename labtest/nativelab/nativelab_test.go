package nativelab

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

const repo = "../.."

// The rendered prometheus.yml differs from the real one only in the target host:port values (and a
// header comment); the rules are copied unchanged unless a test asks for a shorter `for`.
func TestRenderPrometheusOnlyReplacesTargets(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{
		"localhost:9090":      "127.0.0.1:19090",
		"otel-collector:8888": "127.0.0.1:18888",
		"jaeger:8888":         "127.0.0.1:18889",
		"alertmanager:9093":   "127.0.0.1:19093",
	}
	out, err := RenderPrometheus(repo, dir, targets, 0)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(repo, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	gotLines := strings.Split(string(got), "\n")
	for len(gotLines) > 0 && strings.HasPrefix(gotLines[0], "# RENDERED") || len(gotLines) > 0 && strings.HasPrefix(gotLines[0], "# only the compose") {
		gotLines = gotLines[1:]
	}
	origLines := strings.Split(string(orig), "\n")
	if len(gotLines) != len(origLines) {
		t.Fatalf("rendered config has %d lines after its header, the original %d", len(gotLines), len(origLines))
	}
	changed, withTarget := 0, 0
	for i := range origLines {
		for from := range targets {
			if strings.Contains(origLines[i], `"`+from+`"`) {
				withTarget++
				break
			}
		}
		if origLines[i] == gotLines[i] {
			continue
		}
		changed++
		want := origLines[i]
		for from, to := range targets {
			want = strings.ReplaceAll(want, `"`+from+`"`, `"`+to+`"`)
		}
		if gotLines[i] != want {
			t.Errorf("line %d: %q became %q; only target addresses may change", i+1, origLines[i], gotLines[i])
		}
	}
	if changed != withTarget || changed < len(targets) {
		t.Errorf("%d lines changed, want the %d lines with a compose target (at least one per target)", changed, withTarget)
	}
	for from := range targets {
		if strings.Contains(string(got), `"`+from+`"`) {
			t.Errorf("compose target %s still in the rendered config", from)
		}
	}
	rules, _ := filepath.Glob(filepath.Join(repo, "prometheus", "rules", "*.yml"))
	for _, r := range rules {
		a, _ := os.ReadFile(r)
		b, err := os.ReadFile(filepath.Join(dir, "prometheus", "rules", filepath.Base(r)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("rules copy %s differs from the original", filepath.Base(r))
		}
	}

	// A drifted config (a target the lab does not know how to replace) is an error, not a silent skip.
	if _, err := RenderPrometheus(repo, t.TempDir(), map[string]string{"localhost:9090": "x"}, 0); err == nil {
		t.Error("rendering without every target's address succeeded")
	}
}

func TestRenderPrometheusTestRulesShortenOnlyFor(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{}
	for _, k := range composePrometheusTargets {
		targets[k] = "127.0.0.1:1"
	}
	if _, err := RenderPrometheus(repo, dir, targets, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(filepath.Join(repo, "prometheus", "rules", "minishop.yml"))
	got, _ := os.ReadFile(filepath.Join(dir, "prometheus", "rules", "minishop.yml"))
	if !strings.Contains(string(got), "for: 10s") || !strings.Contains(string(got), "# TEST COPY") {
		t.Fatalf("test rules copy has no `for: 10s` or no TEST COPY note:\n%s", got)
	}
	// Undo the only change: the original comes back.
	body := string(got[strings.Index(string(got), "\n# the real value")+1:])
	body = body[strings.Index(body, "\n")+1:]
	if strings.ReplaceAll(body, "for: 10s", "for: 1m") != string(orig) {
		t.Errorf("test rules copy changes more than `for:`")
	}
}

func TestRenderAlertmanagerWebhookFile(t *testing.T) {
	dir := t.TempDir()
	out, err := RenderAlertmanager(repo, dir, "http://127.0.0.1:8070"+SlackWebhookPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if strings.Contains(string(b), composeWebhookFile) {
		t.Errorf("rendered alertmanager.yml still reads %s", composeWebhookFile)
	}
	urlFile := filepath.Join(dir, "alertmanager", "slack_webhook_url")
	if !strings.Contains(string(b), "api_url_file: "+urlFile) {
		t.Errorf("rendered alertmanager.yml does not read %s", urlFile)
	}
	u, _ := os.ReadFile(urlFile)
	if string(u) != "http://127.0.0.1:8070"+SlackWebhookPath {
		t.Errorf("webhook file holds %q", u)
	}
}

func TestPrometheusFlagsFromConfigComment(t *testing.T) {
	flags, err := PrometheusFlags(repo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"--web.enable-remote-write-receiver": false, "--enable-feature=exemplar-storage": false}
	for _, f := range flags {
		if strings.HasPrefix(f, "--config.file") {
			t.Errorf("flags include %s", f)
		}
		if _, ok := want[f]; ok {
			want[f] = true
		}
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("flag %s not found in prometheus.yml's comment (got %v)", f, flags)
		}
	}
}

func TestPortsFill(t *testing.T) {
	p := Ports{Shop: 8080}
	if err := p.fill(); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, f := range p.all() {
		if *f.ptr == 0 || seen[*f.ptr] {
			t.Errorf("%s: port %d zero or duplicate", f.name, *f.ptr)
		}
		seen[*f.ptr] = true
	}
	if p.Shop != 8080 {
		t.Errorf("given port changed to %d", p.Shop)
	}
	dup := Ports{Shop: 8080, Prometheus: 8080}
	if err := dup.fill(); err == nil {
		t.Error("duplicate ports accepted")
	}
	env, err := PortsFromEnv(func(k string) string { return map[string]string{"PROMETHEUS_PORT": "19090"}[k] })
	if err != nil || env.Prometheus != 19090 || env.Shop != 8080 || env.JaegerUI != 16686 {
		t.Errorf("PortsFromEnv = %+v, %v", env, err)
	}
	if _, err := PortsFromEnv(func(k string) string { return "x" }); err == nil {
		t.Error("PortsFromEnv accepted a non-number")
	}
}

func sampleRequest() *collogs.ExportLogsServiceRequest {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "service.name", Value: str("minishop")}, {Key: "app", Value: str("minishop")},
		}},
		ScopeLogs: []*logspb.ScopeLogs{{
			Scope: &commonpb.InstrumentationScope{Name: "minishop"},
			LogRecords: []*logspb.LogRecord{{
				TimeUnixNano:   uint64(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()),
				SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN,
				SeverityText:   "WARN",
				Body:           str("payment failed"),
				TraceId:        []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c},
				SpanId:         []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74},
				Attributes: []*commonpb.KeyValue{
					{Key: "reason", Value: str("card_declined")},
					{Key: "amount_cents", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1299}}},
				},
			}},
		}},
	}}}
}

func checkSample(t *testing.T, s *LogSink) {
	t.Helper()
	recs := s.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r.BodyString() != "payment failed" || r.TraceID != "5b8efff798038103d269b633813fc60c" || r.SpanID != "eee19b7ec3c1b174" ||
		r.Resource["app"] != "minishop" || r.Resource["service.name"] != "minishop" || r.Attributes["reason"] != "card_declined" ||
		r.Attributes["amount_cents"] != int64(1299) || r.SeverityText != "WARN" || r.Scope != "minishop" {
		t.Errorf("record %+v", r)
	}
}

func TestLogSinkProtobufGzipAndJSON(t *testing.T) {
	s := NewLogSink(5)
	a, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	pb, _ := proto.Marshal(sampleRequest())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pb)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://"+a+"/otlp/v1/logs", &gz)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("protobuf export: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	checkSample(t, s)
	if f := s.Formats(); f["application/x-protobuf+gzip"] != 1 {
		t.Errorf("formats %v", f)
	}

	// OTLP JSON (hex ids, as the spec says) to /v1/logs.
	s2 := NewLogSink(5)
	a2, _ := s2.Listen("127.0.0.1:0")
	defer s2.Close()
	js := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"minishop"}},{"key":"app","value":{"stringValue":"minishop"}}]},
	"scopeLogs":[{"scope":{"name":"minishop"},"logRecords":[{"timeUnixNano":"1767323045000000000","severityNumber":13,"severityText":"WARN",
	"body":{"stringValue":"payment failed"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
	"attributes":[{"key":"reason","value":{"stringValue":"card_declined"}},{"key":"amount_cents","value":{"intValue":"1299"}}]}]}]}]}`
	resp, err = http.Post("http://"+a2+"/v1/logs", "application/json", strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("JSON export: %s", resp.Status)
	}
	checkSample(t, s2)

	// Malformed bodies are refused and counted.
	resp, _ = http.Post("http://"+a2+"/v1/logs", "application/x-protobuf", strings.NewReader("\xff\xff\xff"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage protobuf: %s", resp.Status)
	}
	if _, _, rejected := s2.Stats(); rejected != 1 {
		t.Errorf("rejected = %d", rejected)
	}

	// GET /records with filters.
	resp, err = http.Get("http://" + a2 + "/records?trace_id=5B8EFFF798038103D269B633813FC60C&contains=payment")
	if err != nil {
		t.Fatal(err)
	}
	var recs []LogRecord
	json.NewDecoder(resp.Body).Decode(&recs)
	resp.Body.Close()
	if len(recs) != 1 {
		t.Errorf("GET /records?trace_id=...: %d records", len(recs))
	}
}

func TestLogSinkKeepsTheLastN(t *testing.T) {
	s := NewLogSink(3)
	for i := 0; i < 5; i++ {
		req := sampleRequest()
		req.ResourceLogs[0].ScopeLogs[0].LogRecords[0].Body = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(rune('a' + i))}}
		s.add(req, false)
	}
	var bodies []string
	for _, r := range s.Records() {
		bodies = append(bodies, r.BodyString())
	}
	if strings.Join(bodies, "") != "cde" {
		t.Errorf("kept %v, want the last three in order", bodies)
	}
	if total, requests, _ := s.Stats(); total != 5 || requests != 5 {
		t.Errorf("stats %d %d", total, requests)
	}
}
