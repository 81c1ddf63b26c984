package labtest

// Helpers shared by the tests of this package: one for each job (a free port, waiting for a condition
// with a deadline, a GET that must answer 200, a GET of JSON, a buffer for a process's output, one of
// the repo's programs built).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildRepoProgram builds one of this repo's programs (a package path such as ./slackmock) into the
// test's temp dir and returns the binary's path.
func buildRepoProgram(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// freeAddr returns 127.0.0.1:port with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// poll calls check every interval until it returns nil (poll returns nil) or until timeout has passed
// (poll returns check's last error). It is the one deadline loop of these tests: callers that must fail
// early, say when a process they wait for exits, do so from check.
func poll(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval) // polling interval, not synchronisation
	}
}

var labHTTP = &http.Client{Timeout: 3 * time.Second}

// httpGetOK GETs url and returns the body if the status is 200.
func httpGetOK(url string) ([]byte, error) {
	resp, err := labHTTP.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// wantHTTPOK GETs url and returns an error unless the status is 200 (a readiness or health check).
func wantHTTPOK(url string) error {
	_, err := httpGetOK(url)
	return err
}

// getJSON GETs url and decodes its JSON body into v; an error unless the status is 200.
func getJSON(url string, v any) error {
	resp, err := e2eHTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// syncBuffer collects a process's output while tests read it.
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
