package main

import (
	"sync"
	"time"
)

// message is one received webhook call, as shown on the page and returned by /api/messages.
type message struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	// Team and Bot are the first two path segments of the webhook URL; the token is not kept.
	Team     string `json:"team"`
	Bot      string `json:"bot"`
	Channel  string `json:"channel"`
	Username string `json:"username"`
	// Title is the first attachment's title, or the first header block's text.
	Title string `json:"title"`
	// Status is "firing" or "resolved" when the message says so (Alertmanager's messages do), else "".
	Status string `json:"status"`
	// Text is the top-level text field.
	Text        string       `json:"text"`
	Attachments []attachment `json:"attachments"`
	// Blocks holds the text of each Block Kit block that has any.
	Blocks []string `json:"blocks"`
}

// attachment is a Slack message attachment (the "legacy" format Alertmanager sends).
type attachment struct {
	Title     string  `json:"title"`
	TitleLink string  `json:"title_link,omitempty"`
	Pretext   string  `json:"pretext,omitempty"`
	Text      string  `json:"text"`
	Fallback  string  `json:"fallback,omitempty"`
	Color     string  `json:"color,omitempty"`
	Footer    string  `json:"footer,omitempty"`
	Fields    []field `json:"fields,omitempty"`
}

// field is one title/value pair of an attachment.
type field struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short,omitempty"`
}

// messageStore keeps the last max messages, safe for concurrent use.
type messageStore struct {
	mu     sync.Mutex
	max    int
	nextID int64
	msgs   []message // oldest first
}

func newMessageStore(max int) *messageStore {
	return &messageStore{max: max, nextID: 1}
}

// add stores m (assigning its ID) and drops the oldest messages beyond the bound.
func (s *messageStore) add(m message) message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.ID = s.nextID
	s.nextID++
	s.msgs = append(s.msgs, m)
	if over := len(s.msgs) - s.max; over > 0 {
		s.msgs = append(s.msgs[:0:0], s.msgs[over:]...)
	}
	return m
}

// list returns a copy of the stored messages, newest first (never nil).
func (s *messageStore) list() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]message, 0, len(s.msgs))
	for i := len(s.msgs) - 1; i >= 0; i-- {
		out = append(out, s.msgs[i])
	}
	return out
}
