package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/report"
)

// AC-SPEC-02 and NFR-OBS-01, measured with crash canaries.
//
// A trial starts a canary labelled hy-home.job=infra, hy-home.tier=gateway
// that logs one line carrying a fresh token and exits 1, then asks Loki's
// query_range for the spec's selector with that token every PollInterval
// until both the line and the canary's die event (the shipper's event line
// names the container, whose name carries the token) are returned.
//
// The events' times are the engine's own: the log line's timestamp from the
// logs API and the die event's from the events API, never the shipper's
// stamps (a shipper stamping entries on arrival would hide its own delay).
// The time found is when the first answer containing the entry arrived, so
// a latency is an upper bound, at most one poll interval plus one query
// round trip above the truth; that errs towards failing.

// lokiSelector is the spec's stream selector (AC-SPEC-02).
const lokiSelector = `{job="infra", tier="gateway"}`

// lokiQueryFor is the LogQL query of one trial.
func lokiQueryFor(token string) string { return lokiSelector + ` |= "` + token + `"` }

// dieEventLine recognises the die event of the canary in a Loki line. It
// follows hyhome ship's event lines (`type=container action=die name=...`);
// the token in the container's name was already matched by the query.
func dieEventLine(line string) bool { return strings.Contains(line, "action=die") }

// Distribution summarises latencies in seconds. Percentiles are nearest-rank:
// with five trials p95 is the slowest one, never an interpolation below it.
type Distribution struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_seconds"`
	P50  float64 `json:"p50_seconds"`
	P95  float64 `json:"p95_seconds"`
	Max  float64 `json:"max_seconds"`
	Mean float64 `json:"mean_seconds"`
}

// Trial is one crash canary.
type Trial struct {
	N         int    `json:"n"`
	Token     string `json:"token"`
	Container string `json:"container"`
	// LineAt and DiedAt are the engine's timestamps of the log line and of
	// the die event, on verify's clock.
	LineAt time.Time `json:"line_at,omitzero"`
	DiedAt time.Time `json:"died_at,omitzero"`
	// LogSeconds and DieSeconds are from the event to the first Loki answer
	// that contained it; nil when it was not found within the trial timeout.
	LogSeconds *float64 `json:"log_seconds"`
	DieSeconds *float64 `json:"die_seconds"`
	// Gateway is true when the trial also sent a request through the
	// gateway (Config.GatewayURL); GatewayStatus is the status it answered
	// (0 when it could not be sent) and GatewaySeconds the time from sending
	// it to the first Loki answer containing the gateway's access log line
	// of it (nil when not found).
	Gateway        bool     `json:"gateway,omitempty"`
	GatewayStatus  int      `json:"gateway_status,omitempty"`
	GatewaySeconds *float64 `json:"gateway_seconds,omitempty"`
	// Queries is how many query_range requests the trial made.
	Queries int    `json:"queries"`
	Error   string `json:"error,omitempty"`
}

// worst is the trial's latency for the verdicts: its slowest item, or nil
// when any was never found.
func (t *Trial) worst() *float64 {
	if t.LogSeconds == nil || t.DieSeconds == nil || (t.Gateway && t.GatewaySeconds == nil) {
		return nil
	}
	w := max(*t.LogSeconds, *t.DieSeconds)
	if t.Gateway {
		w = max(w, *t.GatewaySeconds)
	}
	return &w
}

// LatencyResult is the trials AC-SPEC-02 and NFR-OBS-01 share.
type LatencyResult struct {
	Loki                string  `json:"loki"`
	Query               string  `json:"query"`
	PollIntervalSeconds float64 `json:"poll_interval_seconds"`
	TimeoutSeconds      float64 `json:"trial_timeout_seconds"`
	Trials              []Trial `json:"trials"`
	// Gateway is the URL the trials' gateway requests went to ("" when none).
	Gateway    string       `json:"gateway,omitempty"`
	Log        Distribution `json:"log_line"`
	Die        Distribution `json:"die_event"`
	GatewayLog Distribution `json:"gateway_access_log,omitzero"`
	Worst      Distribution `json:"worst"`
	// Error is set when no trial could be run at all.
	Error string `json:"error,omitempty"`
	// Status is the trials' ERROR when they could not run (for both checks).
	errored bool
}

// DetailKey is where a report's JSON holds the trials.
func (l *LatencyResult) DetailKey() string { return "latency" }

// ShownAbove stands for the trials at the second check that judges them.
func (l *LatencyResult) ShownAbove() string { return "trials above" }

// Describe lays out the query, each trial and the distributions.
func (l *LatencyResult) Describe(d *report.Detail) {
	d.Linef("query_range %s on %s, every %s, up to %s per trial", l.Query, l.Loki, durHuman(l.PollIntervalSeconds), durHuman(l.TimeoutSeconds))
	if len(l.Trials) == 0 {
		return // the summary says why
	}
	if l.Error != "" {
		d.Linef("stopped: %s", l.Error)
	}
	if l.Gateway != "" {
		d.Linef("and each trial's request through the gateway %s%s<token>, its access log line timed from the request", l.Gateway, gatewayPathPrefix)
	}
	rows := [][]string{{"trial", "canary", "log line", "die event", "queries", ""}}
	if l.Gateway != "" {
		rows[0] = []string{"trial", "canary", "log line", "die event", "access log", "status", "queries", ""}
	}
	for _, t := range l.Trials {
		if l.Gateway != "" {
			rows = append(rows, []string{fmt.Sprint(t.N), t.Container, secs(t.LogSeconds), secs(t.DieSeconds), secs(t.GatewaySeconds), fmt.Sprint(t.GatewayStatus), fmt.Sprint(t.Queries), t.Error})
			continue
		}
		rows = append(rows, []string{fmt.Sprint(t.N), t.Container, secs(t.LogSeconds), secs(t.DieSeconds), fmt.Sprint(t.Queries), t.Error})
	}
	d.Table(rows)
	dist := func(name string, x Distribution) {
		if x.N > 0 {
			d.Linef("%-10s p50 %.3f s  p95 %.3f s  max %.3f s  (min %.3f s, mean %.3f s, n=%d)", name, x.P50, x.P95, x.Max, x.Min, x.Mean, x.N)
		}
	}
	dist("log line", l.Log)
	dist("die event", l.Die)
	dist("access log", l.GatewayLog)
	dist("worst", l.Worst)
}

func secs(p *float64) string {
	if p == nil {
		return "not found"
	}
	return fmt.Sprintf("%.3f s", *p)
}

func durHuman(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// runTrials runs the crash canaries one after another.
func (v *Verifier) runTrials(ctx context.Context) *LatencyResult {
	res := &LatencyResult{
		Loki:                redactURL(v.cfg.LokiURL),
		Query:               lokiQueryFor("<token>"),
		PollIntervalSeconds: seconds(v.cfg.PollInterval),
		TimeoutSeconds:      seconds(v.cfg.TrialTimeout),
		Gateway:             redactURL(v.cfg.GatewayURL),
	}
	// One query first: an unreachable Loki or refused credentials is one
	// clear reason, not five timeouts.
	now := v.engineNow()
	if _, err := v.loki.QueryRange(ctx, lokiSelector, now.Add(-time.Minute), now, 1); err != nil {
		res.Error = fmt.Sprintf("Loki at %s cannot be queried: %v", res.Loki, err)
		return res
	}
	for n := 1; n <= v.cfg.Trials && ctx.Err() == nil; n++ {
		t, err := v.trial(ctx, n)
		if err != nil {
			res.Error = err.Error()
			res.errored = true
			break
		}
		res.Trials = append(res.Trials, t)
		v.log.Info("trial", "n", n, "log_seconds", fmtPtr(t.LogSeconds), "die_seconds", fmtPtr(t.DieSeconds), "queries", t.Queries, "error", t.Error)
	}
	var logs, dies, gws, worst []float64
	for _, t := range res.Trials {
		if t.LogSeconds != nil {
			logs = append(logs, *t.LogSeconds)
		}
		if t.DieSeconds != nil {
			dies = append(dies, *t.DieSeconds)
		}
		if t.GatewaySeconds != nil {
			gws = append(gws, *t.GatewaySeconds)
		}
		if w := t.worst(); w != nil {
			worst = append(worst, *w)
		}
	}
	res.Log, res.Die, res.GatewayLog, res.Worst = distribution(logs), distribution(dies), distribution(gws), distribution(worst)
	return res
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 3, 64)
}

// trial runs one crash canary. An error means the canary could not be run
// (the remaining trials would fail the same way); what Loki did or did not
// return is the trial's result, not an error.
func (v *Verifier) trial(ctx context.Context, n int) (Trial, error) {
	token := newToken()
	spec := v.canaries.crashCanary(token)
	t := Trial{N: n, Token: token, Container: spec.name}

	// Subscribe to the canary's die event before it exists. `since` makes
	// the engine replay what happened before the subscription was in
	// place, so a canary that dies within microseconds is not missed.
	ectx, cancelEvents := context.WithCancel(ctx)
	defer cancelEvents()
	f := client.Filters{}
	f.Add("type", string(events.ContainerEventType))
	f.Add("event", string(events.ActionDie))
	f.Add("label", LabelToken+"="+token)
	since := v.engineNow().Add(-5 * time.Second)
	evs := v.cfg.Engine.Events(ectx, client.EventsListOptions{Filters: f, Since: strconv.FormatInt(since.Unix(), 10)})
	died := make(chan time.Time, 1)
	go func() {
		for {
			select {
			case m, ok := <-evs.Messages:
				if !ok {
					return
				}
				if m.Action == events.ActionDie && m.TimeNano > 0 {
					died <- time.Unix(0, m.TimeNano)
					return
				}
			case <-evs.Err:
				return
			case <-ectx.Done():
				return
			}
		}
	}()

	id, err := v.canaries.start(ctx, spec)
	if err != nil {
		return t, err
	}
	defer v.canaries.remove(ctx, id)
	started := v.cfg.Clock.Now()
	deadline := started.Add(v.cfg.TrialTimeout)

	// The gateway's request, while the canary runs: its access log line is
	// a third item the same query must return.
	var gwSent, gwFound time.Time
	var gwErr error
	if v.cfg.GatewayURL != "" {
		t.Gateway = true
		gwSent = v.cfg.Clock.Now()
		t.GatewayStatus, gwErr = v.gatewayRequest(ctx, token)
	}
	gatewayDone := func() bool { return !t.Gateway || gwErr != nil || !gwFound.IsZero() }

	var logFound, dieFound time.Time
	var lastErr error
	query := lokiQueryFor(token)
	for {
		// The window is generous on both sides: entries carry the engine's
		// timestamps, which need not agree with this clock.
		en := v.engineNow()
		entries, err := v.loki.QueryRange(ctx, query, en.Add(-5*time.Minute), en.Add(5*time.Minute), 100)
		recv := v.cfg.Clock.Now()
		t.Queries++
		if err != nil {
			lastErr = err
		}
		for _, e := range entries {
			if logFound.IsZero() && hasCanaryLine(e.Line, token) {
				logFound = recv
			}
			if dieFound.IsZero() && dieEventLine(e.Line) {
				dieFound = recv
			}
			if t.Gateway && gwFound.IsZero() && hasGatewayLine(e.Line, token) {
				gwFound = recv
			}
		}
		if (!logFound.IsZero() && !dieFound.IsZero() && gatewayDone()) || !recv.Before(deadline) || ctx.Err() != nil {
			break
		}
		timer := v.cfg.Clock.NewTimer(v.cfg.PollInterval)
		select {
		case <-timer.C():
		case <-ctx.Done():
			timer.Stop()
		}
	}
	if ctx.Err() != nil {
		return t, ctx.Err()
	}

	// The engine's times of the two events.
	var diedAt time.Time
	select {
	case diedAt = <-died:
	case <-time.After(5 * time.Second):
	}
	if diedAt.IsZero() {
		// No event seen (a filtering proxy, say): the exit time the engine
		// recorded is the same instant to within its bookkeeping.
		if ins, err := v.cfg.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil && ins.Container.State != nil {
			diedAt, _ = time.Parse(time.RFC3339Nano, ins.Container.State.FinishedAt)
		}
	}
	lineAt, err := v.lineTimestamp(ctx, id, token)
	if err != nil {
		t.Error = err.Error()
	}
	if !lineAt.IsZero() {
		t.LineAt = v.local(lineAt).UTC()
	}
	if !diedAt.IsZero() {
		t.DiedAt = v.local(diedAt).UTC()
	}

	var missing []string
	switch {
	case logFound.IsZero():
		missing = append(missing, "log line")
	case lineAt.IsZero():
		missing = append(missing, "the log line's engine timestamp")
	default:
		s := seconds(logFound.Sub(v.local(lineAt)))
		t.LogSeconds = &s
	}
	switch {
	case dieFound.IsZero():
		missing = append(missing, "die event")
	case diedAt.IsZero():
		missing = append(missing, "the die event's engine timestamp")
	default:
		s := seconds(dieFound.Sub(v.local(diedAt)))
		t.DieSeconds = &s
	}
	switch {
	case !t.Gateway:
	case gwErr != nil:
		missing = append(missing, "gateway access log (the request failed: "+gwErr.Error()+")")
	case gwFound.IsZero():
		missing = append(missing, fmt.Sprintf("gateway access log of the request (answered %d)", t.GatewayStatus))
	default:
		s := seconds(gwFound.Sub(gwSent))
		t.GatewaySeconds = &s
	}
	if len(missing) > 0 && t.Error == "" {
		t.Error = "no " + strings.Join(missing, ", no ") + " within " + v.cfg.TrialTimeout.String()
		if lastErr != nil {
			t.Error += "; last query error: " + lastErr.Error()
		}
	}
	return t, nil
}

// lineTimestamp reads the canary's log from the engine and returns the
// engine's timestamp of its token line.
func (v *Verifier) lineTimestamp(ctx context.Context, id, token string) (time.Time, error) {
	// The canary has exited (its die event was seen or the trial timed
	// out); wait briefly for the engine to finish its log if not.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	wr := v.cfg.Engine.ContainerWait(wctx, id, client.ContainerWaitOptions{})
	select {
	case <-wr.Result:
	case <-wr.Error:
	case <-wctx.Done():
	}
	rc, err := v.cfg.Engine.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the canary's log from the engine: %w", err)
	}
	defer rc.Close()
	out, err := demux(rc)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the canary's log from the engine: %w", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if !ok || !hasCanaryLine(line, token) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return time.Time{}, fmt.Errorf("the engine's timestamp %q of the canary's line: %w", ts, err)
		}
		return at, nil
	}
	return time.Time{}, errors.New("the canary's log has no token line (did the canary image run `hyhome canary`?)")
}

// latencyCheck is AC-SPEC-02 (bound 5 s) or NFR-OBS-01 (2 s): the first of
// them runs the trials, both judge them.
func latencyCheck(bound time.Duration) func(*Verifier, context.Context, *report.CheckResult) {
	return func(v *Verifier, ctx context.Context, res *report.CheckResult) {
		if v.trials == nil {
			v.trials = v.runTrials(ctx)
		}
		latencyVerdict(res, v.trials, bound)
	}
}

// latencyVerdict judges the shared trials against bound. A trial counts at
// its slower item: the log line and the die event must both be found within
// the bound.
func latencyVerdict(r *report.CheckResult, l *LatencyResult, bound time.Duration) {
	r.Detail = l
	if l.errored {
		r.Error("%s", l.Error)
		return
	}
	if len(l.Trials) == 0 {
		r.Fail("%s", l.Error)
		return
	}
	var over, lost []string
	for _, t := range l.Trials {
		w := t.worst()
		switch {
		case w == nil:
			lost = append(lost, fmt.Sprintf("trial %d: %s", t.N, t.Error))
		case *w >= bound.Seconds():
			over = append(over, fmt.Sprintf("trial %d %.3f s", t.N, *w))
		}
	}
	figures := ""
	if l.Worst.N > 0 {
		figures = fmt.Sprintf("; p50 %.3f s, p95 %.3f s, max %.3f s", l.Worst.P50, l.Worst.P95, l.Worst.Max)
	}
	n := len(l.Trials)
	switch {
	case len(lost) > 0:
		r.Fail("%d of %d trial(s) not found in Loki: %s%s", len(lost), n, strings.Join(lost, "; "), figures)
		return
	case len(over) > 0:
		r.Fail("%d of %d trial(s) at or over %s: %s%s", len(over), n, bound, strings.Join(over, ", "), figures)
		return
	}
	items := "log line and die event"
	if l.Gateway != "" {
		items = "log line, die event and gateway access log"
	}
	r.Pass("%d of %d trials: %s found within %s%s", n, n, items, bound, figures)
	if l.Error != "" {
		r.Warn("%s", l.Error)
	}
}

// demux reads a non-TTY container log stream (stdout and stderr frames) to
// its end and returns the lines of both streams, in the order received.
func demux(r io.Reader) (io.Reader, error) {
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(r, 16<<20)); err != nil {
		return nil, err
	}
	return &out, nil
}
