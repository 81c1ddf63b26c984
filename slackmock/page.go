package main

import (
	"html/template"
	"log/slog"
	"net/http"
	"regexp"
)

// pageRefreshSeconds is how often the browser reloads the message page.
const pageRefreshSeconds = 5

// pageTemplate renders the channel. html/template escapes every value from the payloads,
// including URLs (title_link) and the colour, which is checked before it reaches a style attribute.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"colour": colour}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>#minishop-alerts · Slack mock ({{len .Messages}})</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d1c1d; background: #f8f8f8; }
h1 { font-size: 1.4rem; } .hint { color: #616061; }
.msg { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .75rem 1rem; margin: .75rem 0; }
.meta { color: #616061; font-size: .85rem; }
.status { font-weight: bold; text-transform: uppercase; padding: 0 .4rem; border-radius: 3px; color: #fff; background: #888; }
.status-firing { background: #d00000; } .status-resolved { background: #2eb67d; }
.att { border-left: 4px solid #ccc; padding: .25rem .75rem; margin: .5rem 0; }
.title { font-weight: bold; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .9rem; }
.fields { display: flex; gap: 2rem; flex-wrap: wrap; font-size: .9rem; }
</style>
</head>
<body>
<h1>Slack mock: messages received ({{len .Messages}}, newest first)</h1>
<p class="hint">Refreshes every {{.Refresh}}s. JSON: <a href="/api/messages">/api/messages</a>.</p>
{{- if not .Messages}}
<p>No messages yet. Alertmanager posts here when an alert such as MiniShopHighErrorRate fires or resolves.</p>
{{- end}}
{{- range .Messages}}
<div class="msg">
  <div class="meta">#{{.ID}} · {{.ReceivedAt.Format "2006-01-02 15:04:05 MST"}}
    {{- if .Channel}} · {{.Channel}}{{end}}{{if .Username}} · from {{.Username}}{{end}}
    {{- if .Status}} · <span class="status status-{{.Status}}">{{.Status}}</span>{{end}}</div>
  {{- if .Text}}<div class="text">{{.Text}}</div>{{end}}
  {{- range .Attachments}}
  <div class="att" style="border-left-color: {{colour .Color}}">
    {{- if .Pretext}}<div class="text">{{.Pretext}}</div>{{end}}
    {{- if .Title}}<div class="title">{{if .TitleLink}}<a href="{{.TitleLink}}">{{.Title}}</a>{{else}}{{.Title}}{{end}}</div>{{end}}
    {{- if .Text}}<div class="text">{{.Text}}</div>{{end}}
    {{- if .Fields}}<div class="fields">{{range .Fields}}<div><b>{{.Title}}</b>: {{.Value}}</div>{{end}}</div>{{end}}
    {{- if .Footer}}<div class="meta">{{.Footer}}</div>{{end}}
  </div>
  {{- end}}
  {{- range .Blocks}}<div class="att"><div class="text">{{.}}</div></div>{{end}}
</div>
{{- end}}
</body>
</html>
`))

// hexColour is the only colour syntax passed through to CSS besides Slack's named colours.
var hexColour = regexp.MustCompile(`^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$`)

// colour maps an attachment colour to CSS: Slack's good/warning/danger, a hex value, or grey.
func colour(c string) template.CSS {
	switch c {
	case "good":
		return "#2eb67d"
	case "warning":
		return "#ecb22e"
	case "danger":
		return "#d00000"
	}
	if hexColour.MatchString(c) {
		return template.CSS(c) // safe: matched against a strict pattern above
	}
	return "#cccccc"
}

// handleMessagesPage shows the received messages, newest first, on a page that reloads itself.
func handleMessagesPage(logger *slog.Logger, store *messageStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := struct {
			Refresh  int
			Messages []message
		}{Refresh: pageRefreshSeconds, Messages: store.list()}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := pageTemplate.Execute(w, data); err != nil {
			logger.Error("render page", "err", err)
		}
	})
}
