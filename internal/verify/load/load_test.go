package load

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCPUTimes(t *testing.T) {
	a, err := parseCPUTimes([]byte("cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	// guest (50) is inside user already; idle is idle+iowait.
	if a.total != 1000 || a.busy != 200 {
		t.Errorf("%+v", a)
	}
	b := cpuTimes{busy: 200 + 80, total: 1000 + 100}
	if u := utilisation(a, b); u != 0.8 {
		t.Errorf("utilisation %v", u)
	}
	if u := utilisation(b, a); u != 0 {
		t.Errorf("backwards utilisation %v", u)
	}
	for _, bad := range []string{"", "intr 1 2", "cpu x 1 2 3"} {
		if _, err := parseCPUTimes([]byte(bad)); err == nil {
			t.Errorf("parseCPUTimes(%q) accepted", bad)
		}
	}
	if _, err := readCPUTimes("/proc/stat"); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}

// The controller on a simulated host: other work comes and goes, and the
// load's busy share adds fully (free cores) or partly (cores shared with
// that work). Utilisation must settle within 2 points of the target in a
// few control periods, and the load must step aside on a host already
// busier than the target.
func TestLoadControllerTracksOtherWork(t *testing.T) {
	const target = 0.8
	for _, efficiency := range []float64{1, 0.7} {
		duty := 0.0
		for _, other := range []float64{0.02, 0.55, 0.30, 0.65} {
			reachable := other+efficiency >= target
			var u float64
			for step := range 8 {
				u = math.Min(1, other+efficiency*duty)
				duty = nextDuty(duty, u, target)
				if reachable && step >= 5 && math.Abs(u-target) > 0.02 {
					t.Errorf("efficiency %.1f, other work %.2f: utilisation %.3f after %d periods", efficiency, other, u, step+1)
				}
			}
			if !reachable && duty != 1 {
				t.Errorf("efficiency %.1f, other work %.2f: the target is out of reach and duty stays %.2f, want all of it", efficiency, other, duty)
			}
		}
	}
	duty := 0.5
	for range 10 {
		duty = nextDuty(duty, 0.95, target)
	}
	if duty != 0 {
		t.Errorf("on a host at 95%% the load keeps duty %.2f, want 0", duty)
	}
}

// Run against a fake /proc/stat that never moves: the output parses back
// into a report, and with utilisation at 0 the controller drives the duty
// cycle up towards its ceiling.
func TestRunReportsAndReadsBack(t *testing.T) {
	stat := filepath.Join(t.TempDir(), "stat")
	if err := os.WriteFile(stat, []byte("cpu  0 0 0 1000 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Token: "ld", Target: 0.8, Duration: 300 * time.Millisecond, Interval: 100 * time.Millisecond, ProcStat: stat}, &out); err != nil {
		t.Fatal(err)
	}
	rep, err := ReadReport(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Done || len(rep.Samples) < 2 || rep.NCPU < 1 || rep.Started.IsZero() {
		t.Errorf("report %+v from\n%s", rep, out.String())
	}
	if last := rep.Samples[len(rep.Samples)-1]; last.CPU != 0 || last.Duty <= rep.Samples[0].Duty {
		t.Errorf("controller did not raise the duty cycle: %+v", rep.Samples)
	}
	for _, bad := range []float64{0, -1, 1.5} {
		if err := Run(context.Background(), Options{Target: bad, Duration: time.Second}, &out); err == nil {
			t.Errorf("target %g accepted", bad)
		}
	}
}

func TestReadReportErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       "never reported its start",
		"hyhome verify load start t=yesterday\n": "load canary line",
		"hyhome verify load start t=2025-03-01T12:00:00Z baseline=x ncpu=2\n": "baseline",
	} {
		if _, err := ReadReport(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// FuzzReadReport: whatever a canary's log holds, reading it returns a
// report or an error, never a panic.
func FuzzReadReport(f *testing.F) {
	f.Add("hyhome verify load start token=a t=2025-03-01T12:00:00Z target=0.8 baseline=0.1 ncpu=2\nhyhome verify load sample token=a t=2025-03-01T12:00:01Z cpu=0.8 duty=0.7 ncpu=2\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = ReadReport(strings.NewReader(s)) })
}
