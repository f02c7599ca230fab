package verify

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/prometheus/common/model"
	yaml "go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/audit"
	"github.com/hy-home/hyhome/internal/workload"
)

// The alert path (SPEC-SYS-01 §5: "Alertmanager SHALL trigger Slack
// notifications for any hy-home.tier: infra service downtime").
//
// An infra canary is started where the stack's Prometheus discovers
// containers; once Prometheus scrapes it and the availability rules have
// recorded the service, it is killed. Alertmanager's API is watched until an
// alert naming the canary's service is active, and the receivers it was
// routed to are checked for slack_configs. With a Slack receiver address,
// the webhook Alertmanager posts is received too and must name the service.
// Then the canary is started again and the alert must resolve.
//
// With AlertService the target is instead a running infra service of the
// stack itself (compose only): it is stopped (`docker stop`: the restart
// policy leaves it down), its alert and Slack message watched the same way,
// and it is started again, also when the check ends early. It needs no
// silence: the service comes back.
//
// Removing the canary afterwards is a downtime of its own: the stack's rules
// remember every service for 7 days and would page HyHomeServiceMissing
// for it. So verify silences the canary's (unique) service name in
// Alertmanager before removing it.

// amAlert is an alert as Alertmanager's v2 API lists it.
type amAlert struct {
	Labels    map[string]string `json:"labels"`
	StartsAt  time.Time         `json:"startsAt"`
	EndsAt    time.Time         `json:"endsAt"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func (v *Verifier) amDo(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.cfg.AlertmanagerURL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return fmt.Errorf("asking Alertmanager %s %s: %w", method, strings.SplitN(path, "?", 2)[0], unwrapURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading Alertmanager's answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("asking Alertmanager %s %s: it answered %s: %s", method, strings.SplitN(path, "?", 2)[0], resp.Status, truncate(strings.TrimSpace(string(data)), 200))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding Alertmanager's answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// serviceAlerts lists Alertmanager's alerts naming service (the watchdog,
// which names none, is never among them).
func (v *Verifier) serviceAlerts(ctx context.Context, service string) ([]amAlert, error) {
	q := url.Values{"filter": {fmt.Sprintf("service=%q", service)}, "active": {"true"}, "silenced": {"true"}, "inhibited": {"true"}, "unprocessed": {"true"}}
	var alerts []amAlert
	if err := v.amDo(ctx, http.MethodGet, "/api/v2/alerts?"+q.Encode(), nil, &alerts); err != nil {
		return nil, err
	}
	now := v.cfg.Clock.Now()
	out := alerts[:0]
	for _, a := range alerts {
		// Resolved alerts may linger until Alertmanager's next GC.
		if a.Labels["service"] != service || (!a.EndsAt.IsZero() && a.EndsAt.Before(now)) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// slackReceivers returns the names of Alertmanager's receivers that have
// slack_configs, from the configuration it runs (GET /api/v2/status).
func (v *Verifier) slackReceivers(ctx context.Context) (map[string]bool, error) {
	var st struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	if err := v.amDo(ctx, http.MethodGet, "/api/v2/status", nil, &st); err != nil {
		return nil, err
	}
	var cfg struct {
		Receivers []struct {
			Name         string `yaml:"name"`
			SlackConfigs []any  `yaml:"slack_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(st.Config.Original), &cfg); err != nil {
		return nil, fmt.Errorf("reading Alertmanager's configuration from /api/v2/status: %w", err)
	}
	out := map[string]bool{}
	for _, r := range cfg.Receivers {
		if len(r.SlackConfigs) > 0 {
			out[r.Name] = true
		}
	}
	return out, nil
}

// silence silences every alert naming service for cfg.Silence.
func (v *Verifier) silence(ctx context.Context, service string) (string, error) {
	now := v.cfg.Clock.Now().UTC()
	body := map[string]any{
		"matchers":  []map[string]any{{"name": "service", "value": service, "isRegex": false, "isEqual": true}},
		"startsAt":  now.Format(time.RFC3339),
		"endsAt":    now.Add(v.cfg.Silence).Format(time.RFC3339),
		"createdBy": "hyhome verify",
		"comment":   "hyhome verify's alert canary " + service + " was removed on purpose; the availability rules remember it for 7 days",
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := v.amDo(ctx, http.MethodPost, "/api/v2/silences", body, &out); err != nil {
		return "", err
	}
	return out.SilenceID, nil
}

// promValue runs an instant query; found is false for an empty result.
func (v *Verifier) promValue(ctx context.Context, q string) (float64, bool, error) {
	p, err := v.promAPI()
	if err != nil {
		return 0, false, err
	}
	val, _, _, err := p.Query(ctx, q, time.Time{})
	if err != nil {
		return 0, false, fmt.Errorf("querying Prometheus for %s: %w", q, err)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return 0, false, fmt.Errorf("querying Prometheus for %s: got a %s, want a vector", q, val.Type())
	}
	if len(vec) == 0 {
		return 0, false, nil
	}
	return float64(vec[0].Value), true, nil
}

// poll calls fn every cfg.AlertPoll until it returns true or timeout
// passes; it returns the time fn first returned true.
func (v *Verifier) poll(ctx context.Context, timeout time.Duration, fn func() (bool, error)) (time.Time, error) {
	deadline := v.cfg.Clock.Now().Add(timeout)
	var lastErr error
	for {
		done, err := fn()
		now := v.cfg.Clock.Now()
		if err != nil {
			lastErr = err
		} else if done {
			return now, nil
		}
		if !now.Before(deadline) {
			if lastErr != nil {
				return time.Time{}, fmt.Errorf("not within %s; last error: %w", timeout, lastErr)
			}
			return time.Time{}, fmt.Errorf("not within %s", timeout)
		}
		if !v.sleep(ctx, v.cfg.AlertPoll) {
			return time.Time{}, ctx.Err()
		}
	}
}

func since(from, to time.Time) *float64 {
	s := seconds(to.Sub(from))
	return &s
}

// Alert targets.
const (
	alertTargetCanary  = "canary"
	alertTargetService = "service"
)

// alertTarget is what ALERTING takes down and brings back.
type alertTarget struct {
	kind      string
	id        string
	name      string
	service   string // the alerts' service label
	down      func(ctx context.Context) error
	up        func(ctx context.Context) error
	isStopped bool
}

// serviceTarget finds the running container of the stack's service
// cfg.AlertService among the containers verify judges.
func (v *Verifier) serviceTarget(ctx context.Context) (*alertTarget, error) {
	f, err := audit.ParseFilters(v.cfg.Filters)
	if err != nil {
		return nil, err
	}
	f.Add("label", workload.LabelComposeService+"="+v.cfg.AlertService)
	list, err := v.cfg.Engine.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing the containers of service %s: %w", v.cfg.AlertService, err)
	}
	switch n := len(list.Items); {
	case n == 0:
		return nil, fmt.Errorf("no running container of service %s among the containers verify judges (--filter)", v.cfg.AlertService)
	case n > 1:
		return nil, fmt.Errorf("%d running containers of service %s: taking one down is not a downtime of the service", n, v.cfg.AlertService)
	}
	c := list.Items[0]
	if tier := c.Labels[workload.LabelTier]; tier != "infra" {
		return nil, fmt.Errorf("service %s has tier %q: the alert path is for %s=infra services", v.cfg.AlertService, tier, workload.LabelTier)
	}
	if c.Labels[swarmTaskLabel] != "" {
		return nil, fmt.Errorf("service %s runs as a Swarm task, which its service replaces as soon as it stops: use the canary (no --alert-service)", v.cfg.AlertService)
	}
	name := c.ID
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	t := &alertTarget{kind: alertTargetService, id: c.ID, name: name, service: v.cfg.AlertService}
	// A stop, as an operator's or a crash-looping service's: the restart
	// policy leaves a stopped container alone, so it stays down.
	t.down = func(ctx context.Context) error {
		_, err := v.cfg.Engine.ContainerStop(ctx, t.id, client.ContainerStopOptions{})
		return err
	}
	t.up = func(ctx context.Context) error {
		_, err := v.cfg.Engine.ContainerStart(ctx, t.id, client.ContainerStartOptions{})
		return err
	}
	return t, nil
}

// swarmTaskLabel is set by the engine on a Swarm task's container.
const swarmTaskLabel = "com.docker.swarm.task.id"

// checkAlerting runs the alert path.
func (v *Verifier) checkAlerting(ctx context.Context) *Result {
	r := newResult(CheckAlerting)
	a := &AlertResult{Alertmanager: redactURL(v.cfg.AlertmanagerURL), Prometheus: redactURL(v.cfg.PrometheusURL)}
	r.Alert = a

	var tgt *alertTarget
	var spec canarySpec
	if v.cfg.AlertService != "" {
		t, err := v.serviceTarget(ctx)
		if err != nil {
			return r.error("%v", err)
		}
		tgt = t
	} else {
		if _, err := v.cfg.Engine.NetworkInspect(ctx, v.cfg.CanaryNetwork, client.NetworkInspectOptions{}); err != nil {
			if cerrdefs.IsNotFound(err) {
				return r.error("network %s does not exist: the canary must join the network the stack's Prometheus scrapes (is the stack up? see --canary-network)", v.cfg.CanaryNetwork)
			}
			return r.error("inspecting network %s: %v", v.cfg.CanaryNetwork, err)
		}
		token := newToken()
		spec = v.alertCanary(token)
		tgt = &alertTarget{kind: alertTargetCanary, name: spec.name, service: alertService(token)}
		a.Network = v.cfg.CanaryNetwork
		// Down: the container dies, as a crashed service's does.
		tgt.down = func(ctx context.Context) error {
			_, err := v.cfg.Engine.ContainerKill(ctx, tgt.id, client.ContainerKillOptions{Signal: "SIGKILL"})
			return err
		}
		tgt.up = func(ctx context.Context) error {
			_, err := v.cfg.Engine.ContainerStart(ctx, tgt.id, client.ContainerStartOptions{})
			return err
		}
	}
	svc := tgt.service
	a.Target, a.Service, a.Container = tgt.kind, svc, tgt.name

	slackNames, err := v.slackReceivers(ctx)
	if err != nil {
		return r.fail("Alertmanager at %s cannot be read: %v", a.Alertmanager, err)
	}
	if _, _, err := v.promValue(ctx, "vector(1)"); err != nil {
		return r.fail("Prometheus at %s cannot be queried: %v", a.Prometheus, err)
	}
	var slack *slackReceiver
	if v.cfg.SlackReceiverAddr != "" {
		slack, err = startSlackReceiver(v.cfg.SlackReceiverAddr, v.cfg.Clock.Now, v.log)
		if err != nil {
			return r.error("%v", err)
		}
		defer slack.close()
		a.SlackReceiver = slack.addr
	}

	if tgt.kind == alertTargetCanary {
		id, err := v.startCanary(ctx, spec)
		if err != nil {
			return r.error("%v", err)
		}
		tgt.id = id
		defer func() {
			// Silence first: once the canary is gone, its absence is an alert.
			if v.cfg.Silence > 0 {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				sid, err := v.silence(sctx, svc)
				cancel()
				if err != nil {
					r.warn("could not silence %s after removing the canary: %v; it will page as missing until silenced: amtool silence add service=%s", svc, err, svc)
				} else {
					a.SilenceID = sid
				}
			}
			v.remove(ctx, id)
		}()
	} else {
		// The stack's service is never left down: whatever ends the check
		// (a failure, SIGINT), it is started again.
		defer func() {
			if !tgt.isStopped {
				return
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := tgt.up(sctx); err != nil {
				r.warn("could not start %s (%s) again: %v; start it by hand: docker start %s", svc, tgt.name, err, tgt.name)
			}
		}()
	}
	started := v.cfg.Clock.Now()

	// 1. Scraped and remembered: without the record, its absence could
	// not alert.
	scrapedAt, err := v.poll(ctx, v.cfg.AlertTimeout, func() (bool, error) {
		up, ok, err := v.promValue(ctx, fmt.Sprintf(`max(up{service=%q})`, svc))
		if err != nil || !ok || up != 1 {
			return false, err
		}
		_, ok, err = v.promValue(ctx, fmt.Sprintf(`count(hyhome:service_last_seen:timestamp_seconds{service=%q})`, svc))
		return ok, err
	})
	if err != nil {
		if ctx.Err() != nil {
			return r.error("interrupted")
		}
		if tgt.kind == alertTargetService {
			return r.fail("Prometheus does not scrape service %s and record it: %v (are deploy/prometheus/rules loaded?)", svc, err)
		}
		return r.fail("Prometheus did not scrape the canary and record service %s: %v (does it discover containers on network %s, and are deploy/prometheus/rules loaded?)", svc, err, v.cfg.CanaryNetwork)
	}
	a.ScrapedSeconds = since(started, scrapedAt)

	// 2. Down.
	tgt.isStopped = true
	if err := tgt.down(ctx); err != nil {
		return r.error("taking %s down: %v", tgt.name, err)
	}
	killedAt := v.cfg.Clock.Now()
	var firing amAlert
	var suppressed string
	firingAt, err := v.poll(ctx, v.cfg.AlertTimeout, func() (bool, error) {
		alerts, err := v.serviceAlerts(ctx, svc)
		if err != nil {
			return false, err
		}
		for _, al := range alerts {
			switch al.Status.State {
			case "active":
				firing = al
				return true, nil
			case "suppressed":
				suppressed = fmt.Sprintf("%s is suppressed (silenced by %v, inhibited by %v): no notification would be sent", al.Labels["alertname"], al.Status.SilencedBy, al.Status.InhibitedBy)
			}
		}
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return r.error("interrupted")
		}
		why := fmt.Sprintf("no alert naming %s became active in Alertmanager after %s went down: %v", svc, tgt.name, err)
		if suppressed != "" {
			why += "; " + suppressed
		}
		return r.fail("%s", why)
	}
	a.FiringSeconds = since(killedAt, firingAt)
	a.Alertname = firing.Labels["alertname"]
	for _, rc := range firing.Receivers {
		a.Receivers = append(a.Receivers, rc.Name)
		if slackNames[rc.Name] {
			a.SlackReceivers = append(a.SlackReceivers, rc.Name)
		}
	}
	var failures []string
	if len(a.SlackReceivers) == 0 {
		failures = append(failures, fmt.Sprintf("%s is routed to %s, none of which has slack_configs: no Slack notification is sent", a.Alertname, orNone(a.Receivers)))
	}
	if slack != nil {
		at, msg, err := slack.await(ctx, v.cfg.AlertTimeout-v.cfg.Clock.Now().Sub(killedAt), svc, "firing")
		if err != nil {
			failures = append(failures, fmt.Sprintf("no firing Slack notification naming %s reached %s: %v", svc, slack.addr, err))
		} else {
			a.SlackFiringSeconds = since(killedAt, at)
			a.SlackTitle = msg.title
		}
	}

	// 3. Back: the same container starts again and is rediscovered.
	if err := tgt.up(ctx); err != nil {
		r.warn("starting %s again to watch the alert resolve: %v", tgt.name, err)
	} else {
		tgt.isStopped = false
		backAt := v.cfg.Clock.Now()
		resolvedAt, err := v.poll(ctx, v.cfg.AlertTimeout, func() (bool, error) {
			alerts, err := v.serviceAlerts(ctx, svc)
			return err == nil && len(alerts) == 0, err
		})
		if err != nil {
			r.warn("the alert for %s did not resolve after %s came back: %v", svc, tgt.name, err)
		} else {
			a.ResolvedSeconds = since(backAt, resolvedAt)
		}
		if slack != nil && err == nil {
			at, _, err := slack.await(ctx, v.cfg.AlertTimeout-v.cfg.Clock.Now().Sub(backAt), svc, "resolved")
			if err != nil {
				r.warn("no resolved Slack notification naming %s: %v", svc, err)
			} else {
				a.SlackResolvedSeconds = since(backAt, at)
			}
		}
	}
	if ctx.Err() != nil {
		return r.error("interrupted")
	}

	downWhat := "the canary was killed"
	if tgt.kind == alertTargetService {
		downWhat = "the service was stopped"
	}
	what := fmt.Sprintf("%s for %s active in Alertmanager %.1f s after %s", a.Alertname, svc, *a.FiringSeconds, downWhat)
	if len(failures) > 0 {
		return r.fail("%s, but %s", what, strings.Join(failures, "; "))
	}
	what += ", routed to Slack (" + strings.Join(a.SlackReceivers, ", ") + ")"
	if a.SlackFiringSeconds != nil {
		what += fmt.Sprintf("; Slack notified after %.1f s", *a.SlackFiringSeconds)
	}
	if a.ResolvedSeconds != nil {
		what += fmt.Sprintf("; resolved %.1f s after it came back", *a.ResolvedSeconds)
	}
	r.Status, r.Summary = StatusPass, what
	return r
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "no receiver"
	}
	return strings.Join(xs, ", ")
}

// --- the Slack side ------------------------------------------------------------

// slackMsg is one webhook post, as Alertmanager's Slack integration sends it.
type slackMsg struct {
	at     time.Time
	title  string
	all    string // every text field, for matching
	status string // firing or resolved
}

// slackReceiver stands in for Slack's incoming webhook: Alertmanager's
// api_url (or api_url_file) points at it for a verification run.
type slackReceiver struct {
	addr string
	srv  *http.Server
	now  func() time.Time

	mu     sync.Mutex
	msgs   []slackMsg
	notify chan struct{}
}

func startSlackReceiver(addr string, now func() time.Time, log interface{ Debug(string, ...any) }) (*slackReceiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the Slack webhook on %s: %w", addr, err)
	}
	s := &slackReceiver{addr: ln.Addr().String(), now: now, notify: make(chan struct{}, 1)}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	log.Debug("Slack webhook receiver listening", "addr", s.addr)
	return s, nil
}

func (s *slackReceiver) close() { _ = s.srv.Close() }

func (s *slackReceiver) handle(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "invalid_request", http.StatusMethodNotAllowed)
		return
	}
	var p struct {
		Text        string `json:"text"`
		Attachments []struct {
			Title    string `json:"title"`
			Text     string `json:"text"`
			Fallback string `json:"fallback"`
			Pretext  string `json:"pretext"`
		} `json:"attachments"`
	}
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&p); err != nil {
		// What Slack answers to a body it cannot read.
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	m := slackMsg{at: s.now(), all: p.Text}
	for _, a := range p.Attachments {
		if m.title == "" {
			m.title = a.Title
		}
		m.all += "\n" + a.Title + "\n" + a.Text + "\n" + a.Fallback + "\n" + a.Pretext
	}
	if m.title == "" {
		m.title, _, _ = strings.Cut(strings.TrimSpace(p.Text), "\n")
	}
	// Alertmanager's default title, and the stack's, start with the
	// group's status: [FIRING:n] or [RESOLVED].
	m.status = "firing"
	if strings.Contains(strings.ToUpper(m.title), "RESOLVED") {
		m.status = "resolved"
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	_, _ = io.WriteString(w, "ok")
}

// await returns the first message with status that names service.
func (s *slackReceiver) await(ctx context.Context, timeout time.Duration, service, status string) (time.Time, slackMsg, error) {
	deadline := time.NewTimer(max(timeout, 0))
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if m.status == status && strings.Contains(m.all, service) {
				s.mu.Unlock()
				return m.at, m, nil
			}
		}
		n := len(s.msgs)
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-deadline.C:
			return time.Time{}, slackMsg{}, fmt.Errorf("none within %s (%d other message(s) received)", timeout.Round(time.Second), n)
		case <-ctx.Done():
			return time.Time{}, slackMsg{}, ctx.Err()
		}
	}
}
