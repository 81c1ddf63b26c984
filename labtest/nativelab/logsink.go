package nativelab

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// LogRecord is one OTLP log record as the log sink received it, flattened for tests and curious users:
// the resource and scope it came with, and its own fields.
type LogRecord struct {
	Received       time.Time      `json:"received"`
	Time           time.Time      `json:"time"`
	ObservedTime   time.Time      `json:"observed_time"`
	SeverityNumber int32          `json:"severity_number"`
	SeverityText   string         `json:"severity_text"`
	Body           any            `json:"body"`
	TraceID        string         `json:"trace_id,omitempty"`
	SpanID         string         `json:"span_id,omitempty"`
	Attributes     map[string]any `json:"attributes"`
	Resource       map[string]any `json:"resource"`
	Scope          string         `json:"scope"`
}

// BodyString is the body as text (a non-string body is JSON-encoded).
func (r LogRecord) BodyString() string {
	if s, ok := r.Body.(string); ok {
		return s
	}
	b, _ := json.Marshal(r.Body)
	return string(b)
}

// LogSink stands in for Loki: an OTLP/HTTP logs receiver (POST /v1/logs, and /otlp/v1/logs like Loki) that
// decodes what the Collector's otlp_http/loki exporter sends (protobuf, or OTLP JSON; gzip or plain) and keeps
// the last N records in memory. GET /records shows them as JSON.
type LogSink struct {
	keep int

	mu       sync.Mutex
	records  []LogRecord // ring of at most keep records, oldest first after ordering
	next     int         // write position once the ring is full
	total    int64       // records ever received
	requests int64       // export requests accepted
	rejected int64       // export requests refused as malformed
	formats  map[string]int64

	ln  net.Listener
	srv *http.Server
}

// NewLogSink makes a sink keeping the last keep records (10000 if keep <= 0).
func NewLogSink(keep int) *LogSink {
	if keep <= 0 {
		keep = 10000
	}
	return &LogSink{keep: keep}
}

// Listen starts serving on addr (e.g. 127.0.0.1:0) in the background and returns the address it listens on.
func (s *LogSink) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return ln.Addr().String(), nil
}

// Close stops serving.
func (s *LogSink) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// ServeHTTP implements the sink's small HTTP API.
func (s *LogSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/logs" || r.URL.Path == "/otlp/v1/logs":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "POST OTLP logs here", http.StatusMethodNotAllowed)
			return
		}
		s.handleExport(w, r)
	case r.URL.Path == "/records" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.handleRecords(w, r)
	case r.URL.Path == "/healthz" || r.URL.Path == "/ready":
		fmt.Fprintln(w, "ok")
	case r.URL.Path == "/":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		total, requests, rejected := s.Stats()
		fmt.Fprintf(w, "MiniShop native lab log sink (stands in for Loki; keeps the last %d records)\n\n"+
			"POST /v1/logs or /otlp/v1/logs   OTLP/HTTP logs (protobuf or JSON, gzip ok)\n"+
			"GET  /records                    received records as JSON, oldest first\n"+
			"     ?trace_id=<hex>&contains=<text in body>&limit=<n newest>\n\n"+
			"received so far: %d records in %d requests (%d rejected)\n", s.keep, total, requests, rejected)
	default:
		http.NotFound(w, r)
	}
}

func (s *LogSink) handleExport(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, 64<<20)
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			s.reject(w, http.StatusBadRequest, "bad gzip body: "+err.Error())
			return
		}
		defer zr.Close()
		body = zr
	default:
		s.reject(w, http.StatusUnsupportedMediaType, "unsupported Content-Encoding "+enc)
		return
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req collogs.ExportLogsServiceRequest
	isJSON := ct == "application/json"
	switch ct {
	case "application/x-protobuf", "application/protobuf", "":
		err = proto.Unmarshal(raw, &req)
	case "application/json":
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(raw, &req)
	default:
		s.reject(w, http.StatusUnsupportedMediaType, "unsupported Content-Type "+ct)
		return
	}
	if err != nil {
		s.reject(w, http.StatusBadRequest, "decoding ExportLogsServiceRequest: "+err.Error())
		return
	}
	s.add(&req, isJSON)
	format := ct
	if enc := r.Header.Get("Content-Encoding"); enc != "" {
		format += "+" + strings.ToLower(enc)
	}
	s.mu.Lock()
	if s.formats == nil {
		s.formats = map[string]int64{}
	}
	s.formats[format]++
	s.mu.Unlock()

	var resp []byte
	if isJSON {
		w.Header().Set("Content-Type", "application/json")
		resp, _ = protojson.Marshal(&collogs.ExportLogsServiceResponse{})
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		resp, _ = proto.Marshal(&collogs.ExportLogsServiceResponse{})
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

func (s *LogSink) reject(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.rejected++
	s.mu.Unlock()
	http.Error(w, msg, status)
}

func (s *LogSink) add(req *collogs.ExportLogsServiceRequest, fromJSON bool) {
	now := time.Now()
	var recs []LogRecord
	for _, rl := range req.GetResourceLogs() {
		res := attrMap(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			scope := sl.GetScope().GetName()
			for _, lr := range sl.GetLogRecords() {
				recs = append(recs, convertRecord(lr, res, scope, now, fromJSON))
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	for _, r := range recs {
		s.total++
		if len(s.records) < s.keep {
			s.records = append(s.records, r)
			continue
		}
		s.records[s.next] = r
		s.next = (s.next + 1) % s.keep
	}
}

func convertRecord(lr *logspb.LogRecord, res map[string]any, scope string, now time.Time, fromJSON bool) LogRecord {
	r := LogRecord{
		Received:       now,
		SeverityNumber: int32(lr.GetSeverityNumber()),
		SeverityText:   lr.GetSeverityText(),
		Body:           anyValue(lr.GetBody()),
		TraceID:        otlpID(lr.GetTraceId(), 16, fromJSON),
		SpanID:         otlpID(lr.GetSpanId(), 8, fromJSON),
		Attributes:     attrMap(lr.GetAttributes()),
		Resource:       res,
		Scope:          scope,
	}
	if ns := lr.GetTimeUnixNano(); ns != 0 {
		r.Time = time.Unix(0, int64(ns)).UTC()
	}
	if ns := lr.GetObservedTimeUnixNano(); ns != 0 {
		r.ObservedTime = time.Unix(0, int64(ns)).UTC()
	}
	return r
}

// otlpID renders a trace or span id as lowercase hex. OTLP JSON carries ids as hex strings where protojson
// expects base64; a 32-hex-digit trace id decodes as 24 bytes of base64 (16 hex digits as 12 for a span id),
// and re-encoding those bytes gives back exactly the hex text.
func otlpID(b []byte, size int, fromJSON bool) string {
	if len(b) == 0 {
		return ""
	}
	if fromJSON && len(b) == size*3/2 {
		if h, err := hex.DecodeString(base64.StdEncoding.EncodeToString(b)); err == nil && len(h) == size {
			b = h
		}
	}
	return hex.EncodeToString(b)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = anyValue(kv.GetValue())
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	if v == nil {
		return nil
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyValue(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrMap(x.KvlistValue.GetValues())
	}
	return nil
}

// Records returns the kept records, oldest first.
func (s *LogSink) Records() []LogRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LogRecord, 0, len(s.records))
	out = append(out, s.records[s.next:]...)
	out = append(out, s.records[:s.next]...)
	return out
}

// Stats returns how many records and export requests arrived, and how many requests were refused.
func (s *LogSink) Stats() (records, requests, rejected int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.requests, s.rejected
}

// Formats counts the accepted export requests by Content-Type (+Content-Encoding), e.g.
// "application/x-protobuf+gzip".
func (s *LogSink) Formats() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.formats))
	for k, v := range s.formats {
		out[k] = v
	}
	return out
}

// Find returns the kept records for which match is true, oldest first.
func (s *LogSink) Find(match func(LogRecord) bool) []LogRecord {
	var out []LogRecord
	for _, r := range s.Records() {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

func (s *LogSink) handleRecords(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	traceID := strings.ToLower(q.Get("trace_id"))
	contains := q.Get("contains")
	recs := s.Find(func(rec LogRecord) bool {
		return (traceID == "" || rec.TraceID == traceID) &&
			(contains == "" || strings.Contains(rec.BodyString(), contains))
	})
	if l := q.Get("limit"); l != "" {
		if n, err := strconv.Atoi(l); err == nil && n >= 0 && n < len(recs) {
			recs = recs[len(recs)-n:]
		}
	}
	if recs == nil {
		recs = []LogRecord{}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(recs)
}
