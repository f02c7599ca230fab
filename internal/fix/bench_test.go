package fix

import (
	"context"
	"testing"

	"github.com/hy-home/hyhome/internal/lint"
)

// BenchmarkLintCorpus and BenchmarkPlanCorpus measure, in process and in
// the same run, lint and fix's planning (every edit rendered and verified,
// nothing written) on the real corpus; bench/fix.sh measures whole
// processes, writes included.
func BenchmarkLintCorpus(b *testing.B) {
	opts := corpusOptions(corpusDir(b), false)
	for i := 0; i < b.N; i++ {
		if _, err := lint.Run(context.Background(), opts.Lint); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanCorpus(b *testing.B) {
	opts := corpusOptions(corpusDir(b), false)
	for i := 0; i < b.N; i++ {
		if _, err := Plan(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
