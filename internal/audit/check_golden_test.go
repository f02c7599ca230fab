package audit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hy-home/hyhome/internal/workload"
)

var update = flag.Bool("update", false, "rewrite testdata/check from what the formats produce")

// TestCheckGoldens pins every format of `hyhome audit --check AC-SPEC-01`.
func TestCheckGoldens(t *testing.T) {
	snap := &Snapshot{
		Engine: EngineInfo{Host: "unix:///var/run/docker.sock", Name: "h", ServerVersion: "20.10.24", CgroupVersion: "2", MemTotal: 8 << 30},
		Containers: []*Container{
			{ID: "0123456789abcdef", Name: "web", Labels: map[string]string{workload.LabelTier: "app"}, SecurityOpt: []string{"no-new-privileges:true"}},
			{ID: "fedcba9876543210", Name: "db|1", Labels: map[string]string{workload.LabelTier: "data"}},
			{ID: "aaaaaaaaaaaaaaaa", Name: "adhoc"},
		},
		Notices: []Notice{{Kind: NoticeGone, Subject: "container x (abc)", Message: "removed between list and inspect; not audited"}},
	}
	r := CheckACSpec01(snap)
	for format, ext := range map[string]string{"text": "txt", "json": "json", "junit": "xml", "markdown": "md"} {
		var b bytes.Buffer
		if err := CheckFormats[format](r, &b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "check", "ac-spec-01."+ext)
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s changed:\n%s", path, b.String())
		}
	}
}
