package main

import (
	"log/slog"
	"net/http"
)

// newServer returns the mock's whole HTTP API.
func newServer(logger *slog.Logger, store *messageStore) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, logger, store)
	return mux
}

// addRoutes is the one place that maps URLs to handlers. Patterns with a method answer other
// methods with 405 and an Allow header (net/http does that for us).
func addRoutes(mux *http.ServeMux, logger *slog.Logger, store *messageStore) {
	mux.Handle("POST /services/{team}/{bot}/{token}", handleWebhook(logger, store))
	mux.Handle("GET /api/messages", handleMessagesJSON(store))
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /{$}", handleMessagesPage(logger, store))
}
