package labtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// repoRoot is the MiniShop checkout these tests check: the parent of labtest/.
const repoRoot = ".."

// toolsDir is where scripts/native-tools.sh installs the native lab's programs.
func toolsDir() string {
	if d := os.Getenv("MINISHOP_TOOLS_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "minishop-lab")
	}
	return filepath.Join(home, ".cache", "minishop-lab")
}

// toolPath returns the path of a program installed by scripts/native-tools.sh.
// A missing tool fails the test in CI (CI=true) and skips it elsewhere, saying how to install it.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(toolsDir(), "bin", name)
	if _, err := exec.LookPath(p); err == nil {
		return p
	}
	msg := name + " not installed in " + filepath.Dir(p) + "; run scripts/native-tools.sh (or ./task tools)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
