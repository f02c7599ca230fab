// Package load holds a host's CPU at a target utilisation for a window and
// reports what it measured, one line per interval: the load generator of
// AC-SPEC-03's "System at 80% CPU load", which verify runs in a canary
// container on the engine's host, and the reader of its report.
//
// It loads and measures; it must not judge memory (verify's AC-SPEC-03
// does). Its report lines are its output, not log lines: verify reads them
// back from the canary's log.
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hy-home/hyhome/internal/human"
)

// AC-SPEC-03's Given is "System at 80% CPU load": the host's total
// utilisation, whatever else runs on it, not "80% added by the tool". So
// the load canary closes the loop on the kernel's own counters: every
// interval it reads /proc/stat (host-wide inside a container: the file is
// not namespaced), and moves the duty cycle of one busy goroutine per CPU
// so that the total reaches the target. On a host already busier than the
// target it adds nothing. It runs in a container on the engine's host
// rather than in verify's process, so that the load lands on the machine
// whose containers are measured even when verify talks to a remote engine,
// and it stops by itself after its window even if verify is killed.

const (
	loadLinePrefix = "hyhome verify load "
	// loadPeriod is one duty cycle of a worker: busy for duty×period, then
	// asleep. Short enough that the host sees a steady share, long enough
	// that sleep granularity (about a millisecond) is a small error the
	// controller corrects.
	loadPeriod = 20 * time.Millisecond
	// loadGain is the controller's integral gain: the error shrinks by
	// (1-gain) per control period when the load's share adds one for one,
	// and stays monotone when it adds less (busy cores shared with others).
	loadGain = 0.9
	// loadControl is the longest control period. Shorter than a reporting
	// interval so that the load follows other work coming and going; long
	// enough that /proc/stat's 10 ms ticks resolve it (2% on 2 CPUs).
	loadControl = 250 * time.Millisecond
)

// nextDuty is one step of the controller: an integral step on the error
// between the target and the host's measured utilisation.
func nextDuty(duty, measured, target float64) float64 {
	return clamp01(duty + loadGain*(target-measured))
}

// Options configure a load run.
type Options struct {
	// Target is the host utilisation to hold, in (0, 1].
	Target float64
	// Duration is the load window.
	Duration time.Duration
	// Interval is the reporting period (and the longest control period);
	// 0 means a second.
	Interval time.Duration
	// ProcStat is the path of the kernel's CPU counters; "" means
	// /proc/stat (tests point it at a file they advance).
	ProcStat string
	// Token ties the report's lines to one canary.
	Token string
}

// cpuTimes are the aggregate "cpu" counters of /proc/stat, in USER_HZ.
type cpuTimes struct{ busy, total uint64 }

// parseCPUTimes reads the first ("cpu ") line of /proc/stat: user nice
// system idle iowait irq softirq steal [guest guest_nice]. Idle time is idle
// plus iowait; guest time is already counted in user and nice, so it is left
// out of the total.
func parseCPUTimes(data []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("no aggregate cpu line in /proc/stat: %q", human.Truncate(string(line), 80))
	}
	var v [8]uint64
	for i := 0; i < 8 && i+1 < len(fields); i++ {
		n, err := strconv.ParseUint(fields[i+1], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
		}
		v[i] = n
	}
	var total uint64
	for _, n := range v {
		total += n
	}
	idle := v[3] + v[4]
	return cpuTimes{busy: total - idle, total: total}, nil
}

func readCPUTimes(path string) (cpuTimes, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("reading CPU counters: %w", err)
	}
	return parseCPUTimes(data)
}

// utilisation is the busy share of CPU time between two readings.
func utilisation(a, b cpuTimes) float64 {
	if b.total <= a.total || b.busy < a.busy {
		return 0
	}
	return math.Min(1, float64(b.busy-a.busy)/float64(b.total-a.total))
}

func clamp01(f float64) float64 { return math.Max(0, math.Min(1, f)) }

// Run holds host CPU utilisation at o.Target for o.Duration and writes one
// sample line per interval to out, then a summary line.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if o.Target <= 0 || o.Target > 1 {
		return fmt.Errorf("load target %g is not in (0, 1]", o.Target)
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.ProcStat == "" {
		o.ProcStat = "/proc/stat"
	}
	ncpu := runtime.NumCPU()

	// The host's utilisation before any load decides the first duty cycle,
	// so the window starts near the target instead of ramping into it.
	prev, err := readCPUTimes(o.ProcStat)
	if err != nil {
		return err
	}
	select {
	case <-time.After(min(o.Interval, 500*time.Millisecond)):
	case <-ctx.Done():
		return nil
	}
	cur, err := readCPUTimes(o.ProcStat)
	if err != nil {
		return err
	}
	base := utilisation(prev, cur)
	prev = cur
	duty := clamp01(o.Target - base)
	var dutyBits atomic.Uint64
	dutyBits.Store(math.Float64bits(duty))
	fmt.Fprintf(out, "%sstart token=%s t=%s target=%.3f baseline=%.4f ncpu=%d\n", loadLinePrefix, o.Token, time.Now().UTC().Format(time.RFC3339Nano), o.Target, base, ncpu)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range ncpu {
		wg.Add(1)
		// Staggered phases spread the busy slices over the period, so the
		// host sees a steady load rather than all cores in lockstep.
		go func(phase time.Duration) {
			defer wg.Done()
			spin(stop, &dutyBits, phase)
		}(time.Duration(i) * loadPeriod / time.Duration(ncpu))
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	// Control every loadControl, report every interval (whole multiples).
	control := min(o.Interval, loadControl)
	perReport := max(1, int(math.Round(float64(o.Interval)/float64(control))))
	deadline := time.Now().Add(o.Duration)
	tick := time.NewTicker(control)
	defer tick.Stop()
	reportPrev := prev
	var sum, dutySum float64
	var n, ticks int
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "%sdone token=%s t=%s samples=%d interrupted=true\n", loadLinePrefix, o.Token, time.Now().UTC().Format(time.RFC3339Nano), n)
			return nil
		case now := <-tick.C:
			cur, err := readCPUTimes(o.ProcStat)
			if err != nil {
				return err
			}
			u := utilisation(prev, cur)
			prev = cur
			dutySum += duty
			ticks++
			duty = nextDuty(duty, u, o.Target)
			dutyBits.Store(math.Float64bits(duty))
			if ticks < perReport {
				continue
			}
			ur := utilisation(reportPrev, cur)
			reportPrev = cur
			sum += ur
			n++
			fmt.Fprintf(out, "%ssample token=%s t=%s cpu=%.4f duty=%.4f ncpu=%d\n", loadLinePrefix, o.Token, now.UTC().Format(time.RFC3339Nano), ur, dutySum/float64(ticks), ncpu)
			ticks, dutySum = 0, 0
			if !now.Before(deadline) {
				fmt.Fprintf(out, "%sdone token=%s t=%s samples=%d mean=%.4f\n", loadLinePrefix, o.Token, time.Now().UTC().Format(time.RFC3339Nano), n, sum/float64(n))
				return nil
			}
		}
	}
}

// spin is one worker: each period, busy for duty×period, asleep for the rest.
func spin(stop <-chan struct{}, duty *atomic.Uint64, phase time.Duration) {
	time.Sleep(phase)
	var sink uint64
	for {
		select {
		case <-stop:
			spinSink.Add(sink) // keeps the arithmetic from being optimised away
			return
		default:
		}
		start := time.Now()
		busy := time.Duration(math.Float64frombits(duty.Load()) * float64(loadPeriod))
		for time.Since(start) < busy {
			for i := range 1000 {
				sink += uint64(i) * 2654435761
			}
		}
		if rest := loadPeriod - time.Since(start); rest > 0 {
			time.Sleep(rest)
		}
	}
}

var spinSink atomic.Uint64

// Sample is one interval of the report.
type Sample struct {
	At   time.Time `json:"at"`
	CPU  float64   `json:"cpu"`
	Duty float64   `json:"duty"`
}

// Report is what a load run's output says.
type Report struct {
	// Started is when the load began; Baseline the host's utilisation
	// before it; NCPU the CPUs it loaded.
	Started  time.Time
	Baseline float64
	NCPU     int
	Samples  []Sample
	// Done is true when the run reported its end.
	Done bool
}

// parseLine reads one line of a load run's output into r; other lines are
// passed over.
func (r *Report) parseLine(line string) error {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), loadLinePrefix)
	if !ok {
		return nil
	}
	kind, rest, _ := strings.Cut(rest, " ")
	kv := map[string]string{}
	for _, f := range strings.Fields(rest) {
		if k, val, ok := strings.Cut(f, "="); ok {
			kv[k] = val
		}
	}
	ts, err := time.Parse(time.RFC3339Nano, kv["t"])
	if err != nil {
		return fmt.Errorf("load canary line %q: %w", human.Truncate(line, 120), err)
	}
	num := func(k string) (float64, error) {
		f, err := strconv.ParseFloat(kv[k], 64)
		if err != nil {
			return 0, fmt.Errorf("load canary line %q: %s: %w", human.Truncate(line, 120), k, err)
		}
		return f, nil
	}
	switch kind {
	case "start":
		r.Started = ts
		if r.Baseline, err = num("baseline"); err != nil {
			return err
		}
		n, err := num("ncpu")
		if err != nil {
			return err
		}
		r.NCPU = int(n)
	case "sample":
		s := Sample{At: ts}
		if s.CPU, err = num("cpu"); err != nil {
			return err
		}
		if s.Duty, err = num("duty"); err != nil {
			return err
		}
		r.Samples = append(r.Samples, s)
	case "done":
		r.Done = true
	}
	return nil
}

// ReadReport parses a load run's whole output (a canary's demultiplexed
// log).
func ReadReport(rd io.Reader) (*Report, error) {
	r := &Report{}
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		if err := r.parseLine(sc.Text()); err != nil {
			return r, err
		}
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	if r.Started.IsZero() {
		return r, errors.New("the load canary never reported its start")
	}
	return r, nil
}
