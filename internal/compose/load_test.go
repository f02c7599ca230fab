package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/workload"

	"github.com/hy-home/hyhome/internal/testenv"
)

func mustLoad(t *testing.T, o Options) *workload.Project {
	t.Helper()
	res, err := Load(context.Background(), o)
	if err != nil {
		t.Fatalf("Load(%v): %v", o.Files, err)
	}
	return res.Project
}

func service(t *testing.T, p *workload.Project, name string) *workload.Workload {
	t.Helper()
	w := p.Find(name)
	if w == nil {
		var names []string
		for _, x := range p.Workloads {
			names = append(names, x.Name)
		}
		t.Fatalf("service %q not loaded (have %v)", name, names)
	}
	return w
}

func at(t *testing.T, what string, got workload.Position, file string, line int) {
	t.Helper()
	if filepath.Base(got.File) != file || got.Line != line {
		t.Errorf("%s at %s, want %s:%d", what, got, file, line)
	}
}

// TestLoadLocatesAnchorsAndMergeKeys: a value merged from an anchor is
// located at the anchor's line, and lands in the service that merges it;
// `<<: [*a, *b]` gives precedence to the earlier alias and to explicit keys.
func TestLoadLocatesAnchorsAndMergeKeys(t *testing.T) {
	p := mustLoad(t, Options{Files: []string{"testdata/anchors/compose.yaml"}})
	single := service(t, p, "single")
	if set, _, _ := single.NoNewPrivileges(); !set || !single.DropsAll() {
		t.Errorf("single: anchor not applied: security_opt=%v cap_drop=%v", single.SecurityOpt, single.CapDrop)
	}
	at(t, "single security_opt[0]", single.SecurityOptPosition(0), "compose.yaml", 3)
	at(t, "single service", single.Pos, "compose.yaml", 11)
	if !single.Baseline.FileDefines || !single.Baseline.Merged {
		t.Errorf("single: baseline = %+v, want defined and merged", single.Baseline)
	}

	list := service(t, p, "list")
	if list.Tier() != "infra" {
		t.Errorf("list: tier %q, want infra (from <<: [*labels, ...])", list.Tier())
	}
	at(t, "list tier label", list.LabelPos[workload.LabelTier], "compose.yaml", 7)
	if !list.Baseline.Merged {
		t.Error("list: <<: [*labels, *security-baseline] not seen as merging the baseline")
	}

	ov := service(t, p, "override")
	if ov.User != "1000" {
		t.Errorf("override: user %q, want the explicit 1000 over the merged root", ov.User)
	}
	at(t, "override user", ov.UserPos, "compose.yaml", 20)
}

func TestLoadExtendsSameAndOtherFile(t *testing.T) {
	p := mustLoad(t, Options{Files: []string{"testdata/extends/compose.yaml"}})
	ff := service(t, p, "from-file")
	if !ff.Privileged || ff.User != "10001" || !ff.ReadOnlyRootfs {
		t.Errorf("from-file: extends file not applied: %+v", ff)
	}
	at(t, "from-file privileged", ff.PrivilegedPos, "base.yaml", 5)
	at(t, "from-file service", ff.Pos, "compose.yaml", 5)
	sf := service(t, p, "same-file")
	if !sf.DropsAll() {
		t.Errorf("same-file: cap_drop %v, want [ALL] from local-base", sf.CapDrop)
	}
	at(t, "same-file cap_drop", sf.CapDropAt, "compose.yaml", 4)
}

func TestLoadInclude(t *testing.T) {
	p := mustLoad(t, Options{Files: []string{"testdata/include/compose.yaml"}})
	inc := service(t, p, "included")
	if !inc.Privileged {
		t.Error("included service lost privileged")
	}
	at(t, "included privileged", inc.PrivilegedPos, "compose.yaml", 4)
	if !strings.Contains(inc.PrivilegedPos.File, filepath.Join("include", "sub")) {
		t.Errorf("included privileged located in %s, want include/sub/compose.yaml", inc.PrivilegedPos.File)
	}
	service(t, p, "main")
}

// TestLoadSeveralFiles merges -f files as docker compose does: the later
// file wins and findings point at it.
func TestLoadSeveralFiles(t *testing.T) {
	p := mustLoad(t, Options{Files: []string{"testdata/multi/compose.yaml", "testdata/multi/compose.prod.yaml"}})
	web := service(t, p, "web")
	if web.User != "0" || web.Image != "example/web:2.0" || web.MemoryLimit != 256<<20 {
		t.Errorf("web: override not applied: user=%q image=%q mem=%d", web.User, web.Image, web.MemoryLimit)
	}
	at(t, "web user", web.UserPos, "compose.prod.yaml", 4)
	at(t, "web service", web.Pos, "compose.yaml", 2)
	if len(web.Ports) != 1 || web.Ports[0].Published != "8080" {
		t.Fatalf("web ports = %+v", web.Ports)
	}
	at(t, "web port", web.Ports[0].Pos, "compose.yaml", 6)
	if len(web.Files) != 2 {
		t.Errorf("web files = %v, want both", web.Files)
	}
}

func TestLoadProfiles(t *testing.T) {
	names := func(p *workload.Project) string {
		var n []string
		for _, w := range p.Workloads {
			n = append(n, w.Name)
		}
		sort.Strings(n)
		return strings.Join(n, ",")
	}
	for _, tc := range []struct {
		profiles []string
		want     string
	}{
		{nil, "always"},
		{[]string{"debug"}, "always,debug"},
		{[]string{"*"}, "always,debug"},
	} {
		p := mustLoad(t, Options{Files: []string{"testdata/profiles/compose.yaml"}, Profiles: tc.profiles})
		if got := names(p); got != tc.want {
			t.Errorf("profiles %v: services %s, want %s", tc.profiles, got, tc.want)
		}
	}
}

// TestLoadInterpolation covers .env, --env-file and every ${VAR...} form.
func TestLoadInterpolation(t *testing.T) {
	p := mustLoad(t, Options{Files: []string{"testdata/env/compose.yaml"}, Environ: []string{"SHELL_ONLY=from-shell"}})
	app := service(t, p, "app")
	if app.Image != "example/app:1.2.3" || app.User != "4242" {
		t.Errorf(".env not applied: image=%q user=%q", app.Image, app.User)
	}
	env := map[string]workload.EnvVar{}
	for _, e := range app.Env {
		env[e.Key] = e
	}
	for k, want := range map[string]string{
		"DEFAULTED": "fallback", "DASH_DEFAULT": "dash", "ALTERNATE": "set", "LITERAL": "$NOT_A_VAR", "FROM_SHELL": "from-shell",
	} {
		if got := env[k].Value; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if env["LITERAL"].Interpolated || !env["FROM_SHELL"].Interpolated || !env["DEFAULTED"].Interpolated {
		t.Errorf("interpolation flags wrong: %+v", env)
	}
	at(t, "FROM_SHELL", env["FROM_SHELL"].Pos, "compose.yaml", 10)

	alt := mustLoad(t, Options{Files: []string{"testdata/env/compose.yaml"}, EnvFiles: []string{"testdata/env/alt.env"}})
	if img := service(t, alt, "app").Image; img != "example/app:9.9.9" {
		t.Errorf("--env-file not applied: image %q", img)
	}
}

func TestDiscoverFindsOverride(t *testing.T) {
	p := mustLoad(t, Options{WorkDir: "testdata/discover"})
	if !service(t, p, "web").Privileged {
		t.Error("compose.override.yaml was not merged")
	}
	if _, err := Discover("testdata/invalid"); !errors.Is(err, ErrNoComposeFile) {
		t.Errorf("Discover(no compose file) = %v, want ErrNoComposeFile", err)
	}
}

// TestFindProjects groups a walk: included files are parts of the project
// that includes them, YAML without services is not a compose file.
func TestFindProjects(t *testing.T) {
	set, err := FindProjects("testdata/walk")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Projects) != 1 || filepath.Base(set.Projects[0].Files[0]) != "docker-compose.yml" {
		t.Fatalf("projects = %+v, want only app/docker-compose.yml", set.Projects)
	}
	p := mustLoad(t, set.Options(set.Projects[0], Options{}))
	service(t, p, "shared")
}

// TestBadInput: every broken input gives one clear error naming the file
// (and the line where there is one), never a panic.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"malformed.yaml", []string{"malformed.yaml:4:", "invalid YAML", "did not find expected"}},
		{"unknown-top-level.yaml", []string{"unknown-top-level.yaml:4:", "serivces"}},
		{"required-variable.yaml", []string{"required-variable.yaml", "WEB_TAG", "set WEB_TAG to the release"}},
		{"extends-cycle.yaml", []string{"extends-cycle.yaml", "Circular reference"}},
		{"empty.yaml", []string{"empty.yaml", "empty compose file"}},
		{"top-level-list.yaml", []string{"top-level-list.yaml:1:", "must be a mapping"}},
		{"unknown-service-key.yaml", []string{"unknown-service-key.yaml:4:", "service web", "unknown key previleged"}},
		{"empty-document.yaml", []string{"empty-document.yaml:4:", "YAML document 2 is empty"}},
		{"does-not-exist.yaml", []string{"does-not-exist.yaml", "no such file"}},
		// A key written twice in one mapping: docker compose refuses it
		// ("mapping key already defined"); a reader that keeps one of the
		// two would pass a privileged service unseen (issue 12, item 1).
		{"duplicate-services-block.yaml", []string{"duplicate-services-block.yaml:6:", `mapping key "services" already defined at line 3`}},
		{"duplicate-service.yaml", []string{"duplicate-service.yaml:4:", `mapping key "web" already defined at line 2`}},
		{"duplicate-service-key.yaml", []string{"duplicate-service-key.yaml:5:", `mapping key "privileged" already defined at line 4`}},
		{"duplicate-in-extension.yaml", []string{"duplicate-in-extension.yaml:3:", `mapping key "read_only" already defined at line 2`}},
		{"duplicate-merge-key.yaml", []string{"duplicate-merge-key.yaml:8:", `mapping key "<<" already defined at line 7`}},
		// compose-go's messages located at the node they are about (issue
		// 12, item 10).
		{"service-not-mapping.yaml", []string{"service-not-mapping.yaml:4:", "services.a must be a mapping"}},
		{"invalid-port.yaml", []string{"invalid-port.yaml:6:", "invalid port", "abc"}},
		{"invalid-port-long.yaml", []string{"invalid-port-long.yaml:6:", `parsing "abc"`}},
		{"invalid-volume.yaml", []string{"invalid-volume.yaml:6:", "invalid volume", ":/media/"}},
		{"undefined-volume.yaml", []string{"undefined-volume.yaml:6:", "undefined volume missing"}},
		{"undefined-network.yaml", []string{"undefined-network.yaml:6:", "undefined network back"}},
		{"undefined-secret.yaml", []string{"undefined-secret.yaml:5:", "undefined secret nope"}},
		{"undefined-dependency.yaml", []string{"undefined-dependency.yaml:5:", `depends on undefined service "db"`}},
		{"missing-env-file.yaml", []string{"missing-env-file.yaml:5:", "does-not-exist.env not found"}},
		{"dependency-cycle.yaml", []string{"dependency-cycle.yaml:", "dependency cycle"}},
		{"missing-extends-file.yaml", []string{"missing-extends-file.yaml:4:", "no-such-base.yaml"}},
	} {
		// Both paths: the fast path and compose-go's full pipeline.
		for _, validate := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/validate=%v", tc.file, validate), func(t *testing.T) {
				_, err := Load(context.Background(), Options{Files: []string{filepath.Join("testdata", "invalid", tc.file)}, Validate: validate, Environ: []string{}})
				if err == nil {
					t.Fatal("loaded without error")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			})
		}
	}
}

// TestRealCorpusLoads lints every file of shared/corpus/real that docker
// compose itself accepts; the ones it rejects must fail with a clear error,
// never a panic. The list of rejected files is pinned so that a regression
// that starts rejecting good files is caught.
func TestRealCorpusLoads(t *testing.T) {
	root := testenv.CorpusDir(t)
	set, err := FindProjects(root)
	if err != nil {
		t.Fatal(err)
	}
	rejected := map[string]bool{}
	loaded, services := 0, 0
	for _, ps := range set.Projects {
		res, err := Load(context.Background(), set.Options(ps, Options{}))
		rel, _ := filepath.Rel(root, ps.Files[0])
		if err != nil {
			if !strings.Contains(err.Error(), filepath.Base(ps.Files[0])) && !strings.Contains(err.Error(), filepath.Dir(ps.Files[0])) {
				t.Errorf("%s: error does not name the file: %v", rel, err)
			}
			rejected[rel] = true
			continue
		}
		loaded++
		services += len(res.Project.Workloads)
	}
	t.Logf("%d projects loaded (%d services), %d rejected", loaded, services, len(rejected))
	for f := range rejected {
		if !expectedRejects[f] {
			t.Errorf("%s is rejected but is not a file docker compose rejects", f)
		}
	}
	for f := range expectedRejects {
		if !rejected[f] {
			t.Errorf("%s loaded, but docker compose rejects it (update expectedRejects if the corpus changed)", f)
		}
	}
}

// expectedRejects are corpus files `docker compose config` rejects too, with
// why. They need variables, env files or remote resources the corpus does
// not carry, or they are loader test fixtures of broken input.
var expectedRejects = map[string]bool{
	"awesome-compose/plex/compose.yaml":                                   true, // `${PLEX_MEDIA_PATH}:/media/` with the variable unset: empty volume source
	"boilerplates/docker-compose/authentik/compose.yaml":                  true, // ${POSTGRES_PASSWORD:?error}: required variable unset
	"boilerplates/docker-compose/gitea/compose.yaml":                      true, // ${POSTGRES_DB:?...}: required variable unset
	"boilerplates/docker-compose/wazuh/compose.yaml":                      true, // ${INDEXER_USERNAME:?error}: required variable unset
	"compose-go/cli/testdata/env-file/compose-with-env-file.yaml":         true, // env_file simple-env not in the corpus
	"compose-go/cli/testdata/env-file/compose-with-env-files.yaml":        true, // env_file simple-env not in the corpus
	"compose-go/loader/testdata/compose-depends-on-cycle.yaml":            true, // depends_on cycle (negative fixture)
	"compose-go/loader/testdata/compose-depends-on-profile-no-cycle.yaml": true, // depends_on cycle with no profile active
	"compose-go/loader/testdata/compose-depends-on-self.yaml":             true, // depends_on itself (negative fixture)
	"compose-go/loader/testdata/compose-include.yaml":                     true, // included env_file subdir/extra.env not in the corpus
	"compose-go/loader/testdata/compose-test-extends.yaml":                true, // env_file subdir/extra.env not in the corpus
	"compose-go/loader/testdata/extends/base.yaml":                        true, // `nil:` service with no mapping (negative fixture)
	"compose-go/loader/testdata/include/dir/compose.yaml":                 true, // env_file extra.env not in the corpus
	"compose-go/loader/testdata/remote/compose.yaml":                      true, // env_file "env" not in the corpus
	"compose-go/loader/testdata/remote/cycle/compose.yaml":                true, // remote:cycle resource needs a remote loader
	"compose-go/loader/testdata/remote/cycle/compose-cycle.yaml":          true, // remote:cycle resource needs a remote loader
	"compose-go/loader/testdata/remote/nested/compose.yaml":               true, // remote:nested resource needs a remote loader
	"compose-go/schema/using-variables.yaml":                              true, // `external: ${VAR}` unset: not a boolean
}

// TestLoadLocatesEachItemByItsNode: an item is located at its own YAML
// node, whatever variables it is written with, through extends into the
// base file, and for services a `<<` merge brings in (issue 12, item 2).
// Both paths must agree, so each case runs on both.
func TestLoadLocatesEachItemByItsNode(t *testing.T) {
	for _, validate := range []bool{false, true} {
		t.Run(fmt.Sprintf("validate=%v", validate), func(t *testing.T) {
			p := mustLoad(t, Options{Files: []string{"testdata/locate/compose.yaml"}, Validate: validate})
			web := service(t, p, "web")
			mounts := map[string]workload.Position{}
			for _, m := range web.Mounts {
				mounts[m.Target] = m.Pos
			}
			at(t, "interpolated bind source", mounts["/data"], "compose.yaml", 13)
			at(t, "socket through a variable", mounts["/var/run/docker.sock"], "compose.yaml", 14)
			at(t, "long syntax, interpolated target", mounts["/var/log/web"], "compose.yaml", 15)
			if got := mounts["/data"].Column; got != 9 {
				t.Errorf("volume column %d, want 9 (the item's own node)", got)
			}
			ports := map[string]workload.Position{}
			for _, pt := range web.Ports {
				ports[fmt.Sprintf("%d/%s", pt.Target, pt.Protocol)] = pt.Pos
			}
			at(t, "interpolated published port", ports["80/tcp"], "compose.yaml", 19)
			at(t, "53/tcp", ports["53/tcp"], "compose.yaml", 20)
			at(t, "53/udp (same ports, other protocol)", ports["53/udp"], "compose.yaml", 21)
			at(t, "interpolated device", web.Devices[0].Pos, "compose.yaml", 23)
			at(t, "interpolated cap_add", web.CapAddPos[0], "compose.yaml", 25)
			at(t, "interpolated secret source", web.Secrets[0].Pos, "compose.yaml", 27)

			child := service(t, p, "child")
			for _, m := range child.Mounts {
				switch m.Target {
				case "/base":
					at(t, "extended base's interpolated volume", m.Pos, "base.yaml", 5)
				case "/child":
					at(t, "child's own volume", m.Pos, "compose.yaml", 33)
				}
			}
			at(t, "extended base's interpolated port", child.Ports[0].Pos, "base.yaml", 7)

			merged := service(t, p, "merged")
			at(t, "service merged with <<", merged.Pos, "compose.yaml", 4)
			at(t, "its privileged key", merged.PrivilegedPos, "compose.yaml", 6)
		})
	}
}

// TestLoadMergesDocumentsOfOneFile: the documents of one file are merged in
// order, as compose-go does, and each value is located in the document
// that writes it (issue 12, item 8).
func TestLoadMergesDocumentsOfOneFile(t *testing.T) {
	for _, validate := range []bool{false, true} {
		t.Run(fmt.Sprintf("validate=%v", validate), func(t *testing.T) {
			p := mustLoad(t, Options{Files: []string{"testdata/multidoc/compose.yaml"}, Validate: validate})
			web := service(t, p, "web")
			if !web.Privileged || !web.ReadOnlyRootfs || web.User != "1000" || len(web.Mounts) != 1 {
				t.Errorf("web = privileged %v read_only %v user %q mounts %v, want the documents merged", web.Privileged, web.ReadOnlyRootfs, web.User, web.Mounts)
			}
			at(t, "web declared in document 1", web.Pos, "compose.yaml", 6)
			at(t, "privileged from document 2", web.PrivilegedPos, "compose.yaml", 13)
			at(t, "read_only through the anchor of document 1", web.ReadOnlyRootfsPos, "compose.yaml", 4)
			at(t, "volume from document 2", web.Mounts[0].Pos, "compose.yaml", 15)
			worker := service(t, p, "worker")
			if worker.User != "root" {
				t.Errorf("worker user %q, want root from document 3", worker.User)
			}
			at(t, "user from document 3", worker.UserPos, "compose.yaml", 21)
		})
	}
}

// TestFileSizeLimit: a file over Options.MaxFileSize is refused, naming
// the file and the limit; under it, it loads (issue 12, item 10).
func TestFileSizeLimit(t *testing.T) {
	f := filepath.Join("testdata", "anchors", "compose.yaml")
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), Options{Files: []string{f}, MaxFileSize: fi.Size() - 1})
	if err == nil || !strings.Contains(err.Error(), "compose.yaml: larger than the") || !strings.Contains(err.Error(), "--max-file-size") {
		t.Errorf("err = %v, want the file refused with its limit", err)
	}
	if _, err := Load(context.Background(), Options{Files: []string{f}, MaxFileSize: fi.Size()}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	set, err := FindProjects("testdata/walk", WithMaxFileSize(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range set.Projects {
		if _, err := Load(context.Background(), set.Options(ps, Options{})); err == nil || !strings.Contains(err.Error(), "larger than the 1 bytes limit") {
			t.Errorf("%v: err = %v, want the walk's limit applied", ps.Files, err)
		}
	}
}

// TestMayReference: the walk parses ahead only the files with an include
// or extends key, however it is written; a mere mention is not one.
func TestMayReference(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"include:\n  - other.yaml\nservices: {}\n", true},
		{"services:\n  web:\n    extends:\n      file: base.yaml\n      service: web\n", true},
		{"services:\n  web:\n    extends: base\n", true},
		{"services:\n  web: {extends: base}\n", true},
		{"\"include\" : [other.yaml]\n", true},
		{"'extends':\n  service: base\n", true},
		{"? include\n: [other.yaml]\n", true},
		{"services:\n  web:\n    image: app # extends nothing, includes nothing\n", false},
		{"services:\n  web:\n    environment:\n      NOTE: this text mentions include and extends\n", false},
		{"services:\n  web:\n    labels: [x-includes=1]\n", false},
		{"x: &k include\n*k : [other.yaml]\n", true},
		{"{? include : [other.yaml]}\n", true},
		{"\"\\x69nclude\": [other.yaml]\n", true},
		{"services:\n  web:\n    <<: *base\n    image: app:1 # no include here\n", false},
		{"services:\n  web:\n    command: [\"a?b\", \"*\"]\n", false},
	} {
		if got := mayReference([]byte(tc.yaml)); got != tc.want {
			t.Errorf("mayReference(%q) = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

// TestWalkCacheHoldsNothingAfterLoads: a walk's cache holds no file once
// its projects are loaded, whether they loaded or not, included files and
// the files the walk parsed ahead too: memory does not grow with the
// number of projects.
func TestWalkCacheHoldsNothingAfterLoads(t *testing.T) {
	defer func(n int) { keepAhead = n }(keepAhead)
	for _, keep := range []int{0, 64} {
		keepAhead = keep
		for _, dir := range []string{"testdata/walk", "testdata/invalid", "testdata"} {
			set, err := FindProjects(dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(set.cache.files); n > keep {
				t.Errorf("%s: %d files cached after the walk, want at most %d", dir, n, keep)
			}
			for _, ps := range set.Projects {
				Load(context.Background(), set.Options(ps, Options{Environ: []string{}}))
			}
			if n := len(set.cache.files); n != 0 {
				t.Errorf("%s: %d files cached after loading its %d projects", dir, n, len(set.Projects))
			}
		}
	}
}
