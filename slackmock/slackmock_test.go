package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const webhookPath = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

// newTestServer starts the mock's handler on an httptest server, logging JSON into logs.
func newTestServer(t *testing.T, maxMessages int) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	srv := httptest.NewServer(newServer(slog.New(slog.NewJSONHandler(logs, nil)), newMessageStore(maxMessages)))
	t.Cleanup(srv.Close)
	return srv, logs
}

func post(t *testing.T, url, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func getMessages(t *testing.T, base string) []message {
	t.Helper()
	resp, err := http.Get(base + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var msgs []message
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWebhookAnswers(t *testing.T) {
	big := `{"text":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantBody    string
	}{
		{"plain text", "application/json", `{"text":"hello"}`, 200, "ok"},
		{"attachments only", "application/json", `{"attachments":[{"title":"t","text":"x","color":"good"}]}`, 200, "ok"},
		{"blocks only", "application/json", `{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]}`, 200, "ok"},
		{"form payload", "application/x-www-form-urlencoded", "payload=" + url.QueryEscape(`{"text":"from a form"}`), 200, "ok"},
		{"alertmanager 0.25 firing", "application/json", readFixture(t, "alertmanager-0.25-firing.json"), 200, "ok"},
		{"alertmanager 0.25 resolved", "application/json", readFixture(t, "alertmanager-0.25-resolved.json"), 200, "ok"},
		{"malformed JSON", "application/json", `{"text":`, 400, "invalid_payload"},
		{"not an object", "application/json", `["text"]`, 400, "invalid_payload"},
		{"wrong type", "application/json", `{"text":5}`, 400, "invalid_payload"},
		{"trailing garbage", "application/json", `{"text":"a"} x`, 400, "invalid_payload"},
		{"bad block", "application/json", `{"blocks":[{"type":"section","text":"not an object"}]}`, 400, "invalid_payload"},
		{"empty body", "application/json", ``, 400, "invalid_payload"},
		{"empty object", "application/json", `{}`, 400, "no_text"},
		{"blank text", "application/json", `{"text":"   ","channel":"#x"}`, 400, "no_text"},
		{"form without payload", "application/x-www-form-urlencoded", "text=hi", 400, "invalid_payload"},
		{"too large", "application/json", big, 413, "request_too_large"},
	}
	srv, _ := newTestServer(t, 10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv.URL+webhookPath, tt.contentType, tt.body)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	// Only the accepted messages were kept.
	if n := len(getMessages(t, srv.URL)); n != 6 {
		t.Errorf("stored %d messages, want 6", n)
	}
}

func TestWebhookContentTypeLikeSlack(t *testing.T) {
	srv, _ := newTestServer(t, 10)
	resp, err := http.Post(srv.URL+webhookPath, "application/json", strings.NewReader(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
}

func TestAlertmanagerPayloadIsUnderstood(t *testing.T) {
	srv, logs := newTestServer(t, 10)
	if status, body := post(t, srv.URL+webhookPath, "application/json", readFixture(t, "alertmanager-0.25-firing.json")); status != 200 {
		t.Fatalf("firing: %d %q", status, body)
	}
	if status, body := post(t, srv.URL+webhookPath, "application/json", readFixture(t, "alertmanager-0.25-resolved.json")); status != 200 {
		t.Fatalf("resolved: %d %q", status, body)
	}

	msgs := getMessages(t, srv.URL)
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	resolved, firing := msgs[0], msgs[1] // newest first
	if firing.Title != "[FIRING:1] MiniShopHighErrorRate" || firing.Status != "firing" {
		t.Errorf("firing message: title %q status %q", firing.Title, firing.Status)
	}
	if resolved.Title != "[RESOLVED] MiniShopHighErrorRate" || resolved.Status != "resolved" {
		t.Errorf("resolved message: title %q status %q", resolved.Title, resolved.Status)
	}
	if firing.Channel != "#minishop-alerts" || firing.Username != "Alertmanager" {
		t.Errorf("channel %q username %q", firing.Channel, firing.Username)
	}
	if firing.Team != "T00000000" || firing.Bot != "B00000000" {
		t.Errorf("team %q bot %q", firing.Team, firing.Bot)
	}
	if len(firing.Attachments) != 1 || !strings.Contains(firing.Attachments[0].Text, "MiniShop error ratio is 20.11%") ||
		firing.Attachments[0].Color != "danger" {
		t.Errorf("attachments = %+v", firing.Attachments)
	}
	if firing.ID >= resolved.ID {
		t.Errorf("ids not increasing: firing %d, resolved %d", firing.ID, resolved.ID)
	}

	// The log line carries the structured attributes.
	var entries []map[string]any
	sc := bufio.NewScanner(logs)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		entries = append(entries, e)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d log lines, want 2", len(entries))
	}
	e := entries[0]
	want := map[string]string{
		"msg": "slack message received", "channel": "#minishop-alerts", "username": "Alertmanager",
		"title": "[FIRING:1] MiniShopHighErrorRate", "status": "firing",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("log %s = %v, want %q", k, e[k], v)
		}
	}
	if text, _ := e["text"].(string); !strings.Contains(text, "MiniShop error ratio is 20.11%") {
		t.Errorf("log text = %q", text)
	}
	if strings.Contains(logs.String(), "XXXXXXXXXXXXXXXXXXXXXXXX") {
		t.Error("the webhook token was logged")
	}
}

func TestStatusAndTitle(t *testing.T) {
	tests := []struct {
		name       string
		payload    string
		wantTitle  string
		wantStatus string
	}{
		{"title prefix", `{"attachments":[{"title":"[RESOLVED] X","text":"t"}]}`, "[RESOLVED] X", "resolved"},
		{"text prefix", `{"text":"[FIRING:2] Y"}`, "", "firing"},
		{"status field wins", `{"attachments":[{"title":"[FIRING:1] X","fields":[{"title":"status","value":"Resolved"}]}]}`, "[FIRING:1] X", "resolved"},
		{"header block", `{"blocks":[{"type":"header","text":{"type":"plain_text","text":"Deploy done"}}]}`, "Deploy done", ""},
		{"plain", `{"text":"hello"}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p webhookPayload
			if err := json.Unmarshal([]byte(tt.payload), &p); err != nil {
				t.Fatal(err)
			}
			m, err := toMessage(p)
			if err != nil {
				t.Fatal(err)
			}
			if m.Title != tt.wantTitle || m.Status != tt.wantStatus {
				t.Errorf("title %q status %q, want %q %q", m.Title, m.Status, tt.wantTitle, tt.wantStatus)
			}
		})
	}
}

func TestBlocksText(t *testing.T) {
	var p webhookPayload
	payload := `{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"a"},"fields":[{"type":"mrkdwn","text":"b"}]},
		{"type":"divider"},{"type":"context","elements":[{"type":"mrkdwn","text":"c"}]}]}`
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		t.Fatal(err)
	}
	m, err := toMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Blocks, "|"); got != "a\nb|c" {
		t.Errorf("blocks = %q, want %q", got, "a\nb|c")
	}
}

func TestMethodsAndRoutes(t *testing.T) {
	srv, _ := newTestServer(t, 10)
	tests := []struct {
		method, path string
		wantStatus   int
	}{
		{"GET", webhookPath, http.StatusMethodNotAllowed},
		{"PUT", webhookPath, http.StatusMethodNotAllowed},
		{"POST", "/api/messages", http.StatusMethodNotAllowed},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"GET", "/healthz", http.StatusOK},
		{"GET", "/", http.StatusOK},
		{"GET", "/api/messages", http.StatusOK},
		{"GET", "/nope", http.StatusNotFound},
		{"POST", "/services/T0/B0", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(`{"text":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

func TestMessagesAreBoundedNewestFirst(t *testing.T) {
	srv, _ := newTestServer(t, 3)
	if msgs := getMessages(t, srv.URL); msgs == nil || len(msgs) != 0 {
		t.Fatalf("empty store must be [], got %#v", msgs)
	}
	for i := 1; i <= 5; i++ {
		if status, body := post(t, srv.URL+webhookPath, "application/json", fmt.Sprintf(`{"text":"m%d"}`, i)); status != 200 {
			t.Fatalf("post %d: %d %q", i, status, body)
		}
	}
	msgs := getMessages(t, srv.URL)
	var got []string
	for _, m := range msgs {
		got = append(got, m.Text)
	}
	if strings.Join(got, ",") != "m5,m4,m3" {
		t.Errorf("messages = %v, want [m5 m4 m3]", got)
	}
}

func TestPageEscapesAndOrders(t *testing.T) {
	srv, _ := newTestServer(t, 10)
	post(t, srv.URL+webhookPath, "application/json", `{"text":"first message"}`)
	post(t, srv.URL+webhookPath, "application/json",
		`{"username":"<b>bob</b>","attachments":[{"title":"<script>alert(1)</script>","title_link":"javascript:alert(2)",`+
			`"text":"second & last","color":"red;background:url(x)"}]}`)

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, bad := range []string{"<script>alert(1)", "<b>bob</b>", "javascript:alert", "red;background"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	for _, good := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "second &amp; last", `http-equiv="refresh"`} {
		if !strings.Contains(page, good) {
			t.Errorf("page lacks %q", good)
		}
	}
	if i, j := strings.Index(page, "second &amp; last"), strings.Index(page, "first message"); i < 0 || j < 0 || i > j {
		t.Errorf("newest message is not first (positions %d, %d)", i, j)
	}
}

func TestEmptyPage(t *testing.T) {
	srv, _ := newTestServer(t, 10)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "No messages yet") {
		t.Errorf("status %d, body %q", resp.StatusCode, b)
	}
}

func TestColour(t *testing.T) {
	for in, want := range map[string]string{
		"danger": "#d00000", "good": "#2eb67d", "warning": "#ecb22e", "#439FE0": "#439FE0", "#abc": "#abc",
		"": "#cccccc", "red": "#cccccc", "#12345": "#cccccc", "#abc;x:y": "#cccccc",
	} {
		if got := string(colour(in)); got != want {
			t.Errorf("colour(%q) = %q, want %q", in, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from run's goroutines and read from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun starts the real program on a free loopback port, posts to it and stops it.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	getenv := func(k string) string {
		if k == "SLACKMOCK_ADDR" {
			return "127.0.0.1:0"
		}
		return ""
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"slackmock", "-max-messages", "5"}, getenv, stdout, stderr) }()

	// Wait for the "listening" log line, which has the address.
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no listening line; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			var e struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "listening" {
				addr = e.Addr
			}
		}
	}
	if status, body := post(t, "http://"+addr+webhookPath, "application/json", `{"text":"hi","channel":"#c"}`); status != 200 || body != "ok" {
		t.Fatalf("post: %d %q", status, body)
	}
	if !strings.Contains(stdout.String(), `"channel":"#c"`) {
		t.Errorf("no structured log of the message: %s", stdout.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	if !strings.Contains(stdout.String(), "shutting down") {
		t.Errorf("no shutdown log: %s", stdout.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	getenv := func(string) string { return "" }
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"slackmock", "-max-messages", "0"}, getenv, io.Discard, &stderr); err == nil {
		t.Error("-max-messages 0 accepted")
	}
	if err := run(context.Background(), []string{"slackmock", "-nope"}, getenv, io.Discard, &stderr); err == nil {
		t.Error("unknown flag accepted")
	}
	if err := run(context.Background(), []string{"slackmock", "-addr", "127.0.0.1:99999"}, getenv, io.Discard, &stderr); err == nil {
		t.Error("bad address accepted")
	}
}
