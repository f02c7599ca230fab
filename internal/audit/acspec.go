package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/workload"
)

// ACSpec01 is the ID of SPEC-SYS-01's security audit acceptance check.
const ACSpec01 = "AC-SPEC-01"

// Checks lists the acceptance checks `hyhome audit --check` runs.
var Checks = []string{ACSpec01}

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

// swarmTaskLabel is set by the engine on every Swarm task's container.
const swarmTaskLabel = "com.docker.swarm.task.id"

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

// CheckResult is the outcome of an acceptance check.
type CheckResult struct {
	ID          string        `json:"id"`
	Title       string        `json:"title"`
	Requirement string        `json:"requirement"`
	Command     string        `json:"command"`
	Pass        bool          `json:"pass"`
	Summary     string        `json:"summary"`
	Containers  []ACContainer `json:"containers"`
	Notices     []Notice      `json:"notices,omitempty"`
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
func CheckACSpec01(snap *Snapshot) *CheckResult {
	r := &CheckResult{
		ID:          ACSpec01,
		Title:       "Security Audit",
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
		case c.Labels[swarmTaskLabel] != "":
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

// WriteText renders the check the way an operator reads it: the spec's
// command, then each container's view of it.
func (r *CheckResult) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s\n", r.ID, r.Title, r.Command)
	fmt.Fprintf(&b, "every container labelled %s must print a list that includes %s\n\n", workload.LabelTier, acWant)
	if len(r.Containers) > 0 {
		var table bytes.Buffer
		tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
		for _, c := range r.Containers {
			verdict := "PASS"
			if !c.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(tw, "  %s\t%s (%s)\ttier=%s\t%s\t%s\n", verdict, c.Name, engine.ShortID(c.ID), c.Tier, c.View, c.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		// Passing lines have no reason; drop the padding that aligned it.
		for _, line := range strings.SplitAfter(table.String(), "\n") {
			if line != "" {
				b.WriteString(strings.TrimRight(line, " \n") + "\n")
			}
		}
		b.WriteString("\n")
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s %s: %s\n", r.ID, verdict, r.Summary)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON renders the check as one JSON document.
func (r *CheckResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJUnit renders the check as a JUnit test suite, one test case per
// container, so that CI systems show which container failed it.
func (r *CheckResult) WriteJUnit(w io.Writer) error {
	s := report.JUnitSuite{Name: r.ID + " " + r.Title}
	for _, c := range r.Containers {
		tc := report.JUnitCase{Name: c.Source, Classname: r.ID, Output: c.View}
		if !c.Pass {
			tc.Failure = &report.JUnitMessage{Message: c.Reason, Body: r.Command + " → " + c.View}
			s.Failures++
		}
		s.Cases = append(s.Cases, tc)
	}
	if len(r.Containers) == 0 {
		s.Cases = append(s.Cases, report.JUnitCase{Name: "labelled containers", Classname: r.ID, Failure: &report.JUnitMessage{Message: r.Summary}})
		s.Failures++
	}
	s.Tests = len(s.Cases)
	return report.WriteJUnit(w, s)
}

// WriteMarkdown renders the check as a Markdown table (CI job summaries).
func (r *CheckResult) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "# %s (%s): %s\n\n`%s`\n\n", r.ID, r.Title, verdict, r.Command)
	if len(r.Containers) > 0 {
		b.WriteString("| result | container | tier | view | reason |\n|---|---|---|---|---|\n")
		for _, c := range r.Containers {
			v := "PASS"
			if !c.Pass {
				v = "FAIL"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s |\n", v, mdCell(c.Source), mdCell(c.Tier), mdCell(c.View), mdCell(c.Reason))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s\n", r.Summary)
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// CheckFormats maps a --format name to the check's writer.
var CheckFormats = map[string]func(*CheckResult, io.Writer) error{
	"text":     (*CheckResult).WriteText,
	"json":     (*CheckResult).WriteJSON,
	"junit":    (*CheckResult).WriteJUnit,
	"markdown": (*CheckResult).WriteMarkdown,
}
