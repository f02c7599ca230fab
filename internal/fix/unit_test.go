package fix

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/workload"
)

func TestReadOnlyVolume(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "./data:/data", want: "./data:/data:ro"},
		{in: "./data:/data:rw", want: "./data:/data:ro"},
		{in: "./data:/data:z", want: "./data:/data:z,ro"},
		{in: "./data:/data:ro", want: "./data:/data:ro"},
		{in: "/:/rootfs:ro", want: "/:/rootfs:ro"},
		{in: "${DATA:-./data}:/data", want: "${DATA:-./data}:/data:ro"},
		{in: "$$HOME/x:/x", want: "$$HOME/x:/x:ro"},
		{in: "${A}:${B}", err: "several interpolations"},
		{in: "./x:${T:-/x}", err: "target from the environment"},
		{in: "./x:/x:${MODE}", err: "mode from the environment"},
		{in: "C:\\data:/data:rw", err: "Windows drive letter"},
		{in: "/data", err: "not a bind mount"},
		{in: "./a:/b:ro:d", err: "more than three fields"},
	} {
		got, err := readOnlyVolume(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !errors.Is(err, errDecline) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want one saying %q", tc.in, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestPlainSafe(t *testing.T) {
	for s, want := range map[string]bool{
		"no-new-privileges:true": true, "ALL": true, "/run/secrets/x": true, "tcp://docker-guard:2375": true,
		"65534:65534": true, "hy-home.tier=app": true,
		"true": false, "yes": false, "on": false, "null": false, "~": false, "1024": false, "0x1f": false, "1:30": false,
		"a: b": false, "a #b": false, "-x": false, "*x": false, "": false, " x": false, "x\ny": false, "it's": false,
	} {
		if got := plainSafe(s, false); got != want {
			t.Errorf("plainSafe(%q) = %v, want %v", s, got, want)
		}
	}
	if plainSafe("a,b", true) || !plainSafe("a,b", false) {
		t.Error("a comma is plain only outside flow collections")
	}
}

func TestParseValues(t *testing.T) {
	v, err := ParseValues("--tmpfs", []string{"/tmp", "web=/run", "/var/cache:size=1m", "web=/tmp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v.All("db"), []string{"/tmp", "/var/cache:size=1m"}) || !reflect.DeepEqual(v.All("web"), []string{"/run", "/tmp"}) || v.For("web") != "/tmp" {
		t.Errorf("values: %+v", v)
	}
	if _, err := ParseValues("--memory", []string{"db=lots"}, CheckMemory); err == nil || !strings.Contains(err.Error(), `--memory "db=lots"`) {
		t.Errorf("err = %v", err)
	}
}

func TestMemoryText(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1g", 256 << 20: "256m", 1536 << 20: "1536m", 3 << 10: "3k", 1000: "1000b"} {
		if got := memoryText(n); got != want {
			t.Errorf("memoryText(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestReadMemoryTable(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("# image size\npostgres 1GiB\n\nghcr.io/*/app:* 128m\n"), 0o644)
	tab, err := ReadMemoryTable(good)
	if err != nil || len(tab) != 2 || tab[0].Size != 1<<30 {
		t.Fatalf("%v %+v", err, tab)
	}
	o := &Options{MemoryTable: tab, Memory: Values{Default: []string{"64m"}, Service: map[string][]string{"special": {"2g"}}}}
	for _, tc := range []struct {
		name, image string
		want        int64
	}{
		{"db", "postgres:16", 1 << 30},
		{"db", "postgres@sha256:abc", 1 << 30},
		{"app", "ghcr.io/acme/app:1.2", 128 << 20},
		{"other", "nginx:1.27", 64 << 20},
		{"special", "postgres:16", 2 << 30},
	} {
		w := newTestWorkload(tc.name, tc.image)
		if got, _ := o.memoryFor(w); got != tc.want {
			t.Errorf("%s (%s): %d, want %d", tc.name, tc.image, got, tc.want)
		}
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("postgres\n"), 0o644)
	if _, err := ReadMemoryTable(bad); err == nil || !strings.Contains(err.Error(), "bad:1") {
		t.Errorf("err = %v", err)
	}
}

// TestOffsetCountsCharacters: the parser counts columns in characters; a
// multi-byte key and a byte order mark must not shift the splice.
func TestOffsetCountsCharacters(t *testing.T) {
	src, err := parseSource("x.yaml", 0o644, []byte("\xef\xbb\xbfé: \"ü\"\nk: v\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, v := mapGet(src.root, "é")
	start, end, err := src.scalarSpan(v)
	if err != nil || string(src.data[start:end]) != `"ü"` {
		t.Errorf("span %q, %v", src.data[start:end], err)
	}
}

// TestOddLineBreaksDeclined: YAML breaks lines at a lone CR, NEL, LS and PS
// too, where fix's line index does not; such a file is declined with its
// line, never edited at the wrong place (FuzzFix found a lone CR crashing
// the renderer).
func TestOddLineBreaksDeclined(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		line int
	}{
		{"lf", "services:\n  a:\n    image: x\n", 0},
		{"crlf", "services:\r\n  a:\r\n    image: x\r\n", 0},
		{"lone cr", "services:\n  a:\r    image: x\n", 2},
		{"trailing cr", "services:\n  a:\n    image: x\r", 3},
		{"nel", "services:\n  a:\n    image: x\u0085", 3},
		{"ls", "services:\u2028  a:\n", 1},
		{"ps", "x: 1\nservices:\u2029  a:\n", 2},
	} {
		if got := oddLineBreak([]byte(tc.data)); got != tc.line {
			t.Errorf("%s: line %d, want %d", tc.name, got, tc.line)
		}
		_, err := parseSource("x.yaml", 0o644, []byte(tc.data))
		if tc.line == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, errDecline) || !strings.Contains(err.Error(), fmt.Sprintf("x.yaml:%d:", tc.line)) {
			t.Errorf("%s: err = %v, want a decline naming x.yaml:%d", tc.name, err, tc.line)
		}
	}
}

// TestRenderPanicLeavesEditsToAHuman: a defect of the renderer fails that
// file's edits with the reason instead of ending the process.
func TestRenderPanicLeavesEditsToAHuman(t *testing.T) {
	src, err := parseSource("x.yaml", 0o644, []byte("services:\n  a:\n    image: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Edit{Applied: true}
	// A change without a node makes the renderer dereference nil.
	if f := renderFileSafe(src, []*change{{src: src, edit: e}}); f != nil {
		t.Fatalf("rendered %q", f.New)
	}
	if e.Applied || !strings.Contains(e.Reason, errRenderDefect) || !strings.Contains(e.Reason, "x.yaml") {
		t.Errorf("edit = %+v", e)
	}
}

func newTestWorkload(name, image string) *workload.Workload {
	return &workload.Workload{Name: name, Image: image}
}
