package labtest

// The compose lab, run as a user runs it: `task up` (docker compose up -d --build --wait), then the same
// end-to-end steps as the native lab through the published host ports, then what a user does next:
// a scenario until the Slack mock shows the alert and back, a Collector recipe applied with
// `task collector:reload`, `task down` + `task up` (Prometheus keeps its series in its volume) and
// `task down -- -v`. No container may be OOM-killed or restarted on the way.
//
// It uses the real Taskfile and docker-compose.yml. On machines without a registry, COMPOSE_FILE adds
// standins/compose.yaml (stand-in images built by scripts/standins.sh; .ci/run sets it up). It runs in
// CI (CI=true: Docker missing is a failure) or when MINISHOP_E2E_COMPOSE=1; elsewhere it skips, because it
// takes over the compose project "minishop" (a running lab of yours would be stopped and its volumes
// deleted).
//
//	MINISHOP_E2E_COMPOSE=1 go test -run TestComposeLab -v -count=1 -timeout 40m .

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"minishop/labtest/nativelab"
)

// e2eCompose runs docker compose and task in the repo root, for the compose lab.
type e2eCompose struct {
	root string
	logf func(format string, args ...any)
}

// run runs a command in the repo root and returns its combined output.
func (c *e2eCompose) run(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	c.logf("$ %s  (%s, exit %v)", strings.Join(argv, " "), time.Since(start).Round(100*time.Millisecond), err)
	if err != nil {
		return out.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out.String())
	}
	return out.String(), nil
}

// must runs a command with a deadline, failing the test if it fails.
func (c *e2eCompose) must(t testing.TB, timeout time.Duration, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := c.run(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// containers returns the ids of the project's containers (all of them, running or not).
func (c *e2eCompose) containers(t testing.TB) []string {
	return strings.Fields(c.must(t, time.Minute, "docker", "compose", "ps", "-a", "-q"))
}

// e2eContainerState is the part of `docker inspect` the test reads.
type e2eContainerState struct {
	Name         string
	RestartCount int
	State        struct {
		Status    string
		OOMKilled bool
		ExitCode  int
		StartedAt time.Time
	}
	Config struct {
		Labels map[string]string
	}
}

func (c *e2eCompose) inspect(t testing.TB, ids ...string) []e2eContainerState {
	t.Helper()
	if len(ids) == 0 {
		return nil
	}
	var st []e2eContainerState
	if err := json.Unmarshal([]byte(c.must(t, time.Minute, append([]string{"docker", "inspect"}, ids...)...)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// startedAt is when the service's container last started.
func (c *e2eCompose) startedAt(t testing.TB, service string) time.Time {
	ids := strings.Fields(c.must(t, time.Minute, "docker", "compose", "ps", "-q", service))
	if len(ids) != 1 {
		t.Fatalf("service %s has containers %v, want one", service, ids)
	}
	return c.inspect(t, ids[0])[0].State.StartedAt
}

// e2eComposeAvailable fails in CI and skips elsewhere when this machine cannot run the compose lab.
func e2eComposeAvailable(t *testing.T) {
	t.Helper()
	if os.Getenv("CI") != "true" && os.Getenv("MINISHOP_E2E_COMPOSE") == "" {
		t.Skip("the compose lab test takes over compose project \"minishop\" (task up ... task down -- -v): " +
			"set MINISHOP_E2E_COMPOSE=1 to run it (CI runs it)")
	}
	out, err := exec.Command("docker", "compose", "version").CombinedOutput()
	if err == nil {
		out, err = exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	}
	if err != nil {
		t.Fatalf("docker compose is not usable here (scripts/native-tools.sh compose installs the plugin): %v\n%s", err, out)
	}
}

func TestComposeLab(t *testing.T) {
	e2eComposeAvailable(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	c := &e2eCompose{root: root, logf: func(format string, args ...any) {
		t.Logf("[compose %5.1fs] %s", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}}
	ports, err := nativelab.PortsFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	url := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	lab := &e2eLab{Name: "compose", ShopURL: url(ports.Shop), PrometheusURL: url(ports.Prometheus), JaegerURL: url(ports.JaegerUI),
		LokiURL: url(ports.Loki), SlackMockURL: url(ports.SlackMock), AlertmanagerURL: url(ports.Alertmanager),
		GatewayURL: url(ports.Gateway), CollectorOTLP: fmt.Sprintf("127.0.0.1:%d", ports.CollectorGRPC),
		metricInterval: 5 * time.Second, compose: c}
	t.Logf("COMPOSE_FILE=%q", os.Getenv("COMPOSE_FILE"))

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := c.run(ctx, "docker", "compose", "logs", "--no-color", "--tail", "30")
			t.Logf("--- docker compose logs --tail 30:\n%s", out)
		}
		if _, err := c.run(ctx, "docker", "compose", "down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})

	// 1. task up, as the README says: returns once every service is healthy.
	start := time.Now()
	c.must(t, 15*time.Minute, "./task", "up")
	t.Logf("task up: every service healthy after %s", time.Since(start).Round(100*time.Millisecond))
	all := strings.Fields(c.must(t, time.Minute, "docker", "compose", "config", "--services"))
	running := strings.Fields(c.must(t, time.Minute, "docker", "compose", "ps", "--services", "--status", "running"))
	var notRunning []string
	for _, s := range all {
		if !slices.Contains(running, s) && s != "healthprobe-init" {
			notRunning = append(notRunning, s)
		}
	}
	if len(notRunning) > 0 {
		t.Fatalf("services not running after task up: %v (running: %v)", notRunning, running)
	}
	if !slices.Contains(all, "grafana") {
		t.Logf("NOT RUN: grafana (no stand-in image can be built here: standins/compose.yaml puts it in profile \"grafana\"); running: %v", running)
	}

	// 2. The end-to-end steps, through the published ports. The bundled load generator pauses meanwhile:
	// the steps compare exact counts with what their own client saw.
	c.must(t, 2*time.Minute, "docker", "compose", "stop", "loadgen")
	t.Run("E2E", func(t *testing.T) { e2eRun(t, lab) })
	c.must(t, 2*time.Minute, "docker", "compose", "start", "loadgen")
	if t.Failed() {
		return
	}

	t.Run("Scenario", func(t *testing.T) { e2eComposeScenario(t, c, lab) })
	t.Run("CollectorRecipe", func(t *testing.T) { e2eComposeRecipe(t, c, lab) })

	// 3. Nothing was OOM-killed or restarted (the memory limits hold for all of the above).
	for _, s := range c.inspect(t, c.containers(t)...) {
		if s.State.OOMKilled || s.RestartCount > 0 {
			t.Errorf("container %s: OOMKilled %v, restarted %d times", s.Name, s.State.OOMKilled, s.RestartCount)
		}
	}

	// 4. task down keeps the volumes: after task up, Prometheus still has the series written before.
	var before []e2ePromSample
	e2ePoll(t, "request_total in Prometheus before task down", time.Minute, func() error {
		_, ss, err := e2ePromQuery(lab.PrometheusURL, `sum(request_total{job="minishop"})`)
		if err == nil && len(ss) == 0 {
			err = fmt.Errorf("no request_total yet")
		}
		before = ss
		return err
	})
	downAt := time.Now()
	c.must(t, 5*time.Minute, "./task", "down")
	if ids := c.containers(t); len(ids) > 0 {
		t.Errorf("containers left after task down: %v", ids)
	}
	c.must(t, 15*time.Minute, "./task", "up")
	q := fmt.Sprintf(`sum(request_total{job="minishop"} @ %d)`, downAt.Add(-5*time.Second).Unix())
	_, after, err := e2ePromQuery(lab.PrometheusURL, q)
	if err != nil || len(after) == 0 || after[0].Value <= 0 {
		t.Errorf("after task down and task up, %s = %v (%v); before the down the total was %v: Prometheus' volume lost its series", q, after, err, before)
	} else {
		t.Logf("after task down + task up Prometheus still answers %s = %v", q, after[0].Value)
	}

	// 5. task down -- -v removes the containers and the lab's volumes.
	c.must(t, 5*time.Minute, "./task", "down", "--", "-v")
	vols := c.must(t, time.Minute, "docker", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project=minishop")
	if ids := c.containers(t); len(ids) > 0 || strings.TrimSpace(vols) != "" {
		t.Errorf("after task down -- -v: containers %v, volumes %q", ids, vols)
	}
}

// e2eComposeScenario: `task scenario:payment-outage` with the bundled load generator at its default rate
// and the real alert rule: the Slack mock shows [FIRING:1] MiniShopHighErrorRate; `task scenario:reset`
// brings the [RESOLVED] message. Both times are measured.
func e2eComposeScenario(t *testing.T, c *e2eCompose, lab *e2eLab) {
	const alert = "MiniShopHighErrorRate"
	// A quiet start, so the time measured is the scenario's: the alert neither pending nor firing in
	// Prometheus, and not active in Alertmanager (the e2e steps' own error bursts may have set it off).
	e2ePoll(t, alert+" quiet before the scenario", 10*time.Minute, func() error {
		_, res, err := e2ePromQuery(lab.PrometheusURL, `ALERTS{alertname="`+alert+`"}`)
		if err == nil && len(res) > 0 {
			err = fmt.Errorf("%s is %s in Prometheus", alert, res[0].Labels["alertstate"])
		}
		var active []any
		if err == nil {
			err = getJSON(lab.AlertmanagerURL+"/api/v2/alerts?active=true&filter=alertname%3D"+alert, &active)
		}
		if err == nil && len(active) > 0 {
			err = fmt.Errorf("%s still active in Alertmanager", alert)
		}
		return err
	})
	var lastID int64
	if msgs, err := e2eSlackMessages(lab.SlackMockURL); err == nil && len(msgs) > 0 {
		lastID = msgs[0].ID
	}
	start := time.Now()
	c.must(t, 2*time.Minute, "./task", "scenario:payment-outage")
	var firing e2eSlackMessage
	e2ePoll(t, "[FIRING:1] "+alert+" in the Slack mock", 8*time.Minute, func() error {
		var err error
		firing, err = e2eSlackFind(lab, alert, "firing", lastID)
		if err == nil && !strings.Contains(firing.Title, "[FIRING:1] "+alert) {
			err = fmt.Errorf("title %q", firing.Title)
		}
		return err
	})
	t.Logf("SCENARIO payment-outage: %q in the Slack mock %s after the command", firing.Title, time.Since(start).Round(time.Second))
	start = time.Now()
	c.must(t, 2*time.Minute, "./task", "scenario:reset")
	e2ePoll(t, "[RESOLVED] "+alert+" in the Slack mock", 10*time.Minute, func() error {
		_, err := e2eSlackFind(lab, alert, "resolved", firing.ID)
		return err
	})
	t.Logf("SCENARIO reset: [RESOLVED] %s in the Slack mock %s after the command", alert, time.Since(start).Round(time.Second))
}

// e2eComposeRecipe: a user enables a Collector recipe (COLLECTOR_RECIPE=add-environment) and runs
// `task collector:reload`; the recipe's effect shows in Prometheus (deployment_environment_name on the
// shop's series). Reloading without it goes back to the plain config.
func e2eComposeRecipe(t *testing.T, c *e2eCompose, lab *e2eLab) {
	start := time.Now()
	c.must(t, 10*time.Minute, "env", "COLLECTOR_RECIPE=add-environment", "./task", "collector:reload")
	e2ePoll(t, "request_total with deployment_environment_name after the recipe", 90*time.Second, func() error {
		_, ss, err := e2ePromQuery(lab.PrometheusURL, `count(request_total{job="minishop", deployment_environment_name!=""} > 0)`)
		if err == nil && len(ss) == 0 {
			err = fmt.Errorf("no series with deployment_environment_name yet")
		}
		return err
	})
	t.Logf("recipe add-environment applied by task collector:reload: visible in Prometheus %s after the command", time.Since(start).Round(time.Second))
	c.must(t, 10*time.Minute, "env", "COLLECTOR_RECIPE=", "./task", "collector:reload")
}
