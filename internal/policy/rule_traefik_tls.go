package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// traefik-tls: every Traefik router is TLS, with TLS options of TLS 1.2 or
// later. It reads the routers and the gateway configuration the sources put
// on the workloads (internal/traefik parses them); it never parses labels or
// files itself. A project rule: a router is judged against the gateway's
// entry points and TLS options, so the guard judges it on no single request.
var ruleTraefikTLS = &Rule{
	ID:           "traefik-tls",
	Requirements: []string{"IF-EXTERNAL"},
	Severity:     Error,
	Description:  "Traefik routers must use TLS, with TLS options of minVersion VersionTLS12 or later.",
	Remediation:  "Set `traefik.http.routers.<name>.tls=true` (or serve the router only on a TLS entry point) and set `tls.options.default.minVersion: VersionTLS12` in Traefik's dynamic configuration.",
	CheckProject: checkTraefikTLS,
}

// tlsVersions orders Traefik's minVersion values.
var tlsVersions = map[string]int{"VersionTLS10": 10, "VersionTLS11": 11, "VersionTLS12": 12, "VersionTLS13": 13}

func checkTraefikTLS(p *workload.Project, _ *Env) []Violation {
	var vs []Violation
	var gw *workload.Workload
	for _, w := range p.Workloads {
		if w.Gateway != nil {
			gw = w
			break
		}
	}
	var eps map[string]workload.EntryPoint
	if gw != nil {
		eps = gw.Gateway.EntryPoints
	}
	usedOptions := map[string]bool{}
	judge := func(owner *workload.Workload, r workload.Router) {
		if r.TLS {
			name := r.TLSOptions
			if name == "" {
				name = "default"
			}
			usedOptions[name] = true
			return
		}
		if entryPointsTLS(r.EntryPoints, eps) {
			usedOptions["default"] = true
			return
		}
		if gw == nil {
			vs = append(vs, traefikUnknownTLS(owner, r))
			return
		}
		where := "its entry points are not TLS"
		if len(r.EntryPoints) > 0 {
			where = fmt.Sprintf("entry points %s are not TLS", strings.Join(r.EntryPoints, ", "))
		}
		vs = append(vs, Violation{Workload: owner, Message: fmt.Sprintf("Traefik %s router %q serves plain text: no tls and %s", r.Protocol, r.Name, where), Pos: owner.At(r.Pos)})
	}
	for _, w := range p.Workloads {
		for _, r := range w.Routers {
			judge(w, r)
		}
	}
	if gw == nil {
		return vs
	}
	for _, r := range gw.Gateway.Routers {
		judge(gw, r)
	}
	usedOptions["default"] = true
	names := make([]string, 0, len(usedOptions))
	for n := range usedOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		o, ok := gw.Gateway.TLSOptions[name]
		files := "no dynamic configuration file was found among its bind mounts"
		if len(gw.Gateway.Files) > 0 {
			files = "read " + strings.Join(gw.Gateway.Files, ", ")
		}
		switch {
		case !ok:
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q do not set minVersion (%s)", name, files), Pos: gw.Pos})
		case o.MinVersion == "":
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q do not set minVersion", name), Pos: gw.At(o.Pos)})
		case tlsVersions[o.MinVersion] == 0:
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q have unknown minVersion %q", name, o.MinVersion), Pos: gw.At(o.Pos)})
		case tlsVersions[o.MinVersion] < 12:
			vs = append(vs, Violation{Workload: gw, Message: fmt.Sprintf("Traefik TLS options %q allow %s, below TLS 1.2", name, o.MinVersion), Pos: gw.At(o.Pos)})
		}
	}
	return vs
}

// entryPointsTLS reports whether every entry point a router listens on
// terminates TLS or redirects to one that does. A router naming no entry
// point listens on all of them.
func entryPointsTLS(names []string, eps map[string]workload.EntryPoint) bool {
	if len(eps) == 0 {
		return false
	}
	if len(names) == 0 {
		for n := range eps {
			names = append(names, n)
		}
	}
	for _, n := range names {
		ep, ok := entryPoint(eps, n)
		if !ok {
			return false
		}
		if ep.TLS {
			continue
		}
		if to, ok := entryPoint(eps, ep.RedirectTo); ok && to.TLS {
			continue
		}
		return false
	}
	return true
}

// entryPoint finds an entry point by name; names set through environment
// variables are lower-cased, so the match ignores case.
func entryPoint(eps map[string]workload.EntryPoint, name string) (workload.EntryPoint, bool) {
	if ep, ok := eps[name]; ok {
		return ep, true
	}
	for n, ep := range eps {
		if strings.EqualFold(n, name) {
			return ep, true
		}
	}
	return workload.EntryPoint{}, false
}

// traefikUnknownTLS is the finding for a router without tls in a project
// with no Traefik gateway: its entry points are defined by a gateway lint
// cannot see, so whether they terminate TLS is unknown, not "not TLS".
func traefikUnknownTLS(owner *workload.Workload, r workload.Router) Violation {
	eps := "its entry points"
	if len(r.EntryPoints) > 0 {
		eps = "entry points " + strings.Join(r.EntryPoints, ", ")
	}
	return Violation{
		Workload: owner,
		Message: fmt.Sprintf("Traefik %s router %q sets no tls, and no Traefik gateway in this project says whether %s terminate TLS: TLS status unknown (set tls=true, or lint the gateway's compose file with this one)",
			r.Protocol, r.Name, eps),
		Pos:      owner.At(r.Pos),
		Severity: Warning,
	}
}
