package acceptance

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/testenv"
	"github.com/hy-home/hyhome/internal/workload"
)

var update = flag.Bool("update", false, "rewrite testdata/report from what the formats produce")

// TestReportGoldens pins every format of `hyhome audit --check AC-SPEC-01`:
// the check report every acceptance check is rendered in, as verify's.
func TestReportGoldens(t *testing.T) {
	snap := &source.Snapshot{
		Engine:  source.EngineInfo{Host: "unix:///var/run/docker.sock", Name: "h", ServerVersion: "20.10.24", CgroupVersion: "2", MemTotal: 8 << 30, NCPU: 2},
		Started: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Stats:   source.Stats{Duration: 25 * time.Millisecond},
		Containers: []*source.Container{
			{ID: "0123456789abcdef", Name: "web", Labels: map[string]string{workload.LabelTier: "app"}, SecurityOpt: []string{"no-new-privileges:true"}},
			{ID: "fedcba9876543210", Name: "db|1", Labels: map[string]string{workload.LabelTier: "data"}},
			{ID: "aaaaaaaaaaaaaaaa", Name: "adhoc"},
		},
		Notices: []source.Notice{{Kind: source.NoticeGone, Subject: "container x (abc)", Message: "removed between list and inspect; not audited"}},
	}
	rep := Report(snap, CheckACSpec01(snap).Result())
	rep.Version, rep.Command = "0.9.0", "audit"
	for format, ext := range map[string]string{"text": "txt", "json": "json", "junit": "xml", "markdown": "md"} {
		var b bytes.Buffer
		if err := report.WriteChecks(&b, format, rep); err != nil {
			t.Fatal(err)
		}
		testenv.Golden(t, filepath.Join("testdata", "report", "ac-spec-01."+ext), b.Bytes(), *update)
	}
}
