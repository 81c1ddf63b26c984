package labtest

import (
	"testing"
)

// Every PromQL query the docs tell a reader to type parses (the end-to-end tests also run them).
func TestDocsPromQLParses(t *testing.T) {
	qs, err := DocsPromQL(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 5 {
		t.Fatalf("found %d promql blocks in the docs, expected the exercises' queries", len(qs))
	}
	for _, q := range qs {
		if _, err := promQLParser.ParseExpr(q.Expr); err != nil {
			t.Errorf("%s:%d: %v\n%s", q.File, q.Line, err, q.Expr)
		}
	}
}
