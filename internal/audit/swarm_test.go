//go:build unix

package audit

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/testenv"
)

// TestAuditSwarmServices deploys a violating and a compliant Swarm service
// (with a secret each) on a single-node Swarm and asserts the exact findings
// the audit reads from their specs.
func TestAuditSwarmServices(t *testing.T) {
	f := newFixture(t)
	dockertest.Swarm(t, f.c)
	ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
	defer cancel()

	sec, err := f.c.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: "hyhome-test-token-" + f.scope, Labels: map[string]string{dockertest.LabelKey: dockertest.RunID}},
		Data:        []byte("not-a-real-token"),
	}})
	if err != nil {
		t.Fatalf("creating secret: %v", err)
	}
	secretName := "hyhome-test-token-" + f.scope
	create := func(spec swarm.ServiceSpec) string {
		t.Helper()
		res, err := f.c.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec})
		if err != nil {
			t.Fatalf("creating service %s: %v", spec.Name, err)
		}
		for _, w := range res.Warnings {
			t.Logf("service %s: engine warning: %s", spec.Name, w)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
			defer cancel()
			if err := dockertest.RemoveService(ctx, f.c, res.ID); err != nil {
				t.Errorf("removing service %s: %v", spec.Name, err)
			}
		})
		return res.ID
	}
	// The secret's removal is registered before the services are created:
	// cleanups run last-in first-out, and a secret in use cannot be removed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dockertest.CallTimeout)
		defer cancel()
		// Tasks release the secret asynchronously after the service is gone.
		for i := 0; i < 50; i++ {
			if _, err := f.c.SecretRemove(ctx, sec.ID, client.SecretRemoveOptions{}); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("secret %s still in use; remove it with docker secret rm", secretName)
	})

	one := uint64(1)
	ctrLabels := map[string]string{dockertest.LabelKey: dockertest.RunID, scopeKey: f.scope}
	badName := "hyhome-test-bad-" + f.scope
	goodName := "hyhome-test-good-" + f.scope
	bindDir := t.TempDir()

	create(swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: badName, Labels: map[string]string{scopeKey: f.scope, dockertest.LabelKey: dockertest.RunID}},
		Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:  f.img.Root,
				Args:   []string{"sleep"},
				Labels: ctrLabels,
				Mounts: []mount.Mount{{Type: mount.TypeBind, Source: bindDir, Target: "/data"}},
				Secrets: []*swarm.SecretReference{{
					SecretID: sec.ID, SecretName: secretName,
					File: &swarm.SecretReferenceFileTarget{Name: "/etc/hyhome/token", UID: "0", GID: "0", Mode: 0o400},
				}},
			},
			Networks: []swarm.NetworkAttachmentConfig{{Target: "host"}},
		},
	})
	goodID := create(swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: goodName, Labels: map[string]string{
			scopeKey: f.scope, "hy-home.tier": "app", "hy-home.metrics.port": "9100", dockertest.LabelKey: dockertest.RunID,
		}},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:          f.img.NonRoot,
				Args:           []string{"sleep"},
				Labels:         map[string]string{dockertest.LabelKey: dockertest.RunID, scopeKey: f.scope, "hy-home.tier": "app"},
				CapabilityDrop: []string{"ALL"},
				ReadOnly:       true,
				Privileges:     &swarm.Privileges{NoNewPrivileges: true},
				Healthcheck: &container.HealthConfig{
					Test:     []string{"CMD", "/testprog", "probe", "-url", "http://127.0.0.1:9100/healthz"},
					Interval: time.Hour,
				},
				Secrets: []*swarm.SecretReference{{
					SecretID: sec.ID, SecretName: secretName,
					File: &swarm.SecretReferenceFileTarget{Name: "token", UID: "0", GID: "0", Mode: 0o400},
				}},
			},
			Resources: &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: 64 << 20, Pids: 64}},
		},
	})

	// What did the engine keep? Swarm on engines before API 1.46 has no
	// no-new-privileges field: the manager drops it, and the audit must
	// judge what Swarm will run, not what was asked.
	var goodSpec swarm.ServiceSpec
	if list, err := f.c.ServiceList(ctx, client.ServiceListOptions{Filters: client.Filters{}.Add("id", goodID)}); err != nil || len(list.Items) != 1 {
		t.Fatalf("reading back %s: %v", goodName, err)
	} else {
		goodSpec = list.Items[0].Spec
	}
	nnpKept := goodSpec.TaskTemplate.ContainerSpec.Privileges != nil && goodSpec.TaskTemplate.ContainerSpec.Privileges.NoNewPrivileges
	t.Logf("engine kept Privileges.NoNewPrivileges: %v; Limits.Pids: %d", nnpKept, goodSpec.TaskTemplate.Resources.Limits.Pids)

	res := f.audit(source.Selection{}, &policy.Env{})
	got := rulesBySource(res.Findings)
	wantBad := []string{
		"bind-mount-readonly", "cap-drop-all", "healthcheck", "host-namespaces", "memory-limit",
		"metrics-endpoint", "no-new-privileges", "non-root", "pids-limit", "read-only-rootfs",
		"secret-target", "tier-label",
	}
	var wantGood []string
	if !nnpKept {
		wantGood = []string{"no-new-privileges"}
	}
	if g := got["service "+badName]; !reflect.DeepEqual(g, wantBad) {
		t.Errorf("service %s: rules %v, want %v", badName, g, wantBad)
	}
	if g := got["service "+goodName]; !reflect.DeepEqual(g, wantGood) {
		t.Errorf("service %s: rules %v, want %v", goodName, g, wantGood)
	}
	for src, rules := range got {
		if src != "service "+badName && src != "service "+goodName {
			t.Errorf("unexpected findings on %s: %v (task containers are judged through their service)", src, rules)
		}
	}
	msgs := map[string]string{
		"secret-target":   "secret " + secretName + " is mounted at /etc/hyhome/token, outside /run/secrets/",
		"non-root":        "sets no user and image " + f.img.Root + " has no USER: runs as root",
		"host-namespaces": "shares the host's network namespace (network_mode: host)",
	}
	for rule, want := range msgs {
		if fd := findingOf(res.Findings, "service "+badName, rule); fd == nil || fd.Message != want {
			t.Errorf("%s: %q, want %q", rule, msgOf(fd), want)
		}
	}
	if fd := findingOf(res.Findings, "service "+badName, "host-namespaces"); fd != nil && fd.Kind != "swarm" {
		t.Errorf("service finding kind %q", fd.Kind)
	}
	if n := res.Snapshot.Stats.Services; n != 2 {
		t.Errorf("%d services audited, want 2", n)
	}

	// --service selects one service by its exact name.
	only := f.audit(source.Selection{Services: []string{goodName}}, &policy.Env{})
	if len(only.Snapshot.Workloads) == 0 || only.Snapshot.Workloads[0].Name != goodName {
		t.Errorf("--service %s: workloads %v", goodName, workloadNames(only))
	}
	for _, w := range only.Snapshot.Workloads {
		if w.Name == badName {
			t.Errorf("--service %s audited %s", goodName, badName)
		}
	}

	// Once the compliant service's task runs, its container is selected
	// (it carries the scope label) but judged through the service. The task
	// runs unless something is broken: not seeing it fails the test rather
	// than leaving the check out.
	deadline := time.Now().Add(testenv.Hang)
	for {
		r := f.audit(source.Selection{}, &policy.Env{})
		if r.Snapshot.Stats.Tasks > 0 {
			var notice string
			for _, n := range r.Snapshot.Notices {
				if n.Kind == source.NoticeTasks {
					notice = n.Message
				}
			}
			if !strings.Contains(notice, "Swarm task container(s) judged through their service's spec") {
				t.Errorf("task notice %q", notice)
			}
			for _, fd := range r.Findings {
				if strings.HasPrefix(fd.Source, "container ") {
					t.Errorf("task container judged on its own: %s %s", fd.Source, fd.Rule)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no task container of %s ran within %v: task handling not observed", goodName, testenv.Hang)
		}
		time.Sleep(time.Second)
	}
}

func workloadNames(r *Result) []string {
	var out []string
	for _, w := range r.Snapshot.Workloads {
		out = append(out, w.Name)
	}
	return out
}
