package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// webhookPayload is the part of a Slack incoming-webhook message the mock understands.
// Unknown fields are ignored, as Slack does.
type webhookPayload struct {
	Channel     string            `json:"channel"`
	Username    string            `json:"username"`
	Text        string            `json:"text"`
	Attachments []attachment      `json:"attachments"`
	Blocks      []json.RawMessage `json:"blocks"`
}

// block is the part of a Block Kit block that carries text: section/header text, section
// fields and context elements.
type block struct {
	Type     string       `json:"type"`
	Text     *textObject  `json:"text"`
	Fields   []textObject `json:"fields"`
	Elements []textObject `json:"elements"`
}

// textObject is a Block Kit text object (mrkdwn or plain_text).
type textObject struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// handleWebhook accepts a Slack incoming-webhook POST and answers like Slack: 200 "ok",
// 400 "invalid_payload" for a body that is not a JSON message, 400 "no_text" for a message
// with nothing to show.
func handleWebhook(logger *slog.Logger, store *messageStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				slackError(w, http.StatusRequestEntityTooLarge, "request_too_large")
				return
			}
			slackError(w, http.StatusBadRequest, "invalid_payload")
			return
		}
		// Slack also accepts the JSON as the form field "payload".
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				slackError(w, http.StatusBadRequest, "invalid_payload")
				return
			}
			body = []byte(form.Get("payload"))
		}
		var p webhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			slackError(w, http.StatusBadRequest, "invalid_payload")
			return
		}
		m, err := toMessage(p)
		if err != nil {
			slackError(w, http.StatusBadRequest, "invalid_payload")
			return
		}
		if strings.TrimSpace(m.Text) == "" && len(m.Attachments) == 0 && len(p.Blocks) == 0 {
			slackError(w, http.StatusBadRequest, "no_text")
			return
		}
		m.ReceivedAt = time.Now().UTC()
		m.Team = r.PathValue("team")
		m.Bot = r.PathValue("bot")
		m = store.add(m)

		logger.Info("slack message received",
			slog.Int64("id", m.ID),
			slog.String("team", m.Team),
			slog.String("channel", m.Channel),
			slog.String("username", m.Username),
			slog.String("title", m.Title),
			slog.String("status", m.Status),
			slog.String("text", logText(m)),
			slog.Int("attachments", len(m.Attachments)),
			slog.Int("blocks", len(p.Blocks)),
		)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ok")
	})
}

// toMessage turns a decoded payload into a stored message, deriving title and status.
func toMessage(p webhookPayload) (message, error) {
	m := message{
		Channel:     p.Channel,
		Username:    p.Username,
		Text:        p.Text,
		Attachments: p.Attachments,
		Blocks:      []string{},
	}
	if m.Attachments == nil {
		m.Attachments = []attachment{}
	}
	for _, raw := range p.Blocks {
		var b block
		if err := json.Unmarshal(raw, &b); err != nil {
			return message{}, err
		}
		var parts []string
		if b.Text != nil && b.Text.Text != "" {
			parts = append(parts, b.Text.Text)
		}
		for _, t := range append(b.Fields, b.Elements...) {
			if t.Text != "" {
				parts = append(parts, t.Text)
			}
		}
		if len(parts) > 0 {
			m.Blocks = append(m.Blocks, strings.Join(parts, "\n"))
		}
		if m.Title == "" && b.Type == "header" && b.Text != nil {
			m.Title = b.Text.Text
		}
	}
	for _, a := range m.Attachments {
		if a.Title != "" {
			m.Title = a.Title
			break
		}
	}
	m.Status = status(m)
	return m, nil
}

// status says whether the message reports a firing or a resolved alert: from a field titled
// "Status", else from Alertmanager's "[FIRING:n]" / "[RESOLVED]" title prefix.
func status(m message) string {
	for _, a := range m.Attachments {
		for _, f := range a.Fields {
			if strings.EqualFold(strings.TrimSpace(f.Title), "status") {
				return strings.ToLower(strings.TrimSpace(f.Value))
			}
		}
	}
	for _, s := range []string{m.Title, m.Text} {
		u := strings.ToUpper(s)
		switch {
		case strings.Contains(u, "[FIRING"):
			return "firing"
		case strings.Contains(u, "[RESOLVED"):
			return "resolved"
		}
	}
	return ""
}

// logText is the text worth logging: the top-level text, else the attachments' and blocks' text.
func logText(m message) string {
	parts := []string{}
	if strings.TrimSpace(m.Text) != "" {
		parts = append(parts, m.Text)
	}
	for _, a := range m.Attachments {
		if a.Text != "" {
			parts = append(parts, a.Text)
		}
	}
	parts = append(parts, m.Blocks...)
	return strings.Join(parts, "\n")
}

// slackError answers with Slack's plain-text error codes.
func slackError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, code)
}

// handleMessagesJSON returns the stored messages, newest first, as a JSON array.
func handleMessagesJSON(store *messageStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := json.NewEncoder(w).Encode(store.list()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// handleHealthz says the mock is up.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
}
