package labtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"minishop/labtest/nativelab"
)

// e2eAlertFor is the `for:` of the TEST copy of the rules this test's Prometheus loads (rendered by
// nativelab from prometheus/rules/*.yml with only `for:` changed; the real file says 1m, and its
// expression, job:error_ratio:rate1m > 0.10, is used unchanged). It keeps the test under two minutes.
const e2eAlertFor = 10 * time.Second

// 6. Alerting end to end, on a lab of its own (it needs the error rate to itself): every payment fails ->
// MiniShopHighErrorRate fires in Prometheus -> Alertmanager -> a Slack-format message in the Slack mock
// naming the alert; payments succeed again -> a resolved message.
func TestE2EAlerting(t *testing.T) {
	lab := e2eStartLab(t, func(o *nativelab.Options) { o.AlertFor = e2eAlertFor })
	ctx := context.Background()
	const alert = "MiniShopHighErrorRate"

	b, err := os.ReadFile(filepath.Join(lab.native.RulesDir, "minishop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := string(b)
	if !strings.Contains(rules, "for: 10s") || !strings.Contains(rules, "expr: job:error_ratio:rate1m > 0.10") {
		t.Fatalf("the test rules copy should have `for: 10s` and the real alert expression:\n%s", rules)
	}

	// Bad phase: every payment fails (half the requests: one order, one payment per flow).
	lab.fault(t, "-payment-failure-rate", "1") // the payment gateway holds the payment settings
	t0 := time.Now()
	bad := newE2ETally()
	var firing e2eSlackMessage
	e2eTrafficUntil(t, lab, bad, 10, 120*time.Second, "a FIRING Slack message for "+alert, func() error {
		_, res, err := e2ePromQuery(lab.PrometheusURL, `ALERTS{alertname="`+alert+`",alertstate="firing"}`)
		if err != nil {
			return err
		}
		if len(res) == 0 {
			_, ratio, _ := e2ePromQuery(lab.PrometheusURL, `job:error_ratio:rate1m`)
			return fmt.Errorf("not firing in Prometheus yet (job:error_ratio:rate1m = %v)", ratio)
		}
		firing, err = e2eSlackFind(lab, alert, "firing", 0)
		return err
	})
	t.Logf("bad phase: %d requests, statuses %v; alert firing in Prometheus and in the Slack mock after %s",
		bad.total(), bad.statusMix(), time.Since(t0).Round(100*time.Millisecond))
	if !strings.Contains(firing.Title, "[FIRING") || !strings.Contains(firing.Attachments[0].Text, "Runbook: ") ||
		firing.Attachments[0].Color != "danger" || firing.Channel != "#minishop-alerts" {
		t.Errorf("firing message is not the configured Slack format: %+v", firing)
	}

	// Good phase: no payment fails; enough good traffic to bring the 1m error ratio under 10%.
	if err := lab.native.RestartShop(ctx, "MINISHOP_RESTOCK_INTERVAL=100ms"); err != nil {
		t.Fatal(err)
	}
	lab.fault(t, "-payment-failure-rate", "0")
	t1 := time.Now()
	good := newE2ETally()
	var resolved e2eSlackMessage
	e2eTrafficUntil(t, lab, good, 60, 180*time.Second, "a RESOLVED Slack message for "+alert, func() error {
		var err error
		resolved, err = e2eSlackFind(lab, alert, "resolved", firing.ID)
		return err
	})
	t.Logf("good phase: %d requests, statuses %v; resolved message after %s", good.total(), good.statusMix(), time.Since(t1).Round(100*time.Millisecond))
	if !strings.Contains(resolved.Title, "[RESOLVED]") || resolved.Attachments[0].Color != "good" {
		t.Errorf("resolved message is not the configured Slack format: %+v", resolved)
	}
	t.Logf("Slack mock got #%d %q and then #%d %q", firing.ID, firing.Title, resolved.ID, resolved.Title)
	if msgs, err := e2eSlackMessages(lab.SlackMockURL); err == nil {
		for _, m := range msgs {
			if !strings.Contains(m.Title, alert) {
				t.Logf("also posted (another alert of the rules): #%d %q", m.ID, m.Title)
			}
		}
	}
	for _, r := range good.All {
		if r.Status >= 400 {
			t.Errorf("good phase had a failure: %s %s -> %d %s", r.Method, r.Path, r.Status, r.Reason)
			break
		}
	}
}

// e2eTrafficUntil sends flows (an order and its payment) at rate per second until done() succeeds.
func e2eTrafficUntil(t *testing.T, lab *e2eLab, tally *e2eTally, rate float64, timeout time.Duration, what string, done func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		e2eLoad(ctx, rate, timeout, int(rate*timeout.Seconds()), 16, func(i int) []e2eResp {
			return e2eFlow(lab.ShopURL, i)
		}, tally)
	}()
	err := e2ePollErr(what, timeout, done)
	cancel()
	<-finished
	if err != nil {
		msgs, _ := e2eSlackMessages(lab.SlackMockURL)
		t.Fatalf("%v\nSlack mock messages: %+v", err, msgs)
	}
	if len(tally.Transport) > 0 {
		t.Errorf("%d requests without answer, e.g. %v", len(tally.Transport), tally.Transport[0])
	}
}

// e2eSlackFind returns the newest Slack mock message about the alert with the status and an id above
// afterID. (Other alerts of the rules, e.g. error-budget burn rates, may post their own messages too.)
func e2eSlackFind(lab *e2eLab, alert, status string, afterID int64) (e2eSlackMessage, error) {
	msgs, err := e2eSlackMessages(lab.SlackMockURL)
	if err != nil {
		return e2eSlackMessage{}, err
	}
	var seen []string
	for _, m := range msgs { // newest first
		if m.ID <= afterID {
			break
		}
		seen = append(seen, fmt.Sprintf("#%d %q (%s)", m.ID, m.Title, m.Status))
		if m.Status == status && strings.Contains(m.Title, alert) && len(m.Attachments) > 0 &&
			strings.Contains(m.Attachments[0].Text, alert) {
			return m, nil
		}
	}
	return e2eSlackMessage{}, fmt.Errorf("no %s message for %s yet; new messages: %v", status, alert, seen)
}
