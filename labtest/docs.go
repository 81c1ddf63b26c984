package labtest

import (
	"os"
	"path/filepath"
	"strings"
)

// DocQuery is a query a reader is told to run: each non-blank line of a fenced
// ```promql (or ```logql) block in the docs is one query; lines starting with # are comments.
type DocQuery struct {
	File string // relative to the repo root
	Line int    // where the block starts
	Expr string
}

// DocsPromQL returns every query in the ```promql blocks of README.md and docs/*.md, so the tests
// can parse and run what the exercises tell people to type.
func DocsPromQL(root string) ([]DocQuery, error) { return DocsQueries(root, "promql") }

// DocsQueries returns every query in the ```LANG blocks of README.md and docs/*.md.
func DocsQueries(root, lang string) ([]DocQuery, error) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var out []DocQuery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, f)
		in := false
		for i, line := range strings.Split(string(b), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case !in && trimmed == "```"+lang:
				in = true
			case in && trimmed == "```":
				in = false
			case in && trimmed != "" && !strings.HasPrefix(trimmed, "#"):
				out = append(out, DocQuery{File: rel, Line: i + 1, Expr: trimmed})
			}
		}
	}
	return out, nil
}
