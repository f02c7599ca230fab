// Package audit judges what a Docker Engine runs: it evaluates the one
// policy catalogue on the workloads internal/engine/source reads from live
// containers and Swarm services, and exports the outcome, with the
// AC-SPEC-01 acceptance check (internal/acceptance), as Prometheus metrics
// for a long-running compliance exporter.
//
// It assembles results; it must not contain rules of its own (policy does),
// read the engine itself (the source does) or render reports (report does).
package audit

import (
	"context"

	"github.com/hy-home/hyhome/internal/acceptance"
	"github.com/hy-home/hyhome/internal/engine/source"
	"github.com/hy-home/hyhome/internal/human"
	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/workload"
)

// Checks lists the acceptance checks `hyhome audit --check` runs.
var Checks = []string{acceptance.ACSpec01}

// Result is one audit: what was read and what the rules found.
type Result struct {
	Snapshot *source.Snapshot
	Findings []policy.Finding
}

// Run reads the engine and evaluates the rule catalogue on what it runs.
// env carries exemptions and strictness exactly as for lint; its HostMemory
// is the engine's (Info.MemTotal) unless the caller set one.
func Run(ctx context.Context, src *source.Source, sel source.Selection, env *policy.Env) (*Result, error) {
	snap, err := src.Read(ctx, sel)
	if err != nil {
		return nil, err
	}
	return &Result{Snapshot: snap, Findings: Evaluate(snap, env)}, nil
}

// Evaluate runs the policy on a snapshot. A finding's Service is the compose
// service (or the Swarm stack's service) when the labels say so; Source
// still names the container or service it was found on.
func Evaluate(snap *source.Snapshot, env *policy.Env) []policy.Finding {
	if env == nil {
		env = &policy.Env{}
	}
	p := snap.Project()
	if env.HostMemory > 0 {
		p.HostMemory = env.HostMemory
	}
	if env.Host.DataRoot == "" && env.Host.CgroupnsDefault == "" {
		local := *env
		local.Host = snap.Engine.HostFacts()
		env = &local
	}
	fs := policy.Evaluate(p, env)
	svc := make(map[string]string, len(p.Workloads))
	for _, w := range p.Workloads {
		if w.Service != "" {
			svc[w.Display] = w.Service
		}
	}
	for i := range fs {
		if s, ok := svc[fs[i].Source]; ok {
			fs[i].Service = s
		}
	}
	policy.Sort(fs)
	return fs
}

// Targets lists the judged workloads, so that reports also show what passed.
func (r *Result) Targets() []report.Target {
	out := make([]report.Target, 0, len(r.Snapshot.Workloads))
	for _, w := range r.Snapshot.Workloads {
		name := w.Name
		if w.Service != "" {
			name = w.Service
		}
		out = append(out, report.Target{Service: name, Source: w.Display, Kind: string(w.Kind)})
	}
	return out
}

// Summary counts the findings; Services is the number of judged workloads.
func (r *Result) Summary() policy.Summary {
	s := policy.Summarize(r.Findings)
	s.Services = len(r.Snapshot.Workloads)
	return s
}

// Scope says what was judged, for the report's closing line:
// "12 containers, 2 Swarm services on engine host-1".
func (r *Result) Scope() string {
	var ctrs, svcs int
	for _, w := range r.Snapshot.Workloads {
		switch w.Kind {
		case workload.KindSwarm:
			svcs++
		default:
			ctrs++
		}
	}
	s := human.Plural(ctrs, "container")
	if r.Snapshot.Engine.SwarmManager && !r.Snapshot.Selection.ContainersOnly {
		s += ", " + human.Plural(svcs, "Swarm service")
	}
	return s
}

// NoticeLines renders the snapshot's notices for a report.
func (r *Result) NoticeLines() []string {
	out := make([]string, 0, len(r.Snapshot.Notices))
	for _, n := range r.Snapshot.Notices {
		out = append(out, n.String())
	}
	return out
}
