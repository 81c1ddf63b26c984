package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What Docker sees: the exit code of `healthprobe URL` against a container's health endpoint.
func TestExitCodeFollowsTheAnswer(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/starting", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Ingester not ready: waiting for 15s after being ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/starting", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/ok", exitHealthy},
		{"/created", exitHealthy},
		{"/starting", exitUnhealthy},
		{"/moved", exitUnhealthy}, // followed to a 503
		{"/missing", exitUnhealthy},
	} {
		var stderr bytes.Buffer
		if got := run([]string{srv.URL + tc.path}, &stderr); got != tc.want {
			t.Errorf("healthprobe %s = exit %d, want %d (stderr %q)", tc.path, got, tc.want, stderr.String())
		}
	}

	// The reason for an unhealthy answer is printed, so `docker inspect` explains the failure.
	var stderr bytes.Buffer
	run([]string{srv.URL + "/starting"}, &stderr)
	if !strings.Contains(stderr.String(), "503") || !strings.Contains(stderr.String(), "Ingester not ready") {
		t.Errorf("stderr does not explain the failure: %q", stderr.String())
	}
}

func TestUnreachableTargetIsUnhealthy(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var stderr bytes.Buffer
	if got := run([]string{"http://" + addr + "/"}, &stderr); got != exitUnhealthy {
		t.Errorf("refused connection: exit %d, want %d", got, exitUnhealthy)
	}
}

func TestHangingTargetTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	start := time.Now()
	var stderr bytes.Buffer
	got := run([]string{"-timeout", "200ms", srv.URL}, &stderr)
	if got != exitUnhealthy {
		t.Errorf("hanging target: exit %d, want %d", got, exitUnhealthy)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("probe took %v despite a 200ms timeout", elapsed)
	}
}

func TestBadArgumentsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"http://a", "http://b"},
		{"localhost:3100/ready"}, // no scheme: a typo in a healthcheck, not an unhealthy service
		{"ftp://localhost/"},
		{"-timeout", "0s", "http://127.0.0.1:1/"},
		{"install"},
	} {
		var stderr bytes.Buffer
		if got := run(args, &stderr); got != exitUsage {
			t.Errorf("healthprobe %q = exit %d, want %d", args, got, exitUsage)
		}
	}
}

func TestInstallCopiesAnExecutable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	content := []byte("\x7fELF pretend binary")
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "probe", "healthprobe")
	if err := os.Mkdir(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	// Twice: a second `docker compose up` replaces the probe from a rebuilt image.
	for i := 0; i < 2; i++ {
		if err := install(src, dest); err != nil {
			t.Fatalf("install #%d: %v", i+1, err)
		}
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("installed content = %q, want %q", got, content)
	}
	st, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("installed mode = %v, want 0755 (other users' containers must execute it)", st.Mode().Perm())
	}
	// No temporary files left next to it.
	entries, _ := os.ReadDir(filepath.Dir(dest))
	if len(entries) != 1 {
		t.Errorf("probe dir holds %d entries, want only the probe", len(entries))
	}
	if err := install(src, filepath.Join(dir, "no-such-dir", "healthprobe")); err == nil {
		t.Error("install into a missing directory succeeded")
	}
}

// The real thing: `healthprobe install DEST` copies the running binary.
func TestInstallSubcommandCopiesItself(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "healthprobe")
	var stderr bytes.Buffer
	if got := run([]string{"install", dest}, &stderr); got != exitHealthy {
		t.Fatalf("install: exit %d, stderr %q", got, stderr.String())
	}
	self, _ := os.Executable()
	want, _ := os.ReadFile(self)
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("installed file differs from the running executable (err %v)", err)
	}
}
