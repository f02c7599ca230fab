package verify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
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

type lokiEntry struct {
	ts     time.Time
	line   string
	labels map[string]string
}

// lokiQuery runs query_range and returns the entries, oldest first.
func (v *Verifier) lokiQuery(ctx context.Context, query string, start, end time.Time, limit int) ([]lokiEntry, error) {
	q := url.Values{
		"query":     {query},
		"start":     {strconv.FormatInt(start.UnixNano(), 10)},
		"end":       {strconv.FormatInt(end.UnixNano(), 10)},
		"limit":     {strconv.Itoa(limit)},
		"direction": {"forward"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.LokiURL+"/loki/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query_range: %w", unwrapURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("query_range: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query_range: it answered %s: %s", resp.Status, truncate(strings.TrimSpace(string(body)), 200))
	}
	var doc struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Stream map[string]string   `json:"stream"`
				Values [][]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("query_range: decoding the answer: %w", err)
	}
	if doc.Status != "success" || doc.Data.ResultType != "streams" {
		return nil, fmt.Errorf("query_range: status %q, result type %q: want success, streams", doc.Status, doc.Data.ResultType)
	}
	var out []lokiEntry
	for _, st := range doc.Data.Result {
		for _, val := range st.Values {
			// [ts, line] or, with categorised labels, [ts, line, metadata].
			if len(val) < 2 {
				return nil, fmt.Errorf("query_range: a value with %d elements", len(val))
			}
			var tsStr, line string
			if err := json.Unmarshal(val[0], &tsStr); err != nil {
				return nil, fmt.Errorf("query_range: a bad timestamp %s: %w", val[0], err)
			}
			if err := json.Unmarshal(val[1], &line); err != nil {
				return nil, fmt.Errorf("query_range: a bad line: %w", err)
			}
			ns, err := strconv.ParseInt(tsStr, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("query_range: a bad timestamp %q: %w", tsStr, err)
			}
			out = append(out, lokiEntry{ts: time.Unix(0, ns), line: line, labels: st.Stream})
		}
	}
	return out, nil
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
	if _, err := v.lokiQuery(ctx, lokiSelector, now.Add(-time.Minute), now, 1); err != nil {
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

// engineNow is the engine's current time as far as verify can tell.
func (v *Verifier) engineNow() time.Time { return v.cfg.Clock.Now().Add(v.engine.clock.offset) }

// trial runs one crash canary. An error means the canary could not be run
// (the remaining trials would fail the same way); what Loki did or did not
// return is the trial's result, not an error.
func (v *Verifier) trial(ctx context.Context, n int) (Trial, error) {
	token := newToken()
	spec := v.crashCanary(token)
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

	id, err := v.startCanary(ctx, spec)
	if err != nil {
		return t, err
	}
	defer v.remove(ctx, id)
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
		entries, err := v.lokiQuery(ctx, query, en.Add(-5*time.Minute), en.Add(5*time.Minute), 100)
		recv := v.cfg.Clock.Now()
		t.Queries++
		if err != nil {
			lastErr = err
		}
		for _, e := range entries {
			if logFound.IsZero() && hasCanaryLine(e.line, token) {
				logFound = recv
			}
			if dieFound.IsZero() && dieEventLine(e.line) {
				dieFound = recv
			}
			if t.Gateway && gwFound.IsZero() && hasGatewayLine(e.line, token) {
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

// latencyVerdict judges the shared trials for AC-SPEC-02 (5 s) or
// NFR-OBS-01 (2 s). A trial counts at its slower item: the log line and the
// die event must both be found within the bound.
func latencyVerdict(id string, l *LatencyResult) *Result {
	r := newResult(id)
	r.Latency = l
	bound := ACSpec02Bound
	if id == CheckNFRObs01 {
		bound = NFRObs01Bound
	}
	if l.errored {
		return r.error("%s", l.Error)
	}
	if len(l.Trials) == 0 {
		return r.fail("%s", l.Error)
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
		return r.fail("%d of %d trial(s) not found in Loki: %s%s", len(lost), n, strings.Join(lost, "; "), figures)
	case len(over) > 0:
		return r.fail("%d of %d trial(s) at or over %s: %s%s", len(over), n, bound, strings.Join(over, ", "), figures)
	}
	items := "log line and die event"
	if l.Gateway != "" {
		items = "log line, die event and gateway access log"
	}
	r.Status = StatusPass
	r.Summary = fmt.Sprintf("%d of %d trials: %s found within %s%s", n, n, items, bound, figures)
	if l.Error != "" {
		r.warn("%s", l.Error)
	}
	return r
}

// unwrapURL drops net/http's "Get <whole URL>:" prefix, which repeats the
// query string in every message.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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
