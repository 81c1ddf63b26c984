package labtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// amWebhookFileInConfig is where alertmanager.yml reads the Slack webhook URL from (compose's
	// entrypoint writes $SLACK_WEBHOOK_URL there).
	amWebhookFileInConfig = "/tmp/slack_webhook_url"
	// amMockWebhookPath is the path of the default SLACK_WEBHOOK_URL (the Slack mock).
	amMockWebhookPath = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
)

func amConfigPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot, "alertmanager", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAlertmanagerConfigCheck validates alertmanager.yml with amtool v0.35.0, the version of the
// compose image, and checks that every alert is routed to the Slack receiver.
func TestAlertmanagerConfigCheck(t *testing.T) {
	amtool := toolPath(t, "amtool")
	out, err := exec.Command(amtool, "check-config", amConfigPath(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	out, err = exec.Command(amtool, "config", "routes", "test", "--config.file="+amConfigPath(t), "--verify.receivers=slack-minishop",
		"alertname=MiniShopHighErrorRate", "severity=critical", "job=minishop").CombinedOutput()
	if err != nil {
		t.Fatalf("amtool config routes test: %v\n%s", err, out)
	}
}

// TestAlertmanagerRejectsBrokenConfig proves the check above can fail.
func TestAlertmanagerRejectsBrokenConfig(t *testing.T) {
	amtool := toolPath(t, "amtool")
	src, err := os.ReadFile(amConfigPath(t))
	if err != nil {
		t.Fatal(err)
	}
	// Route to a receiver that does not exist.
	broken := strings.Replace(string(src), "receiver: slack-minishop", "receiver: nobody", 1)
	if broken == string(src) {
		t.Fatal("alertmanager.yml has no 'receiver: slack-minishop' line to break")
	}
	p := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(p, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(amtool, "check-config", p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nobody") {
		t.Fatalf("amtool accepted a route to an undefined receiver: %v\n%s", err, out)
	}
}

// amProcess is a program started by a test and stopped (by its own PID) at cleanup.
type amProcess struct {
	name   string
	out    *syncBuffer
	exited chan error
}

func amStart(t *testing.T, name, bin string, args ...string) *amProcess {
	t.Helper()
	p := &amProcess{name: name, out: &syncBuffer{}, exited: make(chan error, 1)}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// amPoll calls check until it returns nil, failing at the deadline or if a process exits.
func amPoll(t *testing.T, what string, timeout time.Duration, procs []*amProcess, check func() error) {
	t.Helper()
	err := poll(timeout, 200*time.Millisecond, func() error {
		err := check()
		if err == nil {
			return nil
		}
		for _, p := range procs {
			select {
			case e := <-p.exited:
				p.exited <- e // put it back: the cleanup waits for it
				t.Fatalf("%s exited (%v) while waiting for %s; output:\n%s", p.name, e, what, p.out.String())
			default:
			}
		}
		return err
	})
	if err != nil {
		var logs strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&logs, "--- %s output:\n%s\n", p.name, p.out.String())
		}
		t.Fatalf("%s: %v\n%s", what, err, logs.String())
	}
}

// amStartSlackMock builds ./slackmock from the repository and starts it on a free loopback port,
// returning its base URL (read from its "listening" log line).
func amStartSlackMock(t *testing.T) (*amProcess, string) {
	t.Helper()
	p := amStart(t, "slackmock", buildRepoProgram(t, "./slackmock"), "-addr", "127.0.0.1:0")
	var addr string
	amPoll(t, "slackmock listening", 30*time.Second, []*amProcess{p}, func() error {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			var e struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg == "listening" {
				addr = e.Addr
				return nil
			}
		}
		return fmt.Errorf("no listening line yet")
	})
	return p, "http://" + addr
}

// amSlackMessage is the part of the mock's /api/messages entries this test reads.
type amSlackMessage struct {
	Channel     string `json:"channel"`
	Username    string `json:"username"`
	Title       string `json:"title"`
	Status      string `json:"status"`
	Attachments []struct {
		Title  string `json:"title"`
		Text   string `json:"text"`
		Color  string `json:"color"`
		Fields []struct {
			Title string `json:"title"`
			Value string `json:"value"`
		} `json:"fields"`
	} `json:"attachments"`
}

func amMockMessages(base string) ([]amSlackMessage, error) {
	resp, err := http.Get(base + "/api/messages")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var msgs []amSlackMessage
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// amPostAlert posts one alert to Alertmanager's v2 API, as Prometheus does.
func amPostAlert(t *testing.T, amURL string, alert map[string]any) {
	t.Helper()
	body, err := json.Marshal([]map[string]any{alert})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /api/v2/alerts: %s %s", resp.Status, b)
	}
}

// TestAlertmanagerDeliversToSlackMock runs the native Alertmanager (v0.35.0, as in compose) with
// alertmanager.yml, only api_url_file pointed at a temporary file holding the Slack mock's URL,
// posts a MiniShopHighErrorRate alert as Prometheus would, and expects the firing and then the
// resolved message in the mock, with the alert name, status, summary and value.
func TestAlertmanagerDeliversToSlackMock(t *testing.T) {
	amBin := toolPath(t, "alertmanager")
	mock, mockURL := amStartSlackMock(t)

	dir := t.TempDir()
	urlFile := filepath.Join(dir, "slack_webhook_url")
	if err := os.WriteFile(urlFile, []byte(mockURL+amMockWebhookPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(amConfigPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(src), "api_url_file: "+amWebhookFileInConfig); n != 1 {
		t.Fatalf("alertmanager.yml has %d 'api_url_file: %s' lines, want 1", n, amWebhookFileInConfig)
	}
	cfg := strings.Replace(string(src), "api_url_file: "+amWebhookFileInConfig, "api_url_file: "+urlFile, 1)
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	amAddr := freeAddr(t)
	am := amStart(t, "alertmanager", amBin,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=", // no gossip port: a single instance on loopback
	)
	amURL := "http://" + amAddr
	procs := []*amProcess{mock, am}
	amPoll(t, "alertmanager ready", 60*time.Second, procs, func() error {
		return wantHTTPOK(amURL + "/-/ready")
	})

	startsAt := time.Now().UTC().Add(-2 * time.Minute)
	alert := map[string]any{
		"labels": map[string]string{"alertname": "MiniShopHighErrorRate", "job": "minishop", "severity": "critical"},
		"annotations": map[string]string{
			"summary":     "MiniShop error ratio is 23.45% (job minishop)",
			"description": "23.45% of the requests to minishop failed (HTTP status >= 400) over the last minute; the threshold is 10% for 1m.",
			"runbook_url": "https://github.com/minishop-lab/minishop/blob/main/docs/runbooks.md#minishophigherrorrate",
		},
		"generatorURL": "http://prometheus:9090/graph",
		"startsAt":     startsAt.Format(time.RFC3339),
	}
	amPostAlert(t, amURL, alert)

	find := func(status string) func() error {
		return func() error {
			msgs, err := amMockMessages(mockURL)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if m.Status == status && strings.Contains(m.Title, "MiniShopHighErrorRate") {
					return nil
				}
			}
			return fmt.Errorf("no %s MiniShopHighErrorRate message in the mock yet (%d messages)", status, len(msgs))
		}
	}
	// group_wait is 5s.
	amPoll(t, "firing message in the Slack mock", 60*time.Second, procs, find("firing"))

	msgs, err := amMockMessages(mockURL)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.Title != "[FIRING:1] MiniShopHighErrorRate" || m.Channel != "#minishop-alerts" || m.Username != "Alertmanager" {
		t.Errorf("firing message: title %q channel %q username %q", m.Title, m.Channel, m.Username)
	}
	if len(m.Attachments) != 1 {
		t.Fatalf("firing message has %d attachments, want 1", len(m.Attachments))
	}
	a := m.Attachments[0]
	for _, want := range []string{"MiniShopHighErrorRate", "firing", "MiniShop error ratio is 23.45%", "docs/runbooks.md#minishophigherrorrate"} {
		if !strings.Contains(a.Text, want) {
			t.Errorf("firing text lacks %q:\n%s", want, a.Text)
		}
	}
	if a.Color != "danger" {
		t.Errorf("firing colour %q, want danger", a.Color)
	}
	if !strings.Contains(mock.out.String(), `"title":"[FIRING:1] MiniShopHighErrorRate"`) {
		t.Errorf("the mock did not log the message with its title:\n%s", mock.out.String())
	}

	// Prometheus resolves an alert by sending it again with endsAt in the past.
	alert["endsAt"] = time.Now().UTC().Format(time.RFC3339)
	amPostAlert(t, amURL, alert)
	// group_interval is 15s.
	amPoll(t, "resolved message in the Slack mock", 60*time.Second, procs, find("resolved"))
	msgs, err = amMockMessages(mockURL)
	if err != nil {
		t.Fatal(err)
	}
	if r := msgs[0]; r.Title != "[RESOLVED] MiniShopHighErrorRate" || len(r.Attachments) != 1 || r.Attachments[0].Color != "good" ||
		!strings.Contains(r.Attachments[0].Text, "MiniShopHighErrorRate* is resolved") {
		t.Errorf("resolved message: %+v", r)
	}
}
