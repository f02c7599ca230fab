package guard

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"

	"github.com/hy-home/hyhome/internal/dockertest"
	"github.com/hy-home/hyhome/internal/policy"
)

// What the guard does per entry of a request (findings, engine lookups,
// pins, the denial line) is bounded by what it agrees to judge, not by the
// body's bytes: a 4 MiB body holds 600,000 binds, each one or two failing
// findings. These tests pin the bounds; none needs the engine.

func TestJudgeFieldsRefusesListsBeyondTheBound(t *testing.T) {
	binds := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("/srv/%d:/d%d:ro", i, i)
		}
		return out
	}
	labels := func(n int) map[string]string {
		out := make(map[string]string, n)
		for i := range n {
			out[fmt.Sprintf("l%d", i)] = "v"
		}
		return out
	}
	at := &container.CreateRequest{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{Binds: binds(maxListEntries)}}
	if d := judgeFields(at); d != nil {
		t.Fatalf("%d binds refused: %v", maxListEntries, d)
	}
	for name, body := range map[string]any{
		"binds":        &container.CreateRequest{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{Binds: binds(maxListEntries + 1)}},
		"volumes-from": &container.CreateRequest{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{VolumesFrom: binds(maxListEntries + 1)}},
		"labels":       &container.CreateRequest{Config: &container.Config{Image: "x", Labels: labels(maxListEntries + 1)}},
		"service env":  &swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Env: binds(maxListEntries + 1)}}},
	} {
		d := judgeFields(body)
		if d == nil {
			t.Errorf("%s: %d entries were judged", name, maxListEntries+1)
			continue
		}
		if d.status != http.StatusForbidden || d.reason != reasonBody || !strings.Contains(d.message, fmt.Sprintf("has %d entries", maxListEntries+1)) {
			t.Errorf("%s: refused with %d %s %q, want 403 naming the list and its length", name, d.status, d.reason, d.message)
		}
	}
	d := judgeFields(&container.CreateRequest{Config: &container.Config{Image: "x"}, HostConfig: &container.HostConfig{Binds: binds(maxListEntries + 1)}})
	if d == nil || !strings.HasPrefix(d.message, "HostConfig.Binds has") {
		t.Errorf("the denial does not name the list first: %v", d)
	}
}

// TestPolicyDenialLengthIsBoundedPerRule: before the bound, each finding of
// a rule was appended to that rule's part of the line (quadratic copying,
// and a line as long as the request).
func TestPolicyDenialLengthIsBoundedPerRule(t *testing.T) {
	const n = 200_000
	failing := make([]policy.Finding, 0, n+1)
	for i := range n {
		failing = append(failing, policy.Finding{Rule: "bind-read-only", Requirements: []string{"SEC-MOUNTS"}, Message: fmt.Sprintf("bind /srv/%d is writable", i)})
	}
	failing = append(failing, policy.Finding{Rule: "non-root", Requirements: []string{"SEC-IDENTITY"}, Message: "runs as root"})
	d := policyDenial(http.StatusForbidden, failing)
	want := "denied by bind-read-only [SEC-MOUNTS]: bind /srv/0 is writable, "
	if !strings.HasPrefix(d.message, want) {
		t.Fatalf("message starts %q, want %q", d.message[:min(len(d.message), 120)], want)
	}
	if got := strings.Count(d.message, " is writable"); got != maxMessagesPerRule {
		t.Errorf("%d findings of one rule spelled out, want %d", got, maxMessagesPerRule)
	}
	if more := fmt.Sprintf("bind /srv/%d is writable (+%d more); non-root [SEC-IDENTITY]: runs as root", maxMessagesPerRule-1, n-maxMessagesPerRule); !strings.HasSuffix(d.message, more) {
		t.Errorf("message ends %q, want %q", d.message[max(0, len(d.message)-160):], more)
	}
	if len(d.message) > 1024 {
		t.Errorf("denial of %d findings is %d bytes long", n+1, len(d.message))
	}
	if strings.Join(d.rules, ",") != "bind-read-only,non-root" {
		t.Errorf("rules = %v", d.rules)
	}
	// Under the bound, every finding is named, with no count.
	d = policyDenial(http.StatusForbidden, failing[:3])
	if d.message != "denied by bind-read-only [SEC-MOUNTS]: bind /srv/0 is writable, bind /srv/1 is writable, bind /srv/2 is writable" {
		t.Errorf("three findings: %q", d.message)
	}
}

func TestTagTargetsBoundsParameterValues(t *testing.T) {
	q := url.Values{}
	for i := range maxTagValues {
		q.Add("repo", fmt.Sprintf("r%d", i))
		q.Add("tag", fmt.Sprintf("t%d", i))
	}
	got, err := tagTargets(q)
	if err != nil || len(got) != maxTagValues*maxTagValues {
		t.Fatalf("%d repos × %d tags: %d targets, %v", maxTagValues, maxTagValues, len(got), err)
	}
	for _, key := range []string{"repo", "TAG"} {
		over := url.Values{}
		for k, v := range q {
			over[k] = append([]string(nil), v...)
		}
		over.Add(key, "extra")
		if _, err := tagTargets(over); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d %s parameters", maxTagValues+1, strings.ToLower(key))) {
			t.Errorf("%d %s values: %v, want an error naming the count", maxTagValues+1, key, err)
		}
	}
}

// TestVolumesFromIsJudgedOncePerContainer: a container named again in
// VolumesFrom, in any spelling, adds the same mounts; before, each mention
// copied all of them again, so the work (and the findings) followed the
// list's length. Read-only and read-write stay apart: they differ.
func TestVolumesFromIsJudgedOncePerContainer(t *testing.T) {
	tg := startGuard(t)
	img := dockertest.Build(t)
	id, name := dockertest.Run(t, dockertest.Spec{Name: "sock", Image: img.NonRoot, Host: container.HostConfig{Binds: []string{"/var/run/docker.sock:/var/run/docker.sock"}}, NoStart: true})
	spellings := []string{id, id[:12], name}
	var from []string
	for len(from) < maxListEntries {
		from = append(from, spellings[len(from)%len(spellings)])
	}
	from = append(from[:maxListEntries-1], id+":ro")
	body := mustJSON(t, compliant(img.NonRoot, func(r *container.CreateRequest) { r.HostConfig.VolumesFrom = from }))
	r := raw(t, tg.socket(t, "admission"), request("POST", "/v1.41/containers/create", body))
	if r.status != http.StatusForbidden {
		t.Fatalf("status %d, want 403: %s", r.status, r.message())
	}
	msg := r.message()
	rw := "mounts the Docker socket (/var/run/docker.sock → /var/run/docker.sock, writable)"
	ro := "mounts the Docker socket (/var/run/docker.sock → /var/run/docker.sock, read-only, which still grants the whole API)"
	if strings.Count(msg, rw) != 1 || strings.Count(msg, ro) != 1 || strings.Contains(msg, "more)") {
		t.Errorf("%d references to one container, %d of them read-only: want its socket judged once read-write and once read-only, got %q", len(from), 1, msg)
	}
}
