package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/promtest"
	"github.com/hy-home/hyhome/internal/report"
)

// testNetwork creates a bridge network for the test, removed at cleanup.
func testNetwork(t *testing.T, name string) {
	t.Helper()
	c := dockertest.Client(t)
	ctx := context.Background()
	if _, err := c.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{dockertest.LabelKey: dockertest.RunID}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}) })
}

// The alert path for real: Debian's Prometheus and Alertmanager with the
// stack's own files, discovering containers through the stack's Docker
// discovery and relabelling (against this engine, scoped to this test's
// containers and network), and verify listening for the Slack webhook.
func TestAlertingEndToEnd(t *testing.T) {
	t.Parallel()
	scope := newToken()
	net := "hyhome-verify-" + scope
	testNetwork(t, net)
	ep, err := docker.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	slackAddr := promtest.FreeAddr(t)
	stack := promtest.StartStack(t, promtest.StackOptions{
		HostLabel:  "verify-host",
		WebhookURL: "http://" + slackAddr + "/services/T0HYHOME/B0VERIFY/verify",
		For:        "5s",
		Docker:     &promtest.DockerSD{Host: ep.Host, Label: scopeLabel + "=" + scope, Network: net},
	})
	for _, v := range stack.Versions {
		t.Log(v)
	}
	cfg := testConfig(t, scope)
	cfg.Checks = []string{CheckAlerting}
	cfg.PrometheusURL = "http://" + stack.PromAddr
	cfg.AlertmanagerURL = "http://" + stack.AMAddr
	cfg.CanaryNetwork = net
	cfg.SlackReceiverAddr = slackAddr
	cfg.AlertTimeout = time.Minute
	cfg.AlertPoll = 250 * time.Millisecond

	r := checkOf(t, run(t, cfg), CheckAlerting)
	wantStatus(t, r, report.CheckPass)
	a := detail[*AlertResult](t, r)
	if a.Alertname != "HyHomeServiceMissing" && a.Alertname != "HyHomeServiceDown" {
		t.Errorf("alert %q: want one of the availability alerts", a.Alertname)
	}
	if strings.Join(a.Receivers, ",") != "slack-infra" || strings.Join(a.SlackReceivers, ",") != "slack-infra" {
		t.Errorf("receivers %v, Slack receivers %v", a.Receivers, a.SlackReceivers)
	}
	for name, p := range map[string]*float64{"scraped": a.ScrapedSeconds, "firing": a.FiringSeconds, "slack firing": a.SlackFiringSeconds, "resolved": a.ResolvedSeconds, "slack resolved": a.SlackResolvedSeconds} {
		if p == nil || *p < 0 {
			t.Errorf("%s: %v", name, p)
		}
	}
	if !strings.Contains(a.SlackTitle, ": "+a.Service+" on verify-host") {
		t.Errorf("Slack title %q does not name the service and host", a.SlackTitle)
	}

	// The removed canary's service is silenced, and only it.
	resp, err := http.Get("http://" + stack.AMAddr + "/api/v2/silence/" + a.SilenceID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sil struct {
		Matchers []struct {
			Name, Value string
			IsEqual     bool `json:"isEqual"`
			IsRegex     bool `json:"isRegex"`
		} `json:"matchers"`
		Status struct{ State string } `json:"status"`
		EndsAt time.Time              `json:"endsAt"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sil); err != nil {
		t.Fatal(err)
	}
	if len(sil.Matchers) != 1 || sil.Matchers[0].Name != "service" || sil.Matchers[0].Value != a.Service || !sil.Matchers[0].IsEqual || sil.Matchers[0].IsRegex ||
		sil.Status.State != "active" || time.Until(sil.EndsAt) < 7*24*time.Hour {
		t.Errorf("silence %+v", sil)
	}

	// A canary on a network the stack's Prometheus does not scrape is never
	// seen: the check fails and says where to look, and still cleans up.
	other := "hyhome-verify-other-" + scope
	testNetwork(t, other)
	cfg.CanaryNetwork = other
	cfg.AlertTimeout = 6 * time.Second
	cfg.SlackReceiverAddr = ""
	r = checkOf(t, run(t, cfg), CheckAlerting)
	wantStatus(t, r, report.CheckFail)
	if a := detail[*AlertResult](t, r); !strings.Contains(r.Summary, "did not scrape the canary") || !strings.Contains(r.Summary, other) || a.SilenceID == "" {
		t.Errorf("%s (silence %q)", r.Summary, a.SilenceID)
	}
}

// The alert path with the stack's own service as the target (--alert-service):
// a running infra container of a compose service, with a restart policy, is
// stopped (the policy leaves it down), its alert fires and reaches the Slack
// webhook, and it is started again and resolves. A service of another tier,
// or one without a running container, is refused with the reason.
func TestAlertingStackService(t *testing.T) {
	t.Parallel()
	scope := newToken()
	net := "hyhome-verify-svc-" + scope
	testNetwork(t, net)
	ep, err := docker.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	slackAddr := promtest.FreeAddr(t)
	stack := promtest.StartStack(t, promtest.StackOptions{
		HostLabel:  "verify-host",
		WebhookURL: "http://" + slackAddr + "/services/T0HYHOME/B0VERIFY/verify",
		For:        "5s",
		Docker:     &promtest.DockerSD{Host: ep.Host, Label: scopeLabel + "=" + scope, Network: net},
	})
	cfg := testConfig(t, scope)
	svc := "svc-" + scope
	id, name := dockertest.Run(t, dockertest.Spec{
		Name:  "stack-service",
		Image: cfg.CanaryImage,
		Cmd:   []string{"canary", "--token", scope, "--serve", ":9464"},
		User:  "65532:65532",
		Labels: map[string]string{
			scopeLabel: scope, "hy-home.tier": "infra", "hy-home.job": "infra",
			"hy-home.metrics.port": "9464", "hy-home.metrics.path": "/metrics",
			"com.docker.compose.service": svc,
		},
		Host: container.HostConfig{
			NetworkMode:    container.NetworkMode(net),
			RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges:true"},
			ReadonlyRootfs: true,
		},
	})
	cfg.Checks = []string{CheckAlerting}
	cfg.PrometheusURL = "http://" + stack.PromAddr
	cfg.AlertmanagerURL = "http://" + stack.AMAddr
	cfg.SlackReceiverAddr = slackAddr
	cfg.AlertService = svc
	cfg.AlertTimeout = time.Minute
	cfg.AlertPoll = 250 * time.Millisecond

	r := checkOf(t, run(t, cfg), CheckAlerting)
	wantStatus(t, r, report.CheckPass)
	a := detail[*AlertResult](t, r)
	if a.Target != alertTargetService || a.Service != svc || a.Container != name || a.SilenceID != "" {
		t.Errorf("target %q service %q container %q silence %q", a.Target, a.Service, a.Container, a.SilenceID)
	}
	for what, p := range map[string]*float64{"scraped": a.ScrapedSeconds, "firing": a.FiringSeconds, "slack firing": a.SlackFiringSeconds, "resolved": a.ResolvedSeconds, "slack resolved": a.SlackResolvedSeconds} {
		if p == nil || *p < 0 {
			t.Errorf("%s: %v", what, p)
		}
	}
	if !strings.Contains(r.Summary, "after the service was stopped") {
		t.Errorf("summary %q", r.Summary)
	}
	ins, err := dockertest.Client(t).ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil || !ins.Container.State.Running {
		t.Errorf("the service is not running again after the check: %v", err)
	}

	appSpec := infraSpec(scope, "app-"+scope, 0, dockertest.Build(t).NonRoot)
	appSpec.Labels["hy-home.tier"] = "app"
	dockertest.Run(t, appSpec)
	for _, tc := range []struct {
		service, want string
	}{
		{"no-such-" + scope, "no running container of service no-such-" + scope},
		{"app-" + scope, `has tier "app": the alert path is for hy-home.tier=infra services`},
	} {
		cfg.AlertService = tc.service
		r := checkOf(t, run(t, cfg), CheckAlerting)
		wantStatus(t, r, report.CheckError)
		if !strings.Contains(r.Summary, tc.want) {
			t.Errorf("%s: %q, want %q", tc.service, r.Summary, tc.want)
		}
	}
}
