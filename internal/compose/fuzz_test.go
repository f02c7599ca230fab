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
		// The input never touches the disk: a cache holding the parsed
		// file stands in for it (Load releases the file when done).
		cached := func() *fileCache {
			c := newFileCache()
			e := &cacheEntry{f: yf}
			e.once.Do(func() {})
			c.files[path] = e
			return c
		}
		res, err := Load(context.Background(), Options{Files: []string{path}, WorkDir: dir, cache: cached()})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		res.Project.HostMemory = 8 << 30
		policy.Evaluate(res.Project, &policy.Env{})
		if !res.Fast {
			return
		}
		// The fast path took it: compose-go's full pipeline must agree
		// wherever it accepts the input too.
		full, err := Load(context.Background(), Options{Files: []string{path}, WorkDir: dir, cache: cached(), Validate: true})
		if err != nil {
			return // full validation is stricter on fields no rule reads
		}
		if d := diffProjects(res.Project, full.Project); d != "" {
			t.Fatalf("fast path and compose-go disagree:\n%s", d)
		}
	})
}

// FuzzMayReference: a file the walk does not parse ahead (mayReference
// false) includes and extends no other file, whatever its YAML.
func FuzzMayReference(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("include:\n  - a.yaml\n"))
	f.Add([]byte("x: &k include\n*k : [a.yaml]\n"))
	f.Add([]byte("? include\n: [a.yaml]\n"))
	f.Add([]byte("\"\\x69nclude\": [a.yaml]\n"))
	f.Add([]byte("services:\n  a:\n    extends: {file: b.yaml, service: b}\n"))
	path := filepath.Join(f.TempDir(), "compose.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if mayReference(data) {
			return
		}
		yf, err := parseFile(path, data)
		if err != nil {
			return
		}
		if inc, ext := yf.referenced(); len(inc) > 0 || len(ext) > 0 {
			t.Fatalf("mayReference(%q) = false, but it includes %v and extends %v", data, inc, ext)
		}
	})
}
