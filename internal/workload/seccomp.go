package workload

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// dockerDefault is Docker's default seccomp profile, from the package the
// engine itself takes it from.
var dockerDefault = sync.OnceValue(seccomp.DefaultProfile)

// SeccompBeyondDefault says how a custom seccomp profile (the JSON the
// docker CLI sends as `seccomp=<profile>`) allows more than Docker's
// default profile: a default action that lets through what no rule names,
// a rule allowing a syscall that the default allows only under conditions
// the rule lacks (arguments, capabilities, architectures, kernel), or not
// at all, a notification listener or a flag that turns a mitigation off.
// It returns nothing when every syscall the profile allows, the default
// allows too under the same or weaker conditions. A profile that does not
// decode is reported: the engine refuses to create the container with it.
//
// The engine decodes the profile with encoding/json into these very types,
// so keys match case-insensitively here too.
func SeccompBeyondDefault(profile string) []string {
	var p seccomp.Seccomp
	if err := json.Unmarshal([]byte(profile), &p); err != nil {
		return []string{fmt.Sprintf("the profile does not decode (the engine refuses it): %v", err)}
	}
	var out []string
	if allowing(p.DefaultAction) {
		out = append(out, fmt.Sprintf("defaultAction %s allows every syscall no rule names", p.DefaultAction))
	}
	if p.ListenerPath != "" {
		out = append(out, fmt.Sprintf("listenerPath %q hands syscall decisions to a process outside the profile", p.ListenerPath))
	}
	for _, f := range p.Flags {
		if strings.EqualFold(string(f), "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
			out = append(out, "flag SECCOMP_FILTER_FLAG_SPEC_ALLOW turns off the speculative store bypass mitigation")
		}
	}
	def := dockerDefault()
	var beyond []string
	for _, r := range p.Syscalls {
		if r == nil || !allowing(r.Action) {
			continue
		}
		names := r.Names
		if r.Name != "" {
			names = append([]string{r.Name}, names...)
		}
		for _, name := range names {
			if !covered(name, r, def) && !slices.Contains(beyond, name) {
				beyond = append(beyond, name)
			}
		}
	}
	if len(beyond) > 0 {
		sort.Strings(beyond)
		const show = 8
		list := strings.Join(beyond[:min(show, len(beyond))], ", ")
		if len(beyond) > show {
			list += fmt.Sprintf(" and %d more", len(beyond)-show)
		}
		out = append(out, fmt.Sprintf("allows %s beyond what Docker's default profile allows", list))
	}
	return out
}

// allowing reports whether an action can let a syscall run: allow and log
// do; trace leaves it to a tracer, which the container can be for its own
// children; notify leaves it to the listener. Errno, trap and kill do not.
// Actions the runtime does not know make it refuse the profile.
func allowing(a specs.LinuxSeccompAction) bool {
	switch strings.ToUpper(string(a)) {
	case "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY":
		return true
	}
	return false
}

// covered reports whether some rule of the default profile allows syscall
// name whenever rule r does.
func covered(name string, r *seccomp.Syscall, def *seccomp.Seccomp) bool {
	for _, d := range def.Syscalls {
		if !allowing(d.Action) || !slices.Contains(d.Names, name) && d.Name != name {
			continue
		}
		if filterImplies(r.Includes, r.Excludes, d.Includes, d.Excludes) && argsImply(r.Args, d.Args) {
			return true
		}
	}
	return false
}

// clauses turns a rule's argument conditions into the alternatives runc
// installs: conditions on distinct arguments are one rule (all must hold);
// two or more on the same argument make runc add one rule per condition
// (any may hold).
func clauses(args []specs.LinuxSeccompArg) [][]specs.LinuxSeccompArg {
	seen := map[uint]bool{}
	for _, a := range args {
		if seen[a.Index] {
			out := make([][]specs.LinuxSeccompArg, len(args))
			for i, a := range args {
				out[i] = []specs.LinuxSeccompArg{a}
			}
			return out
		}
		seen[a.Index] = true
	}
	return [][]specs.LinuxSeccompArg{args}
}

// argsImply reports whether every alternative of r's conditions implies an
// alternative of d's: d's conditions are a subset of r's.
func argsImply(r, d []specs.LinuxSeccompArg) bool {
	dc := clauses(d)
	for _, rc := range clauses(r) {
		if !slices.ContainsFunc(dc, func(c []specs.LinuxSeccompArg) bool {
			for _, cond := range c {
				if !slices.Contains(rc, cond) {
					return false
				}
			}
			return true
		}) {
			return false
		}
	}
	return true
}

// filterImplies reports whether r applies only where d applies: the engine
// includes a rule only when the container has every capability in
// includes.caps, the architecture is in includes.arches and the kernel is
// at least includes.minKernel, and leaves it out when the container has
// any capability in excludes.caps, or the architecture or kernel match
// excludes.
func filterImplies(rInc, rExc, dInc, dExc *seccomp.Filter) bool {
	if rInc == nil {
		rInc = &seccomp.Filter{}
	}
	if rExc == nil {
		rExc = &seccomp.Filter{}
	}
	if dInc != nil {
		for _, c := range dInc.Caps {
			if !containsFold(rInc.Caps, c) {
				return false
			}
		}
		if len(dInc.Arches) > 0 {
			if len(rInc.Arches) == 0 {
				return false
			}
			for _, a := range rInc.Arches {
				if !slices.Contains(dInc.Arches, a) {
					return false
				}
			}
		}
		if dInc.MinKernel != nil && (rInc.MinKernel == nil || kernelLess(rInc.MinKernel, dInc.MinKernel)) {
			return false
		}
	}
	if dExc != nil {
		for _, c := range dExc.Caps {
			if !containsFold(rExc.Caps, c) {
				return false
			}
		}
		for _, a := range dExc.Arches {
			if !slices.Contains(rExc.Arches, a) && (len(rInc.Arches) == 0 || slices.Contains(rInc.Arches, a)) {
				return false
			}
		}
		if dExc.MinKernel != nil && (rExc.MinKernel == nil || kernelLess(dExc.MinKernel, rExc.MinKernel)) {
			return false
		}
	}
	return true
}

func kernelLess(a, b *seccomp.KernelVersion) bool {
	return a.Kernel < b.Kernel || a.Kernel == b.Kernel && a.Major < b.Major
}

func containsFold(xs []string, x string) bool {
	return slices.ContainsFunc(xs, func(s string) bool { return strings.EqualFold(s, x) })
}
