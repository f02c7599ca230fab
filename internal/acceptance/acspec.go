// Package acceptance holds the acceptance checks that judge a read of the
// engine, so that hyhome audit --check and hyhome verify run the one
// implementation: AC-SPEC-01 (the spec's security audit, on the containers
// a source.Snapshot holds). It also names a check's requirement the same way
// for every command.
//
// It judges what a snapshot holds; it must not read the engine (the source
// does) or render anything (internal/report does).
package acceptance

import (
	"bytes"
	"fmt"
	"text/template"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/workload"
)

// ACSpec01 is the ID of SPEC-SYS-01's security audit acceptance check, and
// ACSpec01Title its title.
const (
	ACSpec01      = "AC-SPEC-01"
	ACSpec01Title = "Security Audit"
)

// acTemplate is the spec's own view: `docker inspect --format` with this
// template. The docker CLI executes it on the typed inspect response, so a
// []string prints as "[a b]" and a nil one as "[]"; executing the same
// template on the same type here reproduces that output byte for byte.
const acTemplate = "{{.HostConfig.SecurityOpt}}"

// ACCommand is the command the check stands for, as the spec writes it.
const ACCommand = "docker inspect --format '" + acTemplate + "' <container>"

// acWant is what the spec says the output must include.
const acWant = "no-new-privileges:true"

var acTmpl = template.Must(template.New("ac-spec-01").Parse(acTemplate))

// inspectView is the shape acTemplate walks: the field path of the engine's
// inspect response (.HostConfig.SecurityOpt, a []string).
type inspectView struct {
	HostConfig struct{ SecurityOpt []string }
}

// SecurityOptView renders .HostConfig.SecurityOpt exactly as
// `docker inspect --format '{{.HostConfig.SecurityOpt}}'` prints it.
func SecurityOptView(opts []string) string {
	var v inspectView
	v.HostConfig.SecurityOpt = opts
	var b bytes.Buffer
	if err := acTmpl.Execute(&b, v); err != nil {
		// The template is a constant walking a fixed type: it cannot fail.
		return fmt.Sprint(opts)
	}
	return b.String()
}

// SwarmTaskNoNewPrivileges says why a Swarm task lacks the option: its
// container gets only what the service spec carries, and a service spec has
// no security_opt. no-new-privileges reaches it only as
// ContainerSpec.Privileges.NoNewPrivileges (Engine API 1.44 and later),
// which `docker stack deploy` does not set from security_opt (docker/cli
// converts only credential specs); the daemon-wide default
// ({"no-new-privileges": true} in daemon.json) is the remedy, and the check
// still fails because it reads the container's own SecurityOpt.
const SwarmTaskNoNewPrivileges = "a Swarm task: docker stack deploy drops security_opt from the service spec " +
	"(no-new-privileges reaches a service only as ContainerSpec.Privileges.NoNewPrivileges, Engine API 1.44+, which docker stack deploy does not set); " +
	`set {"no-new-privileges": true} in the daemon's daemon.json`

// ACContainer is one container's line of the check.
type ACContainer struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Tier   string `json:"tier"`
	Source string `json:"source"`
	// View is the output of the spec's docker inspect command.
	View string `json:"view"`
	// Includes is true when View includes no-new-privileges:true.
	Includes bool `json:"includes"`
	// Effective is whether the daemon runs the container with
	// no-new-privileges (the last no-new-privileges entry decides).
	Effective bool   `json:"effective"`
	Pass      bool   `json:"pass"`
	Reason    string `json:"reason,omitempty"`
}

// ACSpec01Result is AC-SPEC-01's outcome: its verdict and, container by
// container, what the spec's command prints. It is the check's detail in
// a report (JSON "security").
type ACSpec01Result struct {
	ID          string          `json:"id"`
	Title       string          `json:"title"`
	Requirement string          `json:"requirement"`
	Command     string          `json:"command"`
	Pass        bool            `json:"pass"`
	Summary     string          `json:"summary"`
	Containers  []ACContainer   `json:"containers"`
	Notices     []source.Notice `json:"notices,omitempty"`
}

// CheckACSpec01 runs AC-SPEC-01 on the containers of a snapshot: every
// container that carries hy-home.tier (the mark of the standardised
// templates) must print a SecurityOpt that includes no-new-privileges:true.
//
// Two decisions go beyond the spec's one line, both towards failing:
//
//   - The entry must also be in force. `[no-new-privileges:true
//     no-new-privileges:false]` includes the string, but the daemon applies
//     the last entry, so the process may gain privileges; that fails. The
//     bare `no-new-privileges` form is in force but does not print the
//     string the spec asserts, so it fails too, with a reason saying so: the
//     check is the spec's, and the templates write `:true`.
//   - No labelled container at all fails. The check's Given is "a service
//     deployed via standardized templates"; with none running, nothing was
//     verified, and a vacuous pass would hide a failed or unlabelled
//     deployment exactly when the check is run to catch it.
func CheckACSpec01(snap *source.Snapshot) *ACSpec01Result {
	r := &ACSpec01Result{
		ID:          ACSpec01,
		Title:       ACSpec01Title,
		Requirement: "SPEC-SYS-01 §6 AC-SPEC-01",
		Command:     ACCommand,
		Notices:     snap.Notices,
	}
	failed := 0
	for _, c := range snap.Containers {
		tier, ok := c.Labels[workload.LabelTier]
		if !ok {
			continue
		}
		view := SecurityOptView(c.SecurityOpt)
		w := &workload.Workload{SecurityOpt: c.SecurityOpt}
		effective, idx, invalid := w.NoNewPrivileges()
		includes := false
		for _, o := range c.SecurityOpt {
			if o == acWant {
				includes = true
			}
		}
		line := ACContainer{
			Name: c.Name, ID: c.ID, Tier: tier, Source: c.Display(),
			View: view, Includes: includes, Effective: effective,
		}
		switch {
		case includes && effective:
			line.Pass = true
		case includes:
			line.Reason = fmt.Sprintf("includes %s, but a later entry %q turns it off", acWant, c.SecurityOpt[idx])
		case invalid:
			line.Reason = fmt.Sprintf("%s missing; entry %q is not a boolean", acWant, c.SecurityOpt[idx])
		case effective:
			line.Reason = fmt.Sprintf("%s missing: %q is in force but is not the form the check asserts; write %s", acWant, c.SecurityOpt[idx], acWant)
		case idx >= 0:
			line.Reason = fmt.Sprintf("%s missing; %q turns it off", acWant, c.SecurityOpt[idx])
		case snap.Engine.NoNewPrivilegesDefault:
			line.Reason = fmt.Sprintf("%s missing (the daemon's --no-new-privileges default applies, but the check reads the container's own SecurityOpt)", acWant)
		case c.Labels[source.LabelSwarmTaskID] != "":
			line.Reason = acWant + " missing: " + SwarmTaskNoNewPrivileges
		default:
			line.Reason = acWant + " missing"
		}
		if !line.Pass {
			failed++
		}
		r.Containers = append(r.Containers, line)
	}
	scope := "running container"
	if snap.Selection.All {
		scope = "container"
	}
	switch n := len(r.Containers); {
	case n == 0:
		r.Summary = fmt.Sprintf("no %s carries %s: no service deployed from the standardised templates was found, so nothing was verified (the check fails rather than pass vacuously)", scope, workload.LabelTier)
	case failed == 0:
		r.Pass = true
		r.Summary = fmt.Sprintf("all %d labelled container(s) include %s", n, acWant)
	default:
		r.Summary = fmt.Sprintf("%d of %d labelled container(s) lack %s", failed, n, acWant)
	}
	return r
}

// DetailKey is where a report's JSON holds the check's figures.
func (r *ACSpec01Result) DetailKey() string { return "security" }

// Describe lays out the spec's command and each container's view of it.
func (r *ACSpec01Result) Describe(d *report.Detail) {
	d.Linef("%s", r.Command)
	var rows [][]string
	for _, c := range r.Containers {
		name := c.Name
		if c.ID != "" {
			name = fmt.Sprintf("%s (%s)", c.Name, engine.ShortID(c.ID))
		}
		rows = append(rows, []string{verdict(c.Pass), name, "tier=" + c.Tier, c.View, c.Reason})
	}
	d.Table(rows)
}

func verdict(pass bool) string {
	if pass {
		return string(report.CheckPass)
	}
	return string(report.CheckFail)
}

// Result is the check as a report holds it.
func (r *ACSpec01Result) Result() *report.CheckResult {
	res := &report.CheckResult{ID: ACSpec01, Title: ACSpec01Title, Requirement: Requirement(ACSpec01), Status: report.CheckFail, Summary: r.Summary, Detail: r}
	if r.Pass {
		res.Status = report.CheckPass
	}
	return res
}

// Requirement is how a report names the requirement a check proves:
// "AC-SPEC-01 (SPEC-SYS-01 §6 Security Audit): <its text>", from the
// requirement catalogue ("" when the catalogue lacks it).
func Requirement(id string) string {
	rq, ok := policy.RequirementByID(id)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s (SPEC-SYS-01 %s): %s", rq.ID, rq.Section, rq.Text)
}

// Report is a check report of results judged on snap: the engine it read,
// when, and its notices. The caller names the command and version.
func Report(snap *source.Snapshot, results ...*report.CheckResult) *report.CheckReport {
	e := snap.Engine
	r := &report.CheckReport{
		Tool:            "hyhome",
		Spec:            "SPEC-SYS-01",
		Engine:          report.CheckEngine{Host: e.Host, Name: e.Name, ServerVersion: e.ServerVersion, CgroupVersion: e.CgroupVersion, NCPU: e.NCPU, MemTotal: e.MemTotal},
		Started:         snap.Started.UTC(),
		DurationSeconds: snap.Stats.Duration.Seconds(),
		Checks:          results,
	}
	for _, n := range snap.Notices {
		r.Notices = append(r.Notices, n.String())
	}
	return r
}
