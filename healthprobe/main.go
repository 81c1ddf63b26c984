// Command healthprobe is the lab's container health check for images that ship no wget, curl or
// shell (the OpenTelemetry Collector contrib image is FROM scratch; Loki's and Jaeger's tools are
// not part of their documented interface). It is a static binary with no dependencies, so it runs
// in any Linux image:
//
//	healthprobe [-timeout 3s] URL       GET URL; exit 0 on a 2xx answer, 1 otherwise
//	healthprobe install DEST            copy this binary to DEST (mode 0755), atomically
//
// docker-compose.yml runs "install" once in a one-shot service to put the probe into a named
// volume, which the tool-less services mount read-only and call from their healthcheck. The
// minishop and slack-mock images carry it at /healthprobe.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Exit codes: Docker treats 0 as healthy and 1 as unhealthy; 2 means the probe was called wrongly.
const (
	exitHealthy   = 0
	exitUnhealthy = 1
	exitUsage     = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses args, does what they ask and returns the process exit code; messages go to stderr
// (Docker keeps the last ones in `docker inspect` under .State.Health.Log).
func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "install" {
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: healthprobe install DEST")
			return exitUsage
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "healthprobe: cannot find own executable:", err)
			return exitUnhealthy
		}
		if err := install(self, args[1]); err != nil {
			fmt.Fprintln(stderr, "healthprobe:", err)
			return exitUnhealthy
		}
		return exitHealthy
	}

	fs := flag.NewFlagSet("healthprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long (connect + answer)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: healthprobe [-timeout 3s] URL | healthprobe install DEST")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 || *timeout <= 0 {
		fs.Usage()
		return exitUsage
	}
	if err := probe(fs.Arg(0), *timeout); err != nil {
		fmt.Fprintln(stderr, "healthprobe:", err)
		var u usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		return exitUnhealthy
	}
	return exitHealthy
}

// usageError is a bad argument, as opposed to an unhealthy target.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// probe GETs rawURL and returns nil only for a 2xx answer within timeout.
func probe(rawURL string, timeout time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("%q is not an http(s) URL", rawURL)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return usageError{err.Error()}
	}
	req.Header.Set("User-Agent", "minishop-healthprobe")
	// Never through an HTTP proxy from the environment: a health check talks to its own container.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read a little of the body so the reason for a failure shows in `docker inspect`.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s: %s", u.Redacted(), resp.Status, body)
	}
	return nil
}

// install copies the file src to dest with mode 0755, through a temporary file in dest's
// directory and a rename, so a health check running at the same moment never sees half a binary.
func install(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".healthprobe-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
