package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/verify/alertmanager"
	"github.com/hy-home/hyhome/internal/verify/slack"
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

// AlertResult is the alert path's measurement.
type AlertResult struct {
	// Target is what was taken down: "canary" (verify's own infra canary,
	// killed) or "service" (a running service of the stack, stopped).
	Target       string `json:"target"`
	Service      string `json:"service"`
	Container    string `json:"container"`
	Network      string `json:"network"`
	Alertmanager string `json:"alertmanager"`
	Prometheus   string `json:"prometheus"`
	// Alertname is the alert that fired for the service.
	Alertname string `json:"alertname,omitempty"`
	// Receivers are where Alertmanager routed it; SlackReceivers those of
	// them with slack_configs.
	Receivers      []string `json:"receivers,omitempty"`
	SlackReceivers []string `json:"slack_receivers,omitempty"`
	// Each figure is seconds from the step that caused it; nil when it did
	// not happen within the alert timeout.
	ScrapedSeconds       *float64 `json:"scraped_seconds"`        // canary started → Prometheus scrapes it and remembers the service
	FiringSeconds        *float64 `json:"firing_seconds"`         // canary killed → alert active in Alertmanager
	SlackFiringSeconds   *float64 `json:"slack_firing_seconds"`   // canary killed → Slack webhook received the firing notification
	ResolvedSeconds      *float64 `json:"resolved_seconds"`       // canary back → alert gone from Alertmanager
	SlackResolvedSeconds *float64 `json:"slack_resolved_seconds"` // canary back → Slack webhook received the resolved notification
	// SlackReceiver is the address verify listened on for the webhook.
	SlackReceiver string `json:"slack_receiver,omitempty"`
	SlackTitle    string `json:"slack_title,omitempty"`
	// SilenceID silences the removed canary's service (its absence would
	// otherwise page as HyHomeServiceMissing for days).
	SilenceID string `json:"silence_id,omitempty"`
}

// DetailKey is where a report's JSON holds the measurement.
func (a *AlertResult) DetailKey() string { return "alert" }

// Describe lays out what was taken down and each step's time.
func (a *AlertResult) Describe(d *report.Detail) {
	started, down, back := "the canary started", "the canary was killed", "the canary came back"
	if a.Target == alertTargetService {
		d.Linef("the stack's service %s (container %s) stopped, then started again; Prometheus %s, Alertmanager %s", a.Service, a.Container, a.Prometheus, a.Alertmanager)
		started, down, back = "verify began", "the service was stopped", "the service was started"
	} else {
		d.Linef("canary %s (service %s) on network %s; Prometheus %s, Alertmanager %s", a.Container, a.Service, a.Network, a.Prometheus, a.Alertmanager)
	}
	step := func(name string, p *float64, from string) {
		if p != nil {
			d.Linef("%-22s %7.1f s after %s", name, *p, from)
		} else {
			d.Linef("%-22s %7s", name, "-")
		}
	}
	step("scraped and recorded", a.ScrapedSeconds, started)
	step("alert firing", a.FiringSeconds, down)
	if a.SlackReceiver != "" {
		step("Slack: firing", a.SlackFiringSeconds, down)
	}
	step("alert resolved", a.ResolvedSeconds, back)
	if a.SlackReceiver != "" {
		step("Slack: resolved", a.SlackResolvedSeconds, back)
	}
	if a.Alertname != "" {
		routed := fmt.Sprintf("alert %s, routed to %s", a.Alertname, strings.Join(a.Receivers, ", "))
		if len(a.SlackReceivers) > 0 {
			routed += fmt.Sprintf(" (Slack: %s)", strings.Join(a.SlackReceivers, ", "))
		}
		d.Linef("%s", routed)
	}
	if a.SlackTitle != "" {
		d.Linef("Slack message: %s", a.SlackTitle)
	}
	if a.SilenceID != "" {
		d.Linef("the removed canary's service is silenced (silence %s)", a.SilenceID)
	}
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
	f, err := source.ParseFilters(v.cfg.Filters)
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
	if c.Labels[source.LabelSwarmTaskID] != "" {
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

// checkAlerting runs the alert path.
func (v *Verifier) checkAlerting(ctx context.Context, r *report.CheckResult) {
	a := &AlertResult{Alertmanager: redactURL(v.cfg.AlertmanagerURL), Prometheus: redactURL(v.cfg.PrometheusURL)}
	r.Detail = a

	var tgt *alertTarget
	var spec canarySpec
	if v.cfg.AlertService != "" {
		t, err := v.serviceTarget(ctx)
		if err != nil {
			r.Error("%v", err)
			return
		}
		tgt = t
	} else {
		if _, err := v.cfg.Engine.NetworkInspect(ctx, v.cfg.CanaryNetwork, client.NetworkInspectOptions{}); err != nil {
			if cerrdefs.IsNotFound(err) {
				r.Error("network %s does not exist: the canary must join the network the stack's Prometheus scrapes (is the stack up? see --canary-network)", v.cfg.CanaryNetwork)
				return
			}
			r.Error("inspecting network %s: %v", v.cfg.CanaryNetwork, err)
			return
		}
		token := newToken()
		spec = v.canaries.alertCanary(token)
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

	slackNames, err := v.am.SlackReceivers(ctx)
	if err != nil {
		r.Fail("Alertmanager at %s cannot be read: %v", a.Alertmanager, err)
		return
	}
	if _, _, err := v.prom.value(ctx, "vector(1)"); err != nil {
		r.Fail("Prometheus at %s cannot be queried: %v", a.Prometheus, err)
		return
	}
	var webhook *slack.Receiver
	if v.cfg.SlackReceiverAddr != "" {
		webhook, err = slack.Listen(v.cfg.SlackReceiverAddr, v.cfg.Clock.Now, v.log)
		if err != nil {
			r.Error("%v", err)
			return
		}
		defer webhook.Close()
		a.SlackReceiver = webhook.Addr()
	}

	if tgt.kind == alertTargetCanary {
		id, err := v.canaries.start(ctx, spec)
		if err != nil {
			r.Error("%v", err)
			return
		}
		tgt.id = id
		defer func() {
			// Silence first: once the canary is gone, its absence is an alert.
			if v.cfg.Silence > 0 {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				sid, err := v.am.Silence(sctx, svc, v.cfg.Silence, "hyhome verify", "hyhome verify's alert canary "+svc+" was removed on purpose; the availability rules remember it for 7 days")
				cancel()
				if err != nil {
					r.Warn("could not silence %s after removing the canary: %v; it will page as missing until silenced: amtool silence add service=%s", svc, err, svc)
				} else {
					a.SilenceID = sid
				}
			}
			v.canaries.remove(ctx, id)
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
				r.Warn("could not start %s (%s) again: %v; start it by hand: docker start %s", svc, tgt.name, err, tgt.name)
			}
		}()
	}
	started := v.cfg.Clock.Now()

	// 1. Scraped and remembered: without the record, its absence could
	// not alert.
	scrapedAt, err := v.poll(ctx, v.cfg.AlertTimeout, func() (bool, error) {
		up, ok, err := v.prom.value(ctx, fmt.Sprintf(`max(up{service=%q})`, svc))
		if err != nil || !ok || up != 1 {
			return false, err
		}
		_, ok, err = v.prom.value(ctx, fmt.Sprintf(`count(hyhome:service_last_seen:timestamp_seconds{service=%q})`, svc))
		return ok, err
	})
	if err != nil {
		if ctx.Err() != nil {
			r.Error("interrupted")
			return
		}
		if tgt.kind == alertTargetService {
			r.Fail("Prometheus does not scrape service %s and record it: %v (are deploy/prometheus/rules loaded?)", svc, err)
			return
		}
		r.Fail("Prometheus did not scrape the canary and record service %s: %v (does it discover containers on network %s, and are deploy/prometheus/rules loaded?)", svc, err, v.cfg.CanaryNetwork)
		return
	}
	a.ScrapedSeconds = since(started, scrapedAt)

	// 2. Down. Only the webhook's messages from here on are this outage's.
	var downMark, backMark slack.Mark
	if webhook != nil {
		downMark = webhook.Mark()
	}
	tgt.isStopped = true
	if err := tgt.down(ctx); err != nil {
		r.Error("taking %s down: %v", tgt.name, err)
		return
	}
	killedAt := v.cfg.Clock.Now()
	var firing alertmanager.Alert
	var suppressed string
	firingAt, err := v.poll(ctx, v.cfg.AlertTimeout, func() (bool, error) {
		alerts, err := v.am.Alerts(ctx, svc)
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
			r.Error("interrupted")
			return
		}
		why := fmt.Sprintf("no alert naming %s became active in Alertmanager after %s went down: %v", svc, tgt.name, err)
		if suppressed != "" {
			why += "; " + suppressed
		}
		r.Fail("%s", why)
		return
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
	if webhook != nil {
		msg, err := webhook.Await(ctx, v.cfg.AlertTimeout-v.cfg.Clock.Now().Sub(killedAt), downMark, svc, "firing")
		if err != nil {
			failures = append(failures, fmt.Sprintf("no firing Slack notification naming %s reached %s: %v", svc, webhook.Addr(), err))
		} else {
			a.SlackFiringSeconds = since(killedAt, msg.At)
			a.SlackTitle = msg.Title
		}
		backMark = webhook.Mark()
	}

	// 3. Back: the same container starts again and is rediscovered.
	if err := tgt.up(ctx); err != nil {
		r.Warn("starting %s again to watch the alert resolve: %v", tgt.name, err)
	} else {
		tgt.isStopped = false
		backAt := v.cfg.Clock.Now()
		resolvedAt, err := v.poll(ctx, v.cfg.AlertTimeout, func() (bool, error) {
			alerts, err := v.am.Alerts(ctx, svc)
			return err == nil && len(alerts) == 0, err
		})
		if err != nil {
			r.Warn("the alert for %s did not resolve after %s came back: %v", svc, tgt.name, err)
		} else {
			a.ResolvedSeconds = since(backAt, resolvedAt)
		}
		if webhook != nil && err == nil {
			msg, err := webhook.Await(ctx, v.cfg.AlertTimeout-v.cfg.Clock.Now().Sub(backAt), backMark, svc, "resolved")
			if err != nil {
				r.Warn("no resolved Slack notification naming %s: %v", svc, err)
			} else {
				a.SlackResolvedSeconds = since(backAt, msg.At)
			}
		}
	}
	if ctx.Err() != nil {
		r.Error("interrupted")
		return
	}

	downWhat := "the canary was killed"
	if tgt.kind == alertTargetService {
		downWhat = "the service was stopped"
	}
	what := fmt.Sprintf("%s for %s active in Alertmanager %.1f s after %s", a.Alertname, svc, *a.FiringSeconds, downWhat)
	if len(failures) > 0 {
		r.Fail("%s, but %s", what, strings.Join(failures, "; "))
		return
	}
	what += ", routed to Slack (" + strings.Join(a.SlackReceivers, ", ") + ")"
	if a.SlackFiringSeconds != nil {
		what += fmt.Sprintf("; Slack notified after %.1f s", *a.SlackFiringSeconds)
	}
	if a.ResolvedSeconds != nil {
		what += fmt.Sprintf("; resolved %.1f s after it came back", *a.ResolvedSeconds)
	}
	r.Pass("%s", what)
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "no receiver"
	}
	return strings.Join(xs, ", ")
}
