package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/human"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/verify/load"
	"github.com/hy-home/hyhome/internal/workload"
)

// NFR-RES-01 and AC-SPEC-03: the infra tier's memory.
//
// The infra tier is every running container labelled hy-home.tier=infra
// (narrowed by Config.Filters), except verify's own canaries. Limits always
// come from the engine (HostConfig.Memory), the one authority on what the
// kernel enforces. Usage comes from Prometheus when a URL is given, as
// cAdvisor exports it (container_memory_usage_bytes and
// container_memory_working_set_bytes, matched by the container's name), and
// otherwise from the engine's stats API, computed the way cAdvisor computes
// it: usage, and usage minus inactive file pages (total_inactive_file on
// cgroup v1, inactive_file on v2) for the working set.

// MemContainer is one infra container's memory figures.
type MemContainer struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Service string `json:"service,omitempty"`
	// Limit is the engine's memory limit (HostConfig.Memory); 0 is none.
	Limit   int64 `json:"limit_bytes"`
	Samples int   `json:"samples"`
	// MaxUsage and MaxWorkingSet are the largest values seen: usage as
	// container_memory_usage_bytes (page cache included), working set as
	// container_memory_working_set_bytes (usage minus inactive file pages).
	MaxUsage      uint64 `json:"max_usage_bytes"`
	MaxWorkingSet uint64 `json:"max_working_set_bytes"`
	// Headroom is Limit minus MaxUsage (negative: above the limit).
	Headroom int64 `json:"headroom_bytes"`
	// OOMEvents counts the kernel's OOM kills in the container during the window.
	OOMEvents int `json:"oom_events"`
	// Failcnt is cgroup v1's count of times usage hit the limit (engine path).
	Failcnt uint64 `json:"failcnt,omitempty"`
	Pass    bool   `json:"pass"`
	Reason  string `json:"reason,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// IdleResult is NFR-RES-01's measurement.
type IdleResult struct {
	Source     string         `json:"source"`
	HostMemory int64          `json:"host_memory_bytes"`
	WorkingSet uint64         `json:"working_set_bytes"`
	Share      float64        `json:"share"`
	Bound      float64        `json:"bound"`
	Containers []MemContainer `json:"containers"`
}

// LoadResult is the CPU load AC-SPEC-03 held.
type LoadResult struct {
	Target          float64       `json:"target"`
	Tolerance       float64       `json:"tolerance"`
	Baseline        float64       `json:"baseline"`
	Mean            float64       `json:"mean"`
	Min             float64       `json:"min"`
	Max             float64       `json:"max"`
	NCPU            int           `json:"ncpu"`
	DurationSeconds float64       `json:"duration_seconds"`
	Start           time.Time     `json:"start"`
	End             time.Time     `json:"end"`
	Samples         []load.Sample `json:"samples"`
}

// CeilingResult is AC-SPEC-03's measurement.
type CeilingResult struct {
	Source     string         `json:"source"`
	Load       LoadResult     `json:"load"`
	Containers []MemContainer `json:"containers"`
}

// DetailKey is where a report's JSON holds the measurement.
func (m *IdleResult) DetailKey() string { return "idle" }

// Describe lays out each container's memory and the tier's share.
func (m *IdleResult) Describe(d *report.Detail) {
	d.Linef("source: %s", m.Source)
	rows := [][]string{{"container", "working set", "usage", "limit", "samples", ""}}
	for _, c := range m.Containers {
		rows = append(rows, []string{c.Name, human.Bytes(int64(c.MaxWorkingSet)), human.Bytes(int64(c.MaxUsage)), limitHuman(c.Limit), fmt.Sprint(c.Samples), c.Reason})
	}
	d.Table(rows)
	d.Linef("total working set %s of %s host memory = %.2f%% (bound %.0f%%)", human.Bytes(int64(m.WorkingSet)), human.Bytes(m.HostMemory), 100*m.Share, 100*m.Bound)
}

// DetailKey is where a report's JSON holds the measurement.
func (c *CeilingResult) DetailKey() string { return "ceiling" }

// Describe lays out the load held and each container against its limit.
func (c *CeilingResult) Describe(d *report.Detail) {
	l := c.Load
	if len(l.Samples) > 0 {
		d.Linef("load: host CPU mean %.1f%% (min %.1f%%, max %.1f%%) over %s on %d CPUs; target %.0f%%, baseline before the load %.1f%%",
			100*l.Mean, 100*l.Min, 100*l.Max, durHuman(l.DurationSeconds), l.NCPU, 100*l.Target, 100*l.Baseline)
	}
	d.Linef("memory source: %s", c.Source)
	if len(c.Containers) == 0 {
		return
	}
	rows := [][]string{{"", "container", "limit", "max usage", "max working set", "headroom", "samples", ""}}
	for _, m := range c.Containers {
		v := "PASS"
		if !m.Pass {
			v = "FAIL"
		}
		note := m.Reason
		if note == "" {
			note = m.Warning
		}
		head := "-"
		switch {
		case m.OOMEvents > 0:
			head = "none: OOM-killed"
		case m.Limit > 0 && m.Samples > 0:
			head = fmt.Sprintf("%s (%.0f%%)", human.Bytes(m.Headroom), 100*float64(m.Headroom)/float64(m.Limit))
		}
		rows = append(rows, []string{v, m.Name, limitHuman(m.Limit), human.Bytes(int64(m.MaxUsage)), human.Bytes(int64(m.MaxWorkingSet)), head, fmt.Sprint(m.Samples), note})
	}
	d.Table(rows)
}

func limitHuman(n int64) string {
	if n <= 0 {
		return "none"
	}
	return human.Bytes(n)
}

// infraContainer is one container of the infra tier.
type infraContainer struct {
	id, name, service string
	limit             int64
}

// listInfra lists the running infra containers and their limits.
func (v *Verifier) listInfra(ctx context.Context) ([]infraContainer, error) {
	f, err := source.ParseFilters(append(append([]string(nil), v.cfg.Filters...), "label="+workload.LabelTier+"=infra"))
	if err != nil {
		return nil, err
	}
	list, err := v.cfg.Engine.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing infra containers: %w", err)
	}
	var out []infraContainer
	for _, c := range list.Items {
		if _, canary := c.Labels[LabelCanary]; canary {
			continue
		}
		ins, err := v.cfg.Engine.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			// Gone between list and inspect: not running, not measured.
			v.log.Debug("infra container gone before inspect", "id", c.ID, "err", err)
			continue
		}
		ic := infraContainer{id: c.ID, name: strings.TrimPrefix(ins.Container.Name, "/")}
		if ins.Container.HostConfig != nil {
			ic.limit = ins.Container.HostConfig.Memory
		}
		ic.service = c.Labels[workload.LabelComposeService]
		if ic.service == "" {
			ic.service = c.Labels[source.LabelSwarmServiceName]
		}
		out = append(out, ic)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// memReading is one stats sample of one container.
type memReading struct {
	usage, workingSet, failcnt uint64
}

// readStats takes one engine stats sample (one-shot: no second sample for
// CPU deltas, which memory does not need).
func (v *Verifier) readStats(ctx context.Context, id string) (memReading, bool, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := v.cfg.Engine.ContainerStats(sctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return memReading{}, false, err
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 4<<20)).Decode(&st); err != nil {
		return memReading{}, false, fmt.Errorf("decoding stats: %w", err)
	}
	return memFromStats(st.MemoryStats)
}

// memFromStats computes usage and working set from the engine's memory
// stats; ok is false when the container had no memory cgroup (not running).
func memFromStats(ms container.MemoryStats) (memReading, bool, error) {
	if ms.Usage == 0 && len(ms.Stats) == 0 {
		return memReading{}, false, nil
	}
	inactive, ok := ms.Stats["total_inactive_file"] // cgroup v1, hierarchical
	if !ok {
		inactive = ms.Stats["inactive_file"] // cgroup v2
	}
	r := memReading{usage: ms.Usage, failcnt: ms.Failcnt}
	if inactive < ms.Usage {
		r.workingSet = ms.Usage - inactive
	}
	return r, true, nil
}

// memAcc accumulates one container's samples.
type memAcc struct {
	samples          int
	maxUsage, maxWS  uint64
	failcnt0, failcn uint64
	errs             int
	lastErr          error
}

func (a *memAcc) add(r memReading) {
	if a.samples == 0 {
		a.failcnt0 = r.failcnt
	}
	a.samples++
	a.maxUsage = max(a.maxUsage, r.usage)
	a.maxWS = max(a.maxWS, r.workingSet)
	a.failcn = r.failcnt
}

// sampleEngine takes one stats sample of every container, concurrently.
func (v *Verifier) sampleEngine(ctx context.Context, cs []infraContainer, acc map[string]*memAcc) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok, err := v.readStats(ctx, c.id)
			mu.Lock()
			defer mu.Unlock()
			a := acc[c.id]
			switch {
			case err != nil:
				a.errs++
				a.lastErr = err
			case ok:
				a.add(r)
			}
		}()
	}
	wg.Wait()
}

// --- Prometheus ------------------------------------------------------------------

// nameMatcher is a PromQL regex matching exactly these container names.
func nameMatcher(cs []infraContainer) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = regexp.QuoteMeta(c.name)
	}
	return "^(?:" + strings.Join(parts, "|") + ")$"
}

// promMemory reads, per container, the largest usage and working set in the
// window (end-rng, end] and how many usage samples fell in it.
func (v *Verifier) promMemory(ctx context.Context, cs []infraContainer, end time.Time, rng time.Duration, acc map[string]*memAcc) error {
	sel := fmt.Sprintf(`{name=~%q}`, nameMatcher(cs))
	r := fmt.Sprintf("[%dms]", max(rng.Milliseconds(), 1))
	usage, err := v.prom.byName(ctx, "max by (name) (max_over_time(container_memory_usage_bytes"+sel+r+"))", end)
	if err != nil {
		return err
	}
	ws, err := v.prom.byName(ctx, "max by (name) (max_over_time(container_memory_working_set_bytes"+sel+r+"))", end)
	if err != nil {
		return err
	}
	count, err := v.prom.byName(ctx, "max by (name) (count_over_time(container_memory_usage_bytes"+sel+r+"))", end)
	if err != nil {
		return err
	}
	for _, c := range cs {
		a := acc[c.id]
		n, ok := count[c.name]
		if !ok {
			continue
		}
		a.samples = int(n)
		a.maxUsage = uint64(math.Max(0, usage[c.name]))
		a.maxWS = uint64(math.Max(0, ws[c.name]))
	}
	return nil
}

// fromPrometheus reports whether memory is read from Prometheus.
func (v *Verifier) fromPrometheus() bool { return v.cfg.MemorySource == MemoryPrometheus }

func (v *Verifier) memorySource() string {
	if v.fromPrometheus() {
		return "Prometheus " + redactURL(v.cfg.PrometheusURL) + ": container_memory_usage_bytes, container_memory_working_set_bytes (cAdvisor), by container name"
	}
	return fmt.Sprintf("engine stats API (cgroup v%s): usage, and usage minus inactive file pages as cAdvisor's working set", v.engine.CgroupVersion)
}

// --- NFR-RES-01 ------------------------------------------------------------------

// checkNFRRes01 sums the infra tier's working set at idle against the host's
// memory (the engine's MemTotal). The working set, not usage, is what
// "utilise" means here: page cache the kernel can drop at will is not used
// in the sense of the density budget (cAdvisor and the kubelet judge
// memory pressure on the same figure).
func (v *Verifier) checkNFRRes01(ctx context.Context, r *report.CheckResult) {
	cs, err := v.listInfra(ctx)
	if err != nil {
		r.Error("%v", err)
		return
	}
	m := &IdleResult{Source: v.memorySource(), HostMemory: v.engine.MemTotal, Bound: NFRRes01Share}
	r.Detail = m
	if len(cs) == 0 {
		r.Fail("no running container is labelled %s=infra: no infrastructure service was found, so nothing was measured (the check fails rather than pass vacuously)", workload.LabelTier)
		return
	}
	if m.HostMemory <= 0 {
		r.Error("the engine did not report the host's memory (Info.MemTotal)")
		return
	}
	acc := newAccs(cs)
	if v.fromPrometheus() {
		m.Source += fmt.Sprintf(", the largest value in the last %s", v.cfg.IdleLookback)
		if err := v.promMemory(ctx, cs, v.engineNow(), v.cfg.IdleLookback, acc); err != nil {
			r.Error("%v", err)
			return
		}
	} else {
		m.Source += fmt.Sprintf(", the largest of %d samples %s apart", v.cfg.IdleSamples, v.cfg.SampleInterval)
		for i := range v.cfg.IdleSamples {
			if i > 0 && !v.sleep(ctx, v.cfg.SampleInterval) {
				r.Error("interrupted")
				return
			}
			v.sampleEngine(ctx, cs, acc)
		}
	}
	var unmeasured []string
	for _, c := range cs {
		a := acc[c.id]
		mc := memContainer(c, a)
		if a.samples == 0 {
			mc.Reason = "no sample"
			if a.lastErr != nil {
				mc.Reason += ": " + a.lastErr.Error()
			}
			unmeasured = append(unmeasured, c.name)
		}
		mc.Pass = a.samples > 0
		m.WorkingSet += a.maxWS
		m.Containers = append(m.Containers, mc)
	}
	m.Share = float64(m.WorkingSet) / float64(m.HostMemory)
	if len(unmeasured) > 0 {
		r.Fail("no memory figure for %s: the infra tier's total is unknown (is cAdvisor scraping them?)", strings.Join(unmeasured, ", "))
		return
	}
	what := fmt.Sprintf("the infra tier's working set (%s) is %s of %s host memory = %.2f%%", human.Plural(len(cs), "container"), human.Bytes(int64(m.WorkingSet)), human.Bytes(m.HostMemory), 100*m.Share)
	if m.Share >= NFRRes01Share {
		r.Fail("%s, at or above %.0f%%", what, 100*NFRRes01Share)
		return
	}
	r.Pass("%s (< %.0f%%)", what, 100*NFRRes01Share)
}

func newAccs(cs []infraContainer) map[string]*memAcc {
	acc := make(map[string]*memAcc, len(cs))
	for _, c := range cs {
		acc[c.id] = &memAcc{}
	}
	return acc
}

func memContainer(c infraContainer, a *memAcc) MemContainer {
	mc := MemContainer{
		Name: c.name, ID: c.id, Service: c.service, Limit: c.limit,
		Samples: a.samples, MaxUsage: a.maxUsage, MaxWorkingSet: a.maxWS,
	}
	if c.limit > 0 {
		mc.Headroom = c.limit - int64(a.maxUsage)
	}
	if a.failcn > a.failcnt0 {
		mc.Failcnt = a.failcn - a.failcnt0
	}
	return mc
}

// --- AC-SPEC-03 ------------------------------------------------------------------

// checkACSpec03 holds the host at the CPU target with the load canary and
// watches the infra tier's memory for the window. A hard limit cannot be
// exceeded: the kernel reclaims, and kills the container when it cannot. So
// the check fails when a container has no limit (nothing bounds it), when
// the kernel OOM-killed one in the window (it reached its limit and died,
// which is what "exceeding" looks like from outside), when a sample shows
// usage above the limit (a limit changed under it, or a source that
// disagrees with the engine), or when a container could not be measured.
// A working set within HeadroomWarn of the limit is a warning: the next
// load may be the one that kills it.
func (v *Verifier) checkACSpec03(ctx context.Context, r *report.CheckResult) {
	cs, err := v.listInfra(ctx)
	if err != nil {
		r.Error("%v", err)
		return
	}
	res := &CeilingResult{Source: v.memorySource(), Load: LoadResult{Target: v.cfg.LoadTarget, Tolerance: v.cfg.LoadTolerance}}
	r.Detail = res
	if len(cs) == 0 {
		r.Fail("no running container is labelled %s=infra: no baseline infrastructure service was found, so nothing was measured (the check fails rather than pass vacuously)", workload.LabelTier)
		return
	}
	acc := newAccs(cs)
	byID := map[string]infraContainer{}
	for _, c := range cs {
		byID[c.id] = c
	}

	// OOM kills and deaths in the window, straight from the engine.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ooms, deaths, watchDone := v.watchInfra(wctx, byID)

	token := newToken()
	spec := v.canaries.loadCanary(token)
	id, err := v.canaries.start(ctx, spec)
	if err != nil {
		r.Error("%v", err)
		return
	}
	defer v.canaries.remove(ctx, id)

	// Sample while the canary runs (engine path); it exits by itself.
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		wr := v.cfg.Engine.ContainerWait(ctx, id, client.ContainerWaitOptions{})
		select {
		case <-wr.Result:
		case <-wr.Error:
		case <-ctx.Done():
		}
	}()
	if !v.fromPrometheus() {
		res.Source += fmt.Sprintf(", every %s during the window", v.cfg.SampleInterval)
	sampling:
		for {
			v.sampleEngine(ctx, cs, acc)
			t := v.cfg.Clock.NewTimer(v.cfg.SampleInterval)
			select {
			case <-exited:
				t.Stop()
				break sampling
			case <-t.C():
			}
		}
	} else {
		<-exited
	}
	if ctx.Err() != nil {
		r.Error("interrupted")
		return
	}
	stopWatch()
	<-watchDone

	// The window, from the canary's own report.
	rc, err := v.cfg.Engine.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		r.Error("reading the load canary's report: %v", err)
		return
	}
	logs, err := demux(rc)
	rc.Close()
	if err != nil {
		r.Error("reading the load canary's report: %v", err)
		return
	}
	lr, err := load.ReadReport(logs)
	if err != nil {
		r.Error("the load canary's report: %v", err)
		return
	}
	if len(lr.Samples) == 0 {
		r.Error("the load canary reported no sample")
		return
	}
	l := &res.Load
	l.Baseline, l.NCPU, l.Samples = lr.Baseline, lr.NCPU, lr.Samples
	l.Start, l.End = lr.Started.UTC(), lr.Samples[len(lr.Samples)-1].At.UTC()
	l.DurationSeconds = seconds(l.End.Sub(l.Start))
	// The first interval includes the controller settling from its
	// baseline estimate; the Given is judged on the rest.
	judged := lr.Samples
	if len(judged) > 2 {
		judged = judged[1:]
	}
	l.Min = 1
	for _, s := range judged {
		l.Mean += s.CPU
		l.Min = math.Min(l.Min, s.CPU)
		l.Max = math.Max(l.Max, s.CPU)
	}
	l.Mean /= float64(len(judged))

	if v.fromPrometheus() {
		res.Source += fmt.Sprintf(", the largest value in the load window %s to %s", l.Start.Format(time.TimeOnly), l.End.Format(time.TimeOnly))
		if err := v.promMemory(ctx, cs, l.End, l.End.Sub(l.Start), acc); err != nil {
			r.Error("%v", err)
			return
		}
	}

	var failed []string
	for _, c := range cs {
		a := acc[c.id]
		mc := memContainer(c, a)
		mc.OOMEvents = ooms[c.id]
		var reasons []string
		if c.limit <= 0 {
			reasons = append(reasons, "no memory limit: nothing bounds it")
		}
		if a.samples == 0 {
			why := "no sample in the load window"
			if a.lastErr != nil {
				why += ": " + a.lastErr.Error()
			} else if v.fromPrometheus() {
				why += " (is cAdvisor scraping it, and is the scrape interval shorter than the window?)"
			}
			reasons = append(reasons, why)
		}
		if c.limit > 0 && a.samples > 0 && int64(a.maxUsage) > c.limit {
			reasons = append(reasons, fmt.Sprintf("usage %s above its %s limit", human.Bytes(int64(a.maxUsage)), human.Bytes(c.limit)))
		}
		if mc.OOMEvents > 0 {
			reasons = append(reasons, fmt.Sprintf("OOM-killed %d time(s) in the window: it reached its limit", mc.OOMEvents))
		}
		if d := deaths[c.id]; d > 0 && mc.OOMEvents == 0 {
			r.Warn("%s died %d time(s) during the load window", c.name, d)
		}
		mc.Pass = len(reasons) == 0
		mc.Reason = strings.Join(reasons, "; ")
		if mc.Pass && c.limit > 0 && float64(a.maxWS) > (1-v.cfg.HeadroomWarn)*float64(c.limit) {
			mc.Warning = fmt.Sprintf("working set within %.0f%% of its limit", 100*v.cfg.HeadroomWarn)
			r.Warn("%s: working set %s of its %s limit", c.name, human.Bytes(int64(a.maxWS)), human.Bytes(c.limit))
		}
		if mc.Failcnt > 0 {
			r.Warn("%s hit its limit %d time(s) in the window (memory.failcnt): the kernel reclaimed to keep it under", c.name, mc.Failcnt)
		}
		if !mc.Pass {
			failed = append(failed, c.name+": "+mc.Reason)
		}
		res.Containers = append(res.Containers, mc)
	}

	load := fmt.Sprintf("host CPU %.1f%% mean over %s (target %.0f%%)", 100*l.Mean, durHuman(l.DurationSeconds), 100*l.Target)
	var problems []string
	if l.Mean < l.Target-l.Tolerance {
		problems = append(problems, fmt.Sprintf("below the %.0f%% the check's Given requires (target - %.0f points): the ceiling was not tested under the specified load", 100*(l.Target-l.Tolerance), 100*l.Tolerance))
	}
	if len(failed) > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d infra container(s) fail: %s", countFailed(res.Containers), len(cs), strings.Join(failed, "; ")))
	}
	if len(problems) > 0 {
		r.Fail("%s, %s", load, strings.Join(problems, "; "))
		return
	}
	r.Pass("%s; every infra container (%s) has a memory limit and stayed within it", load, human.Plural(len(cs), "container"))
}

func countFailed(cs []MemContainer) int {
	n := 0
	for _, c := range cs {
		if !c.Pass {
			n++
		}
	}
	return n
}

// watchInfra counts OOM kills and deaths of the given containers until ctx
// ends; done closes once the counts are final.
func (v *Verifier) watchInfra(ctx context.Context, cs map[string]infraContainer) (ooms, deaths map[string]int, done <-chan struct{}) {
	ooms, deaths = map[string]int{}, map[string]int{}
	d := make(chan struct{})
	f := client.Filters{}
	f.Add("type", "container")
	f.Add("event", "oom")
	f.Add("event", "die")
	f.Add("label", workload.LabelTier+"=infra")
	// Since now, on the engine's clock (docker info's SystemTime; this
	// host's if the engine does not say): the engine answers GET /events'
	// headers before it subscribes the stream, and the load starts as soon
	// as this returns; since= has the engine replay what happened in
	// between, and nothing from before the window.
	now, err := docker.EngineNow(ctx, v.cfg.Engine)
	if err != nil {
		now = time.Now()
	}
	evs := v.cfg.Engine.Events(ctx, client.EventsListOptions{Filters: f, Since: docker.Since(now)})
	go func() {
		defer close(d)
		for {
			select {
			case m, ok := <-evs.Messages:
				if !ok {
					return
				}
				if _, mine := cs[m.Actor.ID]; !mine {
					continue
				}
				switch m.Action {
				case "oom":
					ooms[m.Actor.ID]++
				case "die":
					deaths[m.Actor.ID]++
				}
			case err := <-evs.Err:
				if err != nil && !errors.Is(err, context.Canceled) {
					v.log.Warn("engine events for the load window", "err", err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return ooms, deaths, d
}
