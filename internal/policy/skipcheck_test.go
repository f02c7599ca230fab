package policy_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/policy"
)

// skipMethods are the testing.TB methods that end a test as skipped.
var skipMethods = map[string]bool{"Skip": true, "Skipf": true, "SkipNow": true}

// testSupport are the packages tests call for the engine, the Prometheus
// stack and Loki; like every test, they report a missing prerequisite
// through internal/testenv, which fails under CI instead of skipping.
var testSupport = []string{"internal/dockertest", "internal/promtest", "internal/lokitest", "internal/policytest"}

// pkgFuncs parses the Go files of one directory that match the filter and
// returns every function and method body by name (methods by their bare
// name: a call x.m() is taken to reach every m of the package, which can
// only over-approximate what a test reaches).
func pkgFuncs(t *testing.T, dir string, tests bool) map[string][]*ast.FuncDecl {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	out := map[string][]*ast.FuncDecl{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") != tests {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parsing %s: %v", f, err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				out[fd.Name.Name] = append(out[fd.Name.Name], fd)
			}
		}
	}
	return out
}

// skipSites walks the functions reachable from name within funcs and
// returns where a test can be skipped directly: a call of .Skip, .Skipf or
// .SkipNow. (testenv.Missing and testenv.Short fail under CI instead.)
func skipSites(fset *token.FileSet, funcs map[string][]*ast.FuncDecl, name string) []string {
	seen := map[string]bool{}
	var sites []string
	var visit func(string, string)
	visit = func(fn, path string) {
		if seen[fn] {
			return
		}
		seen[fn] = true
		for _, fd := range funcs[fn] {
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch f := call.Fun.(type) {
				case *ast.SelectorExpr:
					if skipMethods[f.Sel.Name] {
						sites = append(sites, fmt.Sprintf("%s calls %s", path, f.Sel.Name))
					} else if _, local := funcs[f.Sel.Name]; local {
						visit(f.Sel.Name, path+" → "+f.Sel.Name)
					}
				case *ast.Ident:
					if _, local := funcs[f.Name]; local {
						visit(f.Name, path+" → "+f.Name)
					}
				case *ast.IndexExpr: // generic function: f[T](...)
					if id, ok := f.X.(*ast.Ident); ok {
						if _, local := funcs[id.Name]; local {
							visit(id.Name, path+" → "+id.Name)
						}
					}
				}
				return true
			})
		}
	}
	visit(name, name)
	sort.Strings(sites)
	return sites
}

// TestTracedTestsCannotSkipInCI: a requirement is proven in CI only by tests
// that run there. A traced test that can reach a bare t.Skip could be
// skipped under CI=true and still be listed as proof, so every traced test
// must report missing prerequisites through internal/testenv (which fails
// under CI); a requirement whose traced tests can all skip is refused
// outright. The test-support packages every test calls may not skip either.
func TestTracedTestsCannotSkipInCI(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, pkg := range testSupport {
		funcs := pkgFuncs(t, filepath.Join(root, pkg), false)
		for name := range funcs {
			if sites := skipSites(token.NewFileSet(), funcs, name); len(sites) > 0 {
				t.Errorf("%s: %s skips directly (%s); report a missing prerequisite with testenv.Missing", pkg, name, strings.Join(sites, "; "))
				break
			}
		}
	}

	byPkg := map[string]map[string][]*ast.FuncDecl{}
	traced := map[string][]policy.TestRef{"every rule": {policy.FixtureTest, policy.CrossSourceTest}}
	reqs := []string{"every rule"}
	for req, refs := range policy.RequirementTests {
		traced[req] = refs
		reqs = append(reqs, req)
	}
	sort.Strings(reqs[1:])
	for _, req := range reqs {
		runsInCI := 0
		for _, ref := range traced[req] {
			funcs, ok := byPkg[ref.Package]
			if !ok {
				funcs = pkgFuncs(t, filepath.Join(root, ref.Package), true)
				byPkg[ref.Package] = funcs
			}
			name, _, _ := strings.Cut(ref.Test, "/")
			if _, ok := funcs[name]; !ok {
				continue // TestTraceabilityReferencesExist reports it
			}
			if sites := skipSites(token.NewFileSet(), funcs, name); len(sites) > 0 {
				t.Errorf("%s: traced test %s %s can be skipped under CI: %s", req, ref.Package, ref.Test, strings.Join(sites, "; "))
				continue
			}
			runsInCI++
		}
		if runsInCI == 0 {
			t.Errorf("%s: none of its traced tests is sure to run under CI", req)
		}
	}
}

// The walk itself: a skip two calls down is found, through a method and a
// generic function; a function that only calls testenv is not flagged.
func TestSkipSites(t *testing.T) {
	src := `package p
func TestA(t *testing.T) { helper(t) }
func helper(t *testing.T) { var h h; h.deeper(t) }
func (h) deeper(t *testing.T) { if x { t.Skipf("no") } }
func TestB(t *testing.T) { testenv.Missing(t, "x"); generic[int](t) }
func generic[T any](t *testing.T) { t.Log() }
func TestC(t *testing.T) { generic2[int](t) }
func generic2[T any](t *testing.T) { t.SkipNow() }
`
	fset := token.NewFileSet()
	af, err := parser.ParseFile(fset, "p.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string][]*ast.FuncDecl{}
	for _, d := range af.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			funcs[fd.Name.Name] = append(funcs[fd.Name.Name], fd)
		}
	}
	for name, want := range map[string]string{
		"TestA": "TestA → helper → deeper calls Skipf",
		"TestB": "",
		"TestC": "TestC → generic2 calls SkipNow",
	} {
		if got := strings.Join(skipSites(fset, funcs, name), "; "); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
