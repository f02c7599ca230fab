package guard

import (
	"fmt"
	"sort"
	"strings"
)

// Built-in profile names.
const (
	ProfileReadonly  = "readonly"
	ProfileShipper   = "shipper"
	ProfileAdmission = "admission"
)

// Profile is the set of Engine API routes a listener may use. Routes with an
// admission judge are judged in every profile that allows them.
type Profile struct {
	Name  string
	allow map[*Route]bool
	// exemptions: the judges honour hy-home.adr / hy-home.exempt labels
	// on this listener. Off in every built-in profile: whoever sends a
	// request writes its labels.
	exemptions bool
}

// HonoursExemptions reports whether admission on this profile lets an ADR
// exempt a request from a rule.
func (p *Profile) HonoursExemptions() bool { return p.exemptions }

// Allows reports whether the profile lets a route through to judgement.
func (p *Profile) Allows(r *Route) bool { return p.allow[r] }

// Routes returns the names of the allowed routes in the engine's order.
func (p *Profile) Routes() []string {
	var out []string
	for _, r := range routes.all {
		if p.allow[r] {
			out = append(out, r.Name)
		}
	}
	return out
}

// readonlyRoutes is what the Engine API's read-only consumers call: Traefik's
// docker and swarm providers (version, container list/inspect, events,
// networks, services, tasks, nodes), Prometheus docker_sd and dockerswarm_sd
// (containers, networks, services, tasks, nodes), `hyhome audit` (containers
// and the images' default users, volumes for bind-style drivers, services,
// info for host memory) and the API version negotiation every client does
// (GET or HEAD /_ping).
//
// Left out on purpose: anything that writes; attach, exec, export, archive
// (docker cp, including HEAD, which stats files); image export (get); top
// and changes (process arguments, file names); /swarm (join tokens) and
// /swarm/unlockkey; plugins and /distribution (registry egress).
// Secrets' inspect returns metadata only (the engine never returns secret
// data); configs' payloads are returned, which Docker treats as non-secret.
// Container inspect returns Config.Env: credentials belong in secrets
// (rule secrets-in-env), not in the environment.
var readonlyRoutes = []string{
	"GET /_ping",
	"HEAD /_ping",
	"GET /version",
	"GET /info",
	"GET /events",
	"GET /containers/json",
	"GET /containers/{name}/json",
	"GET /images/json",
	"GET /images/{name}/json",
	"GET /networks",
	"GET /networks/",
	"GET /networks/{id}",
	"GET /volumes",
	"GET /volumes/{name}",
	"GET /services",
	"GET /services/{id}",
	"GET /tasks",
	"GET /tasks/{id}",
	"GET /nodes",
	"GET /nodes/{id}",
	"GET /secrets",
	"GET /secrets/{id}",
	"GET /configs",
	"GET /configs/{id}",
}

// shipperRoutes adds what a log shipper reads on top of readonly.
var shipperRoutes = []string{
	"GET /containers/{name}/logs",
}

// builtinProfiles returns the built-in profiles. Admission allows every
// route the table knows; its writes are judged, and POST /grpc (BuildKit's
// control API) is judged unjudgeable, so that its refusal says why.
func builtinProfiles() map[string]*Profile {
	ro := mustProfile(ProfileReadonly, readonlyRoutes)
	sh := mustProfile(ProfileShipper, append(append([]string(nil), readonlyRoutes...), shipperRoutes...))
	adm := &Profile{Name: ProfileAdmission, allow: map[*Route]bool{}}
	for _, r := range routes.all {
		adm.allow[r] = true
	}
	return map[string]*Profile{ro.Name: ro, sh.Name: sh, adm.Name: adm}
}

// mustProfile builds a profile from route names that are constants of this
// package; TestBuiltinProfiles covers them.
func mustProfile(name string, names []string) *Profile {
	p, err := newProfile(name, names)
	if err != nil {
		panic("guard: built-in profile " + name + ": " + err.Error())
	}
	return p
}

func newProfile(name string, names []string) (*Profile, error) {
	p := &Profile{Name: name, allow: map[*Route]bool{}}
	for _, n := range names {
		r, err := lookupRoute(n)
		if err != nil {
			return nil, err
		}
		p.allow[r] = true
	}
	return p, nil
}

// lookupRoute finds a route by its name ("GET /containers/{name}/json").
func lookupRoute(name string) (*Route, error) {
	n := strings.Join(strings.Fields(name), " ")
	if r, ok := routes.byName[n]; ok {
		return r, nil
	}
	method, p, _ := strings.Cut(n, " ")
	if up := strings.ToUpper(method); up != method {
		if _, ok := routes.byName[up+" "+p]; ok {
			return nil, fmt.Errorf("unknown route %q: methods are upper-case (%s %s)", name, up, p)
		}
	}
	for _, r := range routes.all {
		if r.Method == method && r.Template == p {
			return nil, fmt.Errorf("unknown route %q: write it without the variable pattern (%s)", name, r.Name)
		}
	}
	return nil, fmt.Errorf("unknown route %q (`hyhome guard routes` lists them)", name)
}

// ProfileNames lists the built-in profile names, sorted.
func ProfileNames() []string {
	out := []string{ProfileAdmission, ProfileReadonly, ProfileShipper}
	sort.Strings(out)
	return out
}

// BuiltinProfile returns the routes of a built-in profile, for
// documentation.
func BuiltinProfile(name string) ([]string, bool) {
	p, ok := builtinProfiles()[name]
	if !ok {
		return nil, false
	}
	return p.Routes(), true
}
