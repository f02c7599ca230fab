package audit

import (
	"context"
	"fmt"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/report"
	"github.com/hy-home/hyhome/internal/workload"
)

// Result is one audit: what was read and what the rules found.
type Result struct {
	Snapshot *Snapshot
	Findings []policy.Finding
}

// Run reads the engine and evaluates the rule catalogue on what it runs.
// env carries exemptions and strictness exactly as for lint; its HostMemory
// is the engine's (Info.MemTotal) unless the caller set one.
func Run(ctx context.Context, src *Source, sel Selection, env *policy.Env) (*Result, error) {
	snap, err := src.Read(ctx, sel)
	if err != nil {
		return nil, err
	}
	return &Result{Snapshot: snap, Findings: Evaluate(snap, env)}, nil
}

// Evaluate runs the policy on a snapshot. A finding's Service is the compose
// service (or the Swarm stack's service) when the labels say so; Source
// still names the container or service it was found on.
func Evaluate(snap *Snapshot, env *policy.Env) []policy.Finding {
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
	s := plural(ctrs, "container")
	if r.Snapshot.Engine.SwarmManager && !r.Snapshot.Selection.ContainersOnly {
		s += ", " + plural(svcs, "Swarm service")
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// NoticeLines renders the snapshot's notices for a report.
func (r *Result) NoticeLines() []string {
	out := make([]string, 0, len(r.Snapshot.Notices))
	for _, n := range r.Snapshot.Notices {
		out = append(out, n.String())
	}
	return out
}
