package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
)

// FuzzLoadAndEvaluate feeds arbitrary bytes through the whole lint path:
// our YAML pass, compose-go (validation, interpolation, canonical forms) and
// every rule. Whatever the input, the result is a project or an error, never
// a panic. Crashers it finds stay in testdata/fuzz/FuzzLoadAndEvaluate.
func FuzzLoadAndEvaluate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	more, _ := filepath.Glob("../policy/testdata/*/*.yaml")
	for _, s := range append(seeds, more...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("services:\n  a:\n    image: x\n    <<: *nope\n"))
	f.Add([]byte("x-a: &a\n  <<: *a\nservices: {}\n"))
	f.Add([]byte("services:\n  a:\n    network_mode: service:a\n    pid: service:a\n"))
	f.Add([]byte("services:\n  a:\n    image: x\n    volumes: [\"::\"]\n    ports: [\"-1:99999\"]\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "compose.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		yf, err := parseFile(path, data)
		if err != nil {
			return
		}
		cache := newFileCache()
		e := &cacheEntry{f: yf}
		e.once.Do(func() {})
		cache.files[path] = e
		res, err := Load(context.Background(), Options{Files: []string{path}, WorkDir: dir, cache: cache})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		res.Project.HostMemory = 8 << 30
		policy.Evaluate(res.Project, &policy.Env{})
	})
}
