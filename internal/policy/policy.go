// Package policy holds the rule catalogue of SPEC-SYS-01 and evaluates it on
// workloads. Every rule is written once against workload.Workload, so lint,
// audit and guard judge alike; a rule never parses YAML or JSON and never
// talks to the engine. Exemptions (ADR-backed labels) are applied here, in
// one place.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/adr"
	"github.com/hy-home/hyhome/internal/workload"
)

// Severity of a finding. The zero value means "the rule's default".
type Severity int

const (
	Info Severity = iota + 1
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "unknown"
}

// MarshalText renders the severity as its name in JSON and other encodings.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity parses "info", "warning" (or "warn") and "error".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want info, warning or error)", s)
}

// Request is a kind of Docker API write request. The guard judges each
// request with the rules that declare its kind (Rule.Requests), judged on
// the workload the request creates or hands out.
type Request string

const (
	// RequestCreate creates a container or a Swarm service, or replaces a
	// service's spec: the request is the whole workload.
	RequestCreate Request = "create"
	// RequestExec hands out a process in, or the files of, an existing
	// container: exec create and start, container start, restart, attach,
	// archive (cp) and export. The container is judged as the engine reports it,
	// with the exec's user and privileges.
	RequestExec Request = "exec"
	// RequestPlugin grants a plugin (or a Swarm plugin service) its
	// privileges: mounts, devices, capabilities, namespaces. A plugin has
	// no user to judge.
	RequestPlugin Request = "plugin"
	// RequestUpdate changes a running container's resources; it is refused
	// only for what it makes fail that did not fail before.
	RequestUpdate Request = "update"
	// RequestBuild runs the classic builder's containers, in the network
	// the request names.
	RequestBuild Request = "build"
	// RequestVolume creates a volume: judged as the mount its driver will
	// make in every container that uses it.
	RequestVolume Request = "volume"
)

// Requests lists every request kind, in the order the catalogue shows them.
var Requests = []Request{RequestCreate, RequestExec, RequestPlugin, RequestUpdate, RequestBuild, RequestVolume}

// Describe says in a phrase which requests are of kind k and what is judged.
func (k Request) Describe() string {
	switch k {
	case RequestCreate:
		return "container and Swarm service create (and service update): the request is the whole workload"
	case RequestExec:
		return "exec create and start, container start, restart, attach, archive (cp) and export: the existing container, with the exec's user and privileges"
	case RequestPlugin:
		return "plugin pull, upgrade and enable, and Swarm plugin services: the privileges the plugin asks for"
	case RequestUpdate:
		return "container update: the new resources, refused only for what they make fail that did not fail before"
	case RequestBuild:
		return "build (the classic builder): the network its build containers get"
	case RequestVolume:
		return "volume create: the mount its driver will make in every container that uses it"
	}
	return ""
}

// Source is a form hyhome reads workloads from, at the grain of what the
// form can show. A rule may apply to a source that cannot show what it
// judges (Rule.Unseen).
type Source string

const (
	// SourceCompose is a compose file (lint).
	SourceCompose Source = "compose"
	// SourceContainer is the engine's container API: a container as
	// inspect reports it (audit) or as a create request asks for it
	// (guard).
	SourceContainer Source = "container"
	// SourceService is a Swarm service spec (audit), or a service create
	// or update request (guard).
	SourceService Source = "service"
)

// Sources lists every source, in the order the catalogue shows them.
var Sources = []Source{SourceCompose, SourceContainer, SourceService}

// Rule is one check of the catalogue.
type Rule struct {
	ID           string
	Requirements []string
	Severity     Severity
	Description  string // one line, what the rule wants
	Remediation  string // what to change, ending with a period
	// Kinds limits the sources the rule applies to; empty means all. A
	// source a rule does not apply to cannot see what it judges (only a
	// compose file has the &security-baseline anchor).
	Kinds []workload.Kind
	// Requests are the kinds of API request the guard judges with this
	// rule. A per-workload rule that applies to request workloads judges
	// create requests at least; a project rule judges none (one request
	// does not carry how workloads add up or refer to each other: lint and
	// audit judge it on the whole project).
	Requests []Request
	// Unseen names the sources that cannot show what the rule judges,
	// each with the reason. The rule still runs there and reports what it
	// sees; the cross-source fixture test holds every other source to
	// what lint finds, and checks that these really differ.
	Unseen map[Source]string
	// Check judges one workload. Exactly one of Check and CheckProject is set.
	Check func(w *workload.Workload, env *Env) []Violation
	// CheckProject judges a project as a whole (e.g. a memory budget).
	CheckProject func(p *workload.Project, env *Env) []Violation
}

// AppliesTo reports whether the rule judges workloads of kind k.
func (r *Rule) AppliesTo(k workload.Kind) bool {
	if len(r.Kinds) == 0 {
		return true
	}
	for _, x := range r.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Judges reports whether the guard judges requests of kind k with the rule.
func (r *Rule) Judges(k Request) bool { return slices.Contains(r.Requests, k) }

// Violation is what a check reports; Evaluate turns it into a Finding.
type Violation struct {
	// Workload is required for project checks; Check fills it in itself.
	Workload *workload.Workload
	Message  string
	// Pos is where the offending value is written; zero means the workload.
	Pos workload.Position
	// Severity overrides the rule's default when set.
	Severity Severity
}

// Finding is one violation of one rule by one workload, as reported.
type Finding struct {
	Rule         string        `json:"rule"`
	Requirements []string      `json:"requirements"`
	Severity     Severity      `json:"severity"`
	Kind         workload.Kind `json:"kind"`
	Project      string        `json:"project,omitempty"`
	Service      string        `json:"service"`
	Source       string        `json:"source"`
	File         string        `json:"file,omitempty"`
	Line         int           `json:"line,omitempty"`
	Column       int           `json:"column,omitempty"`
	Message      string        `json:"message"`
	Remediation  string        `json:"remediation"`
	Exempted     bool          `json:"exempted"`
	ADR          string        `json:"adr,omitempty"`
	Tier         string        `json:"tier,omitempty"`
	// ServicePos is where the workload is defined; reports group by it.
	ServicePos workload.Position `json:"-"`
}

// Group is the heading a finding is reported under: the file defining its
// workload, or its runtime source.
func (f *Finding) Group() string {
	if f.ServicePos.File != "" {
		return f.ServicePos.File
	}
	if f.File != "" {
		return f.File
	}
	return f.Source
}

// Location renders file:line, or the runtime source.
func (f *Finding) Location() string {
	switch {
	case f.File != "" && f.Line > 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	case f.File != "":
		return f.File
	}
	return f.Source
}

// Registry is an ordered catalogue of rules with unique IDs.
type Registry struct {
	rules []*Rule
	byID  map[string]*Rule
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byID: map[string]*Rule{}} }

// Register adds rules, refusing duplicates and incomplete rules.
func (r *Registry) Register(rules ...*Rule) error {
	for _, rule := range rules {
		switch {
		case rule.ID == "":
			return fmt.Errorf("rule without ID")
		case r.byID[rule.ID] != nil:
			return fmt.Errorf("duplicate rule ID %q", rule.ID)
		case (rule.Check == nil) == (rule.CheckProject == nil):
			return fmt.Errorf("rule %q: exactly one of Check and CheckProject must be set", rule.ID)
		case rule.Severity < Info || rule.Severity > Error:
			return fmt.Errorf("rule %q: invalid severity", rule.ID)
		}
		if err := checkRequests(rule); err != nil {
			return err
		}
		r.byID[rule.ID] = rule
		r.rules = append(r.rules, rule)
	}
	sort.SliceStable(r.rules, func(i, j int) bool { return r.rules[i].ID < r.rules[j].ID })
	return nil
}

// checkRequests holds a rule's request kinds and unseen sources to what it
// can judge.
func checkRequests(rule *Rule) error {
	seen := map[Request]bool{}
	for _, k := range rule.Requests {
		switch {
		case !slices.Contains(Requests, k):
			return fmt.Errorf("rule %q: unknown request kind %q", rule.ID, k)
		case seen[k]:
			return fmt.Errorf("rule %q: request kind %q declared twice", rule.ID, k)
		}
		seen[k] = true
	}
	for src, why := range rule.Unseen {
		switch {
		case !slices.Contains(Sources, src):
			return fmt.Errorf("rule %q: unknown source %q", rule.ID, src)
		case why == "":
			return fmt.Errorf("rule %q: says source %q cannot see it without saying why", rule.ID, src)
		}
	}
	switch {
	case rule.CheckProject != nil && len(rule.Requests) > 0:
		return fmt.Errorf("rule %q: a project rule judges no single request", rule.ID)
	case rule.Check != nil && !rule.AppliesTo(workload.KindRequest) && len(rule.Requests) > 0:
		return fmt.Errorf("rule %q: judges requests but does not apply to request workloads", rule.ID)
	case rule.Check != nil && rule.AppliesTo(workload.KindRequest) && !seen[RequestCreate]:
		return fmt.Errorf("rule %q: a per-workload rule that applies to requests must judge create requests", rule.ID)
	}
	return nil
}

// MustRegister is Register for package initialisation.
func (r *Registry) MustRegister(rules ...*Rule) {
	if err := r.Register(rules...); err != nil {
		panic(err)
	}
}

// Rules returns the rules sorted by ID.
func (r *Registry) Rules() []*Rule { return append([]*Rule(nil), r.rules...) }

// Get returns the rule with the given ID.
func (r *Registry) Get(id string) *Rule { return r.byID[id] }

// Env is what rules may know beyond the workload itself.
type Env struct {
	Registry *Registry
	// ADRs resolves exemption references; nil means the default locations.
	ADRs *adr.Resolver
	// Strict ignores every exemption; claims that do not hold are still
	// reported (adr-exemption).
	Strict bool
	// NoExemptions ignores exemption labels altogether: nothing is
	// exempted and claims are not judged. The guard sets it on listeners
	// whose profile does not honour exemptions, where the labels are just
	// labels.
	NoExemptions bool
	// HostMemory in bytes, for the memory budget and memory limits; 0
	// means unknown (Evaluate takes the project's when it knows it).
	HostMemory int64
	// Host is what the source learnt about the host: the engine's data
	// root, the group of its socket, its default masked paths.
	Host workload.Host
	// Allow holds what a guard profile allows beyond the baseline; lint
	// and audit judge with the zero value (see Allowlists).
	Allow Allowlists
	// Only, when set, restricts evaluation to these rule IDs.
	Only map[string]bool
	// Disabled rule IDs are not evaluated.
	Disabled map[string]bool

	// exemptions holds what Evaluate already read of each workload's
	// exemption labels, so the adr-exemption rule does not read them again.
	exemptions map[*workload.Workload]exemption
}

// Enabled reports whether a rule is evaluated under this environment.
func (e *Env) Enabled(id string) bool {
	if e.Disabled[id] {
		return false
	}
	return len(e.Only) == 0 || e.Only[id]
}

// Evaluate runs every enabled rule on every workload of the project and
// returns the findings, exemptions applied, in a stable order.
func Evaluate(p *workload.Project, callerEnv *Env) []Finding {
	// A copy, so that one Env may serve concurrent evaluations.
	local := *callerEnv
	if local.Registry == nil {
		local.Registry = Default
	}
	return evaluate(p, &local)
}

// evaluate is Evaluate on an Env the caller owns, with its Registry set.
// Rules that judge another workload (namespace-join) call it: referring to
// Default from a rule would make the catalogue its own initialiser.
func evaluate(p *workload.Project, env *Env) []Finding {
	if p.HostMemory == 0 {
		p.HostMemory = env.HostMemory
	}
	if env.HostMemory == 0 {
		env.HostMemory = p.HostMemory
	}
	env.exemptions = make(map[*workload.Workload]exemption, len(p.Workloads))
	for _, w := range p.Workloads {
		env.exemptions[w] = exemptionOf(w, env)
	}
	exemptions := env.exemptions
	out := make([]Finding, 0, 4*len(p.Workloads))
	for _, rule := range env.Registry.rules {
		if !env.Enabled(rule.ID) {
			continue
		}
		var vs []Violation
		if rule.CheckProject != nil {
			vs = rule.CheckProject(p, env)
		} else {
			for _, w := range p.Workloads {
				if !rule.AppliesTo(w.Kind) {
					continue
				}
				for _, v := range rule.Check(w, env) {
					v.Workload = w
					vs = append(vs, v)
				}
			}
		}
		for _, v := range vs {
			if v.Workload == nil || !rule.AppliesTo(v.Workload.Kind) {
				continue
			}
			out = append(out, newFinding(rule, v, exemptions[v.Workload], env))
		}
	}
	Sort(out)
	return out
}

func newFinding(rule *Rule, v Violation, ex exemption, env *Env) Finding {
	w := v.Workload
	pos := w.At(v.Pos)
	sev := rule.Severity
	if v.Severity != 0 {
		sev = v.Severity
	}
	f := Finding{
		Rule:         rule.ID,
		Requirements: rule.Requirements,
		Severity:     sev,
		Kind:         w.Kind,
		Project:      w.Project,
		Service:      w.Name,
		Source:       w.Display,
		File:         pos.File,
		Line:         pos.Line,
		Column:       pos.Column,
		Message:      v.Message,
		Remediation:  rule.Remediation,
		Tier:         w.Tier(),
		ServicePos:   w.Pos,
	}
	if f.Source == "" {
		f.Source = w.Where()
	}
	if !env.Strict && rule.ID != RuleADRExemption && ex.valid[rule.ID] {
		f.Exempted = true
		f.ADR = ex.adr
	}
	return f
}

// Sort orders findings by the file (or source) defining their workload, the
// workload's position, then the finding's file, line, rule and message.
// Findings are large structs: it sorts an index and moves each one once.
func Sort(fs []Finding) {
	if len(fs) < 2 {
		return
	}
	idx := make([]int32, len(fs))
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.SliceStable(idx, func(i, j int) bool { return less(&fs[idx[i]], &fs[idx[j]]) })
	sorted := make([]Finding, len(fs))
	for i, k := range idx {
		sorted[i] = fs[k]
	}
	copy(fs, sorted)
}

func less(a, b *Finding) bool {
	if ga, gb := a.Group(), b.Group(); ga != gb {
		return ga < gb
	}
	if a.ServicePos.Line != b.ServicePos.Line {
		return a.ServicePos.Line < b.ServicePos.Line
	}
	if a.Service != b.Service {
		return a.Service < b.Service
	}
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	if a.Rule != b.Rule {
		return a.Rule < b.Rule
	}
	return a.Message < b.Message
}

// Summary counts findings.
type Summary struct {
	Files    int `json:"files"`
	Services int `json:"services"`
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Infos    int `json:"infos"`
	Exempted int `json:"exempted"`
}

// Summarize counts findings by severity; exempted findings count only as exempted.
func Summarize(fs []Finding) Summary {
	var s Summary
	for _, f := range fs {
		if f.Exempted {
			s.Exempted++
			continue
		}
		switch f.Severity {
		case Error:
			s.Errors++
		case Warning:
			s.Warnings++
		default:
			s.Infos++
		}
	}
	return s
}

// Failing reports whether any unexempted finding is at or above threshold.
func Failing(fs []Finding, threshold Severity) bool {
	for _, f := range fs {
		if !f.Exempted && f.Severity >= threshold {
			return true
		}
	}
	return false
}
