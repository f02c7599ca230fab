package guard

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Built-in profile names.
const (
	ProfileReadonly  = "readonly"
	ProfileShipper   = "shipper"
	ProfileAdmission = "admission"
)

// Profile is what a listener may do: the Engine API routes it may use, and
// the settings that relax a judgement denied by default (plugins it may
// install, permits, secrets it may read). Routes with an admission judge are
// judged in every profile that allows them. Nothing a request carries can
// change its profile: only the guard's configuration does.
type Profile struct {
	Name  string
	allow map[*Route]bool
	// exemptions: the judges honour hy-home.adr / hy-home.exempt labels
	// on this listener. Off in every built-in profile: whoever sends a
	// request writes its labels.
	exemptions bool
	// plugins are the plugins (familiar references, e.g.
	// "vieux/sshfs:latest") the profile may create, pull, upgrade and
	// enable; every other plugin is refused.
	plugins map[string]bool
	// permit are the judgements, denied by default, that the profile
	// allows.
	permit map[Permit]bool
	// reveal are the secret-bearing fields the profile's answers carry
	// unredacted.
	reveal map[Secret]bool
}

// HonoursExemptions reports whether admission on this profile lets an ADR
// exempt a request from a rule.
func (p *Profile) HonoursExemptions() bool { return p.exemptions }

// Permit names a judgement the guard denies by default and a profile may
// allow.
type Permit string

const (
	// PermitRetagInUse allows tagging an image (tag, commit, import) as a
	// reference that an existing container runs: the next time that
	// container is recreated it runs the new image, with whatever ADR
	// exemptions it was deployed with.
	PermitRetagInUse Permit = "retag-in-use"
	// PermitInfraNames allows network aliases and container names (create,
	// connect, rename) equal to a DNS name of an infrastructure container
	// (hy-home.tier infra or gateway): on a shared network both would
	// answer the name, and the newcomer would receive traffic meant for the
	// infrastructure service.
	PermitInfraNames Permit = "infra-names"
	// PermitHostInterfaceNetworks allows networks that put containers on a
	// host interface's link (macvlan, ipvlan, a bridge the host already
	// has): they bypass the host's firewall and published ports and reach
	// the host's LAN directly.
	PermitHostInterfaceNetworks Permit = "host-interface-networks"
)

var permits = []Permit{PermitRetagInUse, PermitInfraNames, PermitHostInterfaceNetworks}

// Secret names a class of secret-bearing fields in the engine's answers.
type Secret string

const (
	// SecretEnvironment: the values of containers' and services'
	// environment variables.
	SecretEnvironment Secret = "environment"
	// SecretLogOptions: log driver options (splunk-token, a URL with a
	// password).
	SecretLogOptions Secret = "log-options"
	// SecretVolumeOptions: volume driver options (a CIFS password in o=).
	SecretVolumeOptions Secret = "volume-options"
	// SecretExecCommands: the command lines of exec events.
	SecretExecCommands Secret = "exec-commands"
	// SecretJoinTokens: the Swarm's worker and manager join tokens.
	SecretJoinTokens Secret = "join-tokens"
)

var secrets = []Secret{SecretEnvironment, SecretLogOptions, SecretVolumeOptions, SecretExecCommands, SecretJoinTokens}

// Allows reports whether the profile lets a route through to judgement.
func (p *Profile) Allows(r *Route) bool { return p.allow[r] }

// Permits reports whether the profile allows a judgement denied by default.
func (p *Profile) Permits(x Permit) bool { return p.permit[x] }

// Reveals reports whether the profile's answers carry a class of secrets.
func (p *Profile) Reveals(s Secret) bool { return p.reveal[s] }

// AllowsPlugin reports whether the profile names a plugin (a familiar
// reference with its tag).
func (p *Profile) AllowsPlugin(ref string) bool { return p.plugins[ref] }

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

// Plugins returns the plugins the profile names, sorted.
func (p *Profile) Plugins() []string { return sortedKeys(p.plugins) }

// PermitList returns the profile's permits, sorted.
func (p *Profile) PermitList() []string { return sortedKeys(p.permit) }

// RevealList returns the secret classes the profile reveals, sorted.
func (p *Profile) RevealList() []string { return sortedKeys(p.reveal) }

func sortedKeys[K ~string](m map[K]bool) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, string(k))
		}
	}
	sort.Strings(out)
	return out
}

// merge adds what another profile allows (a profile's include).
func (p *Profile) merge(o *Profile) {
	for r := range o.allow {
		p.allow[r] = true
	}
	for k := range o.plugins {
		p.plugins[k] = true
	}
	for k := range o.permit {
		p.permit[k] = true
	}
	for k := range o.reveal {
		p.reveal[k] = true
	}
}

func emptyProfile(name string) *Profile {
	return &Profile{Name: name, allow: map[*Route]bool{}, plugins: map[string]bool{}, permit: map[Permit]bool{}, reveal: map[Secret]bool{}}
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

// admissionWithheld are the routes the admission profile leaves out,
// although it is the whole API otherwise: each hands out more than the rule
// catalogue can judge. A custom profile that includes admission may allow
// them again (allow: [...]); docs/guard-threat-model.md says why each is
// withheld.
var admissionWithheld = []string{
	// Swarm membership and control: a node that joins a foreign manager
	// runs whatever that manager schedules; init makes the engine a manager
	// listening on :2377; leave, update, unlock and node changes take the
	// cluster apart or change who may join; the unlock key decrypts the
	// managers' Raft logs.
	"POST /swarm/init",
	"POST /swarm/join",
	"POST /swarm/leave",
	"POST /swarm/update",
	"POST /swarm/unlock",
	"GET /swarm/unlockkey",
	"POST /nodes/{id}/update",
	"DELETE /nodes/{id}",
	// Builds: RUN steps run as root with Docker's default capabilities,
	// without no-new-privileges and without a memory limit unless the
	// client asks; the session carries the build's context, secrets and SSH
	// agent.
	"POST /build",
	"POST /build/cancel",
	"POST /session",
	// Prunes remove what other users and stopped services still own: a
	// stopped service's data volume is "unused" to /volumes/prune.
	"POST /containers/prune",
	"POST /images/prune",
	"POST /volumes/prune",
	"POST /networks/prune",
	"POST /build/prune",
	// An image archive names its own tags inside the stream: loading one
	// can replace the image any container of the stack runs, and the guard
	// cannot see the tags before the engine applies them.
	"POST /images/load",
}

// builtinProfiles returns the built-in profiles. Admission allows every
// route the table knows but those in admissionWithheld; its writes are
// judged, and POST /grpc (BuildKit's control API) is judged unjudgeable, so
// that its refusal says why. It reveals what its users could read from
// inside the containers they may exec into, but not the Swarm's join
// tokens; the read-only profiles reveal no secret.
func builtinProfiles() map[string]*Profile {
	ro := mustProfile(ProfileReadonly, readonlyRoutes)
	sh := mustProfile(ProfileShipper, append(append([]string(nil), readonlyRoutes...), shipperRoutes...))
	adm := emptyProfile(ProfileAdmission)
	for _, r := range routes.all {
		adm.allow[r] = true
	}
	for _, n := range admissionWithheld {
		r, err := lookupRoute(n)
		if err != nil {
			panic("guard: admission profile: " + err.Error())
		}
		delete(adm.allow, r)
	}
	for _, s := range []Secret{SecretEnvironment, SecretLogOptions, SecretVolumeOptions, SecretExecCommands} {
		adm.reveal[s] = true
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
	p := emptyProfile(name)
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

// profileSettings reads a profile's plugins, permits and revealed secrets.
func profileSettings(p *Profile, fp fileProfile, at func(int, string, ...any) error) error {
	for _, n := range fp.Plugins {
		if n.Kind != yaml.ScalarNode {
			return at(n.Line, "profile %q: plugins entries are plugin references such as \"vieux/sshfs:latest\"", p.Name)
		}
		ref, err := pluginRef(n.Value)
		if err != nil {
			return at(n.Line, "profile %q: plugin %q: %v", p.Name, n.Value, err)
		}
		p.plugins[ref] = true
	}
	for _, n := range fp.Permit {
		if n.Kind != yaml.ScalarNode || !slices.Contains(permits, Permit(n.Value)) {
			return at(n.Line, "profile %q: unknown permit %q (want one of %s)", p.Name, n.Value, joinNames(permits))
		}
		p.permit[Permit(n.Value)] = true
	}
	for _, n := range fp.Reveal {
		if n.Kind != yaml.ScalarNode || !slices.Contains(secrets, Secret(n.Value)) {
			return at(n.Line, "profile %q: unknown reveal %q (want one of %s)", p.Name, n.Value, joinNames(secrets))
		}
		p.reveal[Secret(n.Value)] = true
	}
	return nil
}

func joinNames[S ~string](xs []S) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return strings.Join(out, ", ")
}
