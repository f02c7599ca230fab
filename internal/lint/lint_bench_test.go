package lint

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
)

// BenchmarkRealCorpus lints ../shared/corpus/real in-process (the bench/
// script measures the whole process, start to exit).
func BenchmarkRealCorpus(b *testing.B) {
	root, _ := filepath.Abs(filepath.Join("..", "..", "..", "shared", "corpus", "real"))
	if _, err := os.Stat(root); err != nil {
		b.Skip("corpus not present")
	}
	services := 0
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), Options{Paths: []string{root}, Policy: policy.Env{HostMemory: 8 << 30}})
		if err != nil {
			b.Fatal(err)
		}
		services = res.Services
	}
	b.ReportMetric(float64(services)*float64(b.N)/b.Elapsed().Seconds(), "services/s")
}

// BenchmarkGenerated lints a synthetic corpus (bench/gencorpus) named by
// HYHOME_BENCH_CORPUS.
func BenchmarkGenerated(b *testing.B) {
	root := os.Getenv("HYHOME_BENCH_CORPUS")
	if root == "" {
		b.Skip("HYHOME_BENCH_CORPUS not set")
	}
	services := 0
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), Options{Paths: []string{root}, Policy: policy.Env{HostMemory: 64 << 30}})
		if err != nil {
			b.Fatal(err)
		}
		services = res.Services
	}
	b.ReportMetric(float64(services)*float64(b.N)/b.Elapsed().Seconds(), "services/s")
}
