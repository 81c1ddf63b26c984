package labtest

// Static checks of docker-compose.yml, .env.example, Dockerfile and .dockerignore: what the compose lab run
// (TestComposeLab: task up, every service healthy, the e2e suite through the host ports, scenarios, down/up)
// cannot show, because it runs with the defaults and on stand-in images:
//
//   - The compose file loads and validates with compose-go v2 (the library `docker compose` uses),
//     from the repo root with .env.example as the env file.
//   - Every published host port is ${VAR:-default}, listed in .env.example, and really moves when
//     VAR is set (the "port already allocated" complaint of similar labs).
//   - Restart policies, memory limits (sum <= 1.5 GiB) and exactly tagged images.
//   - Grafana's service (not run here: no stand-in) opens on the MiniShop dashboard.
//   - The Dockerfile's targets exist and its build commands compile the repo as the build context
//     sends it (honouring .dockerignore) into static binaries (the stand-ins are built without it).
//   - standins/compose.yaml changes only image, build and profiles.

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	shellwords "github.com/mattn/go-shellwords"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	yaml "go.yaml.in/yaml/v3"
)

const (
	composeFile = "docker-compose.yml"
	envExample  = ".env.example"
	dockerfile  = "Dockerfile"
)

// Published ports of the lab contract: host port variable -> service and container port (which is
// also the default host port).
var contractPorts = map[string]struct {
	service string
	port    uint32
}{
	"MINISHOP_PORT":        {"minishop", 8080},
	"OTLP_GRPC_PORT":       {"otel-collector", 4317},
	"OTLP_HTTP_PORT":       {"otel-collector", 4318},
	"PROMETHEUS_PORT":      {"prometheus", 9090},
	"ALERTMANAGER_PORT":    {"alertmanager", 9093},
	"LOKI_PORT":            {"loki", 3100},
	"JAEGER_UI_PORT":       {"jaeger", 16686},
	"GRAFANA_PORT":         {"grafana", 3000},
	"SLACK_MOCK_PORT":      {"slack-mock", 8070},
	"PAYMENT_GATEWAY_PORT": {"payment-gateway", 8081},
}

// The same versions run natively (contract: scripts/native-tools.sh) and in compose.
var contractImages = map[string]string{
	"otel-collector": "otel/opentelemetry-collector-contrib:0.161.0",
	"prometheus":     "prom/prometheus:v3.16.0",
	"alertmanager":   "prom/alertmanager:v0.35.0",
	"jaeger":         "jaegertracing/jaeger:2.13.0",
}

// Services that run once and exit, and why they have no healthcheck.
var oneShotServices = map[string]string{
	"healthprobe-init": "copies /probe/healthprobe into a volume and exits; adopted via service_completed_successfully",
}

const slackMockWebhook = "http://slack-mock:8070/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

func absRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// loadCompose loads docker-compose.yml like `docker compose` run from the repo root with
// .env.example as its .env; env entries ("VAR=value") act as variables set in the user's shell.
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	root := absRepoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, composeFile)},
		cli.WithWorkingDirectory(root),
		cli.WithName("minishop"),
		cli.WithEnv(env),
		cli.WithEnvFiles(filepath.Join(root, envExample)),
		cli.WithDotEnv,
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s does not load/validate: %v", composeFile, err)
	}
	return p
}

// rawCompose is docker-compose.yml before interpolation, to check how values are written.
type rawCompose struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Ports       []string       `yaml:"ports"`
		Environment map[string]any `yaml:"environment"`
	} `yaml:"services"`
}

func readRawCompose(t *testing.T) rawCompose {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	var rc rawCompose
	if err := yaml.Unmarshal(b, &rc); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return rc
}

// envExampleVars returns the variables .env.example sets (uncommented lines only).
func envExampleVars(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, envExample))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: line %q is not VAR=value", envExample, line)
			continue
		}
		out[k] = v
	}
	return out
}

func longRunning(name string) bool { _, oneShot := oneShotServices[name]; return !oneShot }

func TestComposeLoadsWithTheLabServices(t *testing.T) {
	p := loadCompose(t)
	// payment-gateway: the provider the shop charges over HTTP, so a payment is one trace over three services.
	want := []string{"minishop", "payment-gateway", "otel-collector", "prometheus", "alertmanager", "loki", "jaeger", "grafana", "slack-mock"}
	for _, s := range want {
		if _, ok := p.Services[s]; !ok {
			t.Errorf("service %q missing from %s", s, composeFile)
		}
	}
	for name := range p.Services {
		if _, oneShot := oneShotServices[name]; !slices.Contains(want, name) && !oneShot && name != "loadgen" {
			t.Errorf("unexpected service %q (add it to this test with the reason it is there)", name)
		}
	}
	// Each service has its one-line "why it is there" comment right above it.
	b, _ := os.ReadFile(filepath.Join(repoRoot, composeFile))
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		m := regexp.MustCompile(`^  ([a-z][a-z0-9-]*):\s*$`).FindStringSubmatch(l)
		if m == nil || i == 0 {
			continue
		}
		if _, isService := p.Services[m[1]]; isService && !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
			t.Errorf("service %q has no comment line above it saying why it is there", m[1])
		}
	}
}

// hostPathOf maps a container path to the host path a bind mount provides for it.
func hostPathOf(s types.ServiceConfig, containerPath string) (string, bool) {
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if containerPath == v.Target {
			return v.Source, true
		}
		if rest, ok := strings.CutPrefix(containerPath, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return filepath.Join(v.Source, filepath.FromSlash(rest)), true
		}
	}
	return "", false
}

func TestComposePublishedPortsAreOverridableFromEnv(t *testing.T) {
	envVars := envExampleVars(t)
	portRe := regexp.MustCompile(`^\$\{LAB_BIND_ADDRESS:-127\.0\.0\.1\}:\$\{([A-Z0-9_]+):-(\d+)\}:(\d+)$`)
	seen := map[string]bool{}
	for name, s := range readRawCompose(t).Services {
		for _, p := range s.Ports {
			m := portRe.FindStringSubmatch(p)
			if m == nil {
				t.Errorf(`%s: port %q is not "${LAB_BIND_ADDRESS:-127.0.0.1}:${VAR:-default}:port"`, name, p)
				continue
			}
			v, def, target := m[1], m[2], m[3]
			seen[v] = true
			c, ok := contractPorts[v]
			if !ok {
				t.Errorf("%s: host port variable %s is not one of the contract's", name, v)
				continue
			}
			if c.service != name || strconv.Itoa(int(c.port)) != target || def != target {
				t.Errorf("%s: %s maps %s:%s; contract says service %s port %d", name, v, def, target, c.service, c.port)
			}
			if got, ok := envVars[v]; !ok {
				t.Errorf("%s is not documented in %s", v, envExample)
			} else if got != def {
				t.Errorf("%s: %s=%s but the compose default is %s", envExample, v, got, def)
			}
		}
	}
	for v := range contractPorts {
		if !seen[v] {
			t.Errorf("contract host port %s is not published by any service", v)
		}
	}
	if envVars["LAB_BIND_ADDRESS"] != "127.0.0.1" {
		t.Errorf("%s: LAB_BIND_ADDRESS=%q, want 127.0.0.1 (the compose default)", envExample, envVars["LAB_BIND_ADDRESS"])
	}

	// Defaults: the contract ports on 127.0.0.1.
	published := func(p *types.Project) map[string]string {
		out := map[string]string{}
		for name, s := range p.Services {
			for _, pc := range s.Ports {
				out[fmt.Sprintf("%s/%d", name, pc.Target)] = pc.HostIP + ":" + pc.Published
			}
		}
		return out
	}
	def := published(loadCompose(t))
	for _, c := range contractPorts {
		key := fmt.Sprintf("%s/%d", c.service, c.port)
		if want := fmt.Sprintf("127.0.0.1:%d", c.port); def[key] != want {
			t.Errorf("%s published at %q by default, want %q", key, def[key], want)
		}
	}
	// A user's override moves exactly that port (set in the shell, as with a .env file).
	var env []string
	i := 0
	want := map[string]string{}
	for v, c := range contractPorts {
		hostPort := 20000 + i
		i++
		env = append(env, fmt.Sprintf("%s=%d", v, hostPort))
		want[fmt.Sprintf("%s/%d", c.service, c.port)] = fmt.Sprintf("0.0.0.0:%d", hostPort)
	}
	got := published(loadCompose(t, append(env, "LAB_BIND_ADDRESS=0.0.0.0")...))
	for k, w := range want {
		if got[k] != w {
			t.Errorf("with overrides, %s published at %q, want %q", k, got[k], w)
		}
	}
}

func TestComposeRestartPoliciesAndMemoryBudget(t *testing.T) {
	const budget = 3 << 29 // the whole lab fits in 1.5 GiB
	var total int64
	var table []string
	for name, s := range loadCompose(t).Services {
		if longRunning(name) && s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
			t.Errorf("%s: restart %q; want unless-stopped so the lab survives a crash and a Docker restart", name, s.Restart)
		}
		limit := int64(s.MemLimit)
		if s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.MemoryBytes > 0 {
			if limit > 0 && limit != int64(s.Deploy.Resources.Limits.MemoryBytes) {
				t.Errorf("%s: mem_limit and deploy.resources.limits.memory disagree", name)
			}
			limit = int64(s.Deploy.Resources.Limits.MemoryBytes)
		}
		if limit <= 0 {
			t.Errorf("%s: no memory limit", name)
			continue
		}
		total += limit
		table = append(table, fmt.Sprintf("%s=%dMiB", name, limit>>20))
		// A Go service's GOMEMLIMIT must stay below its container limit to be of any use.
		if gml, ok := s.Environment["GOMEMLIMIT"]; ok && gml != nil {
			m := regexp.MustCompile(`^(\d+)MiB$`).FindStringSubmatch(*gml)
			if m == nil {
				t.Errorf("%s: GOMEMLIMIT=%q, want NNMiB", name, *gml)
			} else if n, _ := strconv.ParseInt(m[1], 10, 64); n<<20 >= limit {
				t.Errorf("%s: GOMEMLIMIT=%s is not below the %dMiB memory limit", name, *gml, limit>>20)
			}
		}
	}
	slices.Sort(table)
	t.Logf("memory limits: %s; total %dMiB of %dMiB", strings.Join(table, " "), total>>20, budget>>20)
	if total > budget {
		t.Errorf("memory limits add up to %dMiB, over the lab's 1.5 GiB budget", total>>20)
	}
}

func TestComposeImagesArePinnedToExactTags(t *testing.T) {
	tagRe := regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+\.\d+$`)
	for name, s := range loadCompose(t).Services {
		if s.Image == "" {
			if s.Build == nil {
				t.Errorf("%s: neither image nor build", name)
			}
			continue
		}
		if s.Build != nil {
			continue
		}
		if !tagRe.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to an exact version tag (no latest, no floating major/minor)", name, s.Image)
		}
		if want, ok := contractImages[name]; ok && s.Image != want {
			t.Errorf("%s: image %s, but the native lab runs %s: keep the versions in step", name, s.Image, want)
		}
	}
	// The Grafana and Loki lines the lab is written for.
	p := loadCompose(t)
	if img := p.Services["grafana"].Image; !strings.HasPrefix(img, "grafana/grafana:12.") {
		t.Errorf("grafana image %s: dashboards and provisioning are written for Grafana 12", img)
	}
	if img := p.Services["loki"].Image; !strings.HasPrefix(img, "grafana/loki:3.") {
		t.Errorf("loki image %s: loki/loki.yaml is written for Loki 3", img)
	}
}

func TestComposeGrafanaOpensOnTheMiniShopDashboard(t *testing.T) {
	root := absRepoRoot(t)
	rc := readRawCompose(t)
	if got := fmt.Sprint(rc.Services["grafana"].Environment["GF_SECURITY_ADMIN_PASSWORD"]); got != "${GRAFANA_ADMIN_PASSWORD:-admin}" {
		t.Errorf("GF_SECURITY_ADMIN_PASSWORD is written %q, want ${GRAFANA_ADMIN_PASSWORD:-admin} (no committed secret)", got)
	}
	if _, set := envExampleVars(t)["GRAFANA_ADMIN_PASSWORD"]; set {
		t.Errorf("%s sets GRAFANA_ADMIN_PASSWORD: leave it commented out, a committed value is a committed secret", envExample)
	}
	g := loadCompose(t).Services["grafana"]
	env := func(k string) string {
		if v := g.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if env("GF_SECURITY_ADMIN_PASSWORD") != "admin" {
		t.Errorf("default admin password = %q, want admin", env("GF_SECURITY_ADMIN_PASSWORD"))
	}
	if v := loadCompose(t, "GRAFANA_ADMIN_PASSWORD=s3cret").Services["grafana"].Environment["GF_SECURITY_ADMIN_PASSWORD"]; v == nil || *v != "s3cret" {
		t.Errorf("GRAFANA_ADMIN_PASSWORD=s3cret gives GF_SECURITY_ADMIN_PASSWORD=%v", v)
	}
	// (The anonymous role itself is checked by TestGrafanaAnonymousVisitorsCanUseExplore.)
	if env("GF_AUTH_ANONYMOUS_ENABLED") != "true" {
		t.Errorf("anonymous access: enabled=%q, want true", env("GF_AUTH_ANONYMOUS_ENABLED"))
	}

	// The provisioning directory and the dashboards are mounted where Grafana and the provider look.
	if host, ok := hostPathOf(g, "/etc/grafana/provisioning/datasources/datasources.yaml"); !ok || host != filepath.Join(root, DatasourcesFile) {
		t.Errorf("grafana does not see %s at /etc/grafana/provisioning/datasources/ (got %q)", DatasourcesFile, host)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err := os.ReadFile(filepath.Join(root, "grafana/provisioning/dashboards/dashboards.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &provider); err != nil || len(provider.Providers) == 0 {
		t.Fatalf("dashboards.yaml: %v (%d providers)", err, len(provider.Providers))
	}
	for _, pr := range provider.Providers {
		if host, ok := hostPathOf(g, pr.Options.Path); !ok || host != filepath.Join(root, DashboardsDir) {
			t.Errorf("dashboard provider reads %s, which is not ./%s mounted in grafana (got %q)", pr.Options.Path, DashboardsDir, host)
		}
	}
	home := env("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	host, ok := hostPathOf(g, home)
	if !ok {
		t.Fatalf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=%q is not a mounted file", home)
	}
	rel, _ := filepath.Rel(root, host)
	d, ok := loadDashboardsT(t)[filepath.ToSlash(rel)]
	if !ok || d.UID != "minishop" {
		t.Errorf("home dashboard %s (%s) is not the minishop dashboard", home, rel)
	}
}

// --- Dockerfile ------------------------------------------------------------------------------

var fromRe = regexp.MustCompile(`(?im)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$`)

// dockerfileTargets returns each stage name of the Dockerfile with the text of its stage.
func dockerfileTargets(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	locs := fromRe.FindAllStringSubmatchIndex(s, -1)
	out := map[string]string{}
	for i, l := range locs {
		end := len(s)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if l[4] >= 0 {
			out[s[l[4]:l[5]]] = s[l[0]:end]
		}
	}
	return out
}

func TestDockerfileTargets(t *testing.T) {
	targets := dockerfileTargets(t)
	for name, s := range loadCompose(t).Services {
		if s.Build == nil {
			continue
		}
		if s.Build.Dockerfile != "" && s.Build.Dockerfile != dockerfile {
			t.Errorf("%s builds from %s; this test checks %s", name, s.Build.Dockerfile, dockerfile)
		}
		if _, ok := targets[s.Build.Target]; !ok {
			t.Errorf("%s builds Dockerfile target %q, which does not exist", name, s.Build.Target)
		}
	}
	for _, name := range []string{"minishop", "slack-mock", "healthprobe"} {
		stage, ok := targets[name]
		if !ok {
			t.Errorf("Dockerfile has no target %q", name)
			continue
		}
		base := fromRe.FindStringSubmatch(stage)[1]
		if base != "scratch" && !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:(nonroot|latest)$`).MatchString(base) {
			t.Errorf("target %s is FROM %s; want scratch or distroless static", name, base)
		}
		if !regexp.MustCompile(`(?m)^USER\s+65532(:65532)?\s*$`).MatchString(stage) {
			t.Errorf("target %s does not run as USER 65532 (nonroot)", name)
		}
	}
}

func TestDockerfileGoImageMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FROM golang:(\d+)\.(\d+)\.(\d+)(-\S+)?\s`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("Dockerfile has no FROM golang:X.Y.Z (exact version) stage")
	}
	image := [3]int{atoi(m[1]), atoi(m[2]), atoi(m[3])}
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The image's toolchain must satisfy go.mod's go (and toolchain) line, or `go build` wants to
	// download another toolchain, which GOTOOLCHAIN=local in the Dockerfile turns into an error.
	for _, re := range []string{`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`, `(?m)^toolchain go(\d+)\.(\d+)(?:\.(\d+))?\s*$`} {
		r := regexp.MustCompile(re).FindStringSubmatch(string(gomod))
		if r == nil {
			continue
		}
		need := [3]int{atoi(r[1]), atoi(r[2]), atoi(r[3])}
		if slices.Compare(image[:], need[:]) < 0 {
			t.Errorf("golang image %d.%d.%d is older than go.mod's %s", image[0], image[1], image[2], strings.TrimSpace(r[0]))
		}
	}
	if image[0] != 1 || image[1] != 26 {
		t.Errorf("golang image %d.%d: the lab is on Go 1.26", image[0], image[1])
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local", "go mod download"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// buildContext copies the repo into dir the way `docker build .` sends it: minus .dockerignore.
func buildContext(t *testing.T, dir string) *patternmatcher.PatternMatcher {
	t.Helper()
	root := absRepoRoot(t)
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if excluded {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, dst)
	})
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// The Dockerfile's `go build` commands, run on the build context Docker would send, produce static
// binaries. (Docker is not available here: the commands run with the local Go toolchain, which the
// test requires to be the same minor version as the image's.)
func TestDockerBuildContextCompilesStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the lab's programs; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH")
	}
	df, err := os.ReadFile(filepath.Join(repoRoot, dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	pm := buildContext(t, ctxDir)

	// Every file the Dockerfile COPYs from the context is there.
	for _, m := range regexp.MustCompile(`(?m)^COPY\s+(?:--chown=\S+\s+)?([^-\s][^\n]*?)\s+\S+\s*$`).FindAllStringSubmatch(string(df), -1) {
		for _, src := range strings.Fields(m[1]) {
			if src == "." {
				continue
			}
			if ex, _ := pm.MatchesOrParentMatches(src); ex {
				t.Errorf("Dockerfile COPYs %s, which .dockerignore excludes", src)
			} else if _, err := os.Stat(filepath.Join(ctxDir, src)); err != nil {
				t.Errorf("Dockerfile COPYs %s, which is not in the repo", src)
			}
		}
	}

	builds := regexp.MustCompile(`(?m)^RUN go build (.*) -o /out/(\S+) (\S+)\s*$`).FindAllStringSubmatch(string(df), -1)
	if len(builds) < 3 {
		t.Fatalf("found %d `RUN go build ... -o /out/NAME PKG` lines in the Dockerfile, want 3", len(builds))
	}
	outDir := t.TempDir()
	for _, b := range builds {
		flags, err := shellwords.Parse(b[1])
		if err != nil {
			t.Fatalf("Dockerfile build flags %q: %v", b[1], err)
		}
		if !slices.Contains(flags, "-trimpath") || !slices.Contains(flags, "-ldflags=-s -w") {
			t.Errorf("go build for %s lacks -trimpath or -ldflags=\"-s -w\": %v", b[2], flags)
		}
		out := filepath.Join(outDir, b[2])
		args := append(append([]string{"build"}, flags...), "-o", out, b[3])
		cmd := exec.Command(goBin, args...)
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=readonly")
		if outp, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s (as in the Dockerfile, on the docker build context): %v\n%s", strings.Join(args, " "), err, outp)
			continue
		}
		ef, err := elf.Open(out)
		if err != nil {
			t.Errorf("%s: %v", b[2], err)
			continue
		}
		for _, prog := range ef.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: it cannot run on distroless/static or scratch", b[2])
			}
		}
		if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", b[2], libs)
		}
		ef.Close()
	}
}

// standins/compose.yaml (the override that runs the lab on stand-in images where nothing can be pulled)
// may change only image, build and profiles of services: anything else it fixed would stay broken for
// users, who run docker-compose.yml alone.
func TestStandinOverrideChangesOnlyImagesBuildsAndProfiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "standins", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]map[string]map[string]yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for key := range doc {
		if key != "services" {
			t.Errorf("standins/compose.yaml sets top-level %q; only services' image, build and profiles may change", key)
		}
	}
	services := readRawCompose(t).Services
	for name, svc := range doc["services"] {
		if _, ok := services[name]; !ok {
			t.Errorf("standins/compose.yaml names service %q, which docker-compose.yml does not have", name)
		}
		for key := range svc {
			if key != "image" && key != "build" && key != "profiles" {
				t.Errorf("standins/compose.yaml changes %s.%s; only image, build and profiles may change", name, key)
			}
		}
	}
	if len(doc["services"]) == 0 {
		t.Error("standins/compose.yaml changes no service")
	}
}
