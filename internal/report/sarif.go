package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/spool"
)

// SARIF 2.1.0 (OASIS, errata 01), the subset hyhome emits.
//
// The model is written here rather than taken from a SARIF library: the Go
// libraries' types serialise fields their constructors fill with defaults
// (`enabled`, `rank`, `-1` offsets and indexes, empty arrays), and a rule
// declared with `defaultConfiguration.enabled: false` is a rule GitHub code
// scanning is told is off. Every field below is one a reader uses; what
// the schema defaults is left out. TestSARIFMatchesTheSchema validates the
// output against the OASIS schema.

// SARIFSchema and SARIFVersion identify the format.
const (
	SARIFSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	SARIFVersion = "2.1.0"
)

// SARIFInformationURI is where rule documentation lives.
const SARIFInformationURI = "https://github.com/hy-home/hyhome/blob/main/docs/rules.md"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Artifacts   []sarifArtifact   `json:"artifacts,omitempty"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name"`
	ShortDescription     sarifText       `json:"shortDescription"`
	FullDescription      sarifText       `json:"fullDescription"`
	Help                 sarifText       `json:"help"`
	HelpURI              string          `json:"helpUri"`
	DefaultConfiguration sarifRuleConfig `json:"defaultConfiguration"`
	Properties           map[string]any  `json:"properties"`
}

// sarifRuleConfig leaves `enabled` (default true) and `rank` (default -1,
// "no rank") to the schema's defaults.
type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifArtifact struct {
	Location sarifArtifactLocation `json:"location"`
}

type sarifArtifactLocation struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
	// Index points into run.artifacts; nil where there is no artifact.
	Index *int `json:"index,omitempty"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           *sarifRegion          `json:"region,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

type sarifLogicalLocation struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName,omitempty"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

// securitySeverity is GitHub code scanning's numeric severity property.
var securitySeverity = map[policy.Severity]string{policy.Error: "8.0", policy.Warning: "5.0", policy.Info: "2.0"}

var sarifLevel = map[policy.Severity]string{policy.Error: "error", policy.Warning: "warning", policy.Info: "note"}

// sarifArtifacts lists each file once and gives its index in run.artifacts.
type sarifArtifacts struct {
	list  []sarifArtifact
	index map[string]int
	base  string
}

// where is the URI and base of a file's artifact: where it is, not its
// index, so it may be asked concurrently.
func (a *sarifArtifacts) where(file string) (uri, baseID string) {
	uri = sarifURI(file, a.base)
	if !filepath.IsAbs(file) || a.base != "" && !strings.HasPrefix(uri, "file://") {
		baseID = "%SRCROOT%"
	}
	return uri, baseID
}

// indexOf gives the artifact its index, the next one when it is new.
func (a *sarifArtifacts) indexOf(uri, baseID string) int {
	i, ok := a.index[uri]
	if !ok {
		i = len(a.list)
		a.index[uri] = i
		a.list = append(a.list, sarifArtifact{Location: sarifArtifactLocation{URI: uri, URIBaseID: baseID}})
	}
	return i
}

// location makes the physical location of file:line:column; nil for a
// runtime source with no file.
func (a *sarifArtifacts) location(file string, line, column int) *sarifPhysicalLocation {
	if file == "" {
		return nil
	}
	uri, baseID := a.where(file)
	i := a.indexOf(uri, baseID)
	pl := &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: uri, URIBaseID: baseID, Index: &i}}
	if line > 0 {
		pl.Region = &sarifRegion{StartLine: line, StartColumn: column}
	}
	return pl
}

// sarifStream writes the log as json.Encoder would write it whole
// (compact: SARIF is read by tools). The results come last in a run, after
// the artifacts they point into and the invocation that lists the inputs
// that did not load, so they go to a spool and follow the run's head at
// End. Prepare encodes each result on its own; what only the order of the
// results decides, a file's index in run.artifacts, is spliced in by Add.
type sarifStream struct {
	out       io.Writer
	driver    sarifDriver
	ruleIndex map[string]int
	arts      *sarifArtifacts
	results   *spool.Spool
	n         int
}

// sarifSplice is where a prepared result's artifact index goes.
type sarifSplice struct {
	// end is where the result ends in the part's data; at is where
	// `,"index":N` goes in it, or -1 when it has no file.
	end, at     int
	uri, baseID string
}

func newSARIFStream(out io.Writer, r *Report, o Options) (streamer, error) {
	s := &sarifStream{
		out:       out,
		driver:    sarifDriver{Name: r.Tool, Version: r.Version, InformationURI: SARIFInformationURI, Rules: []sarifRule{}},
		ruleIndex: make(map[string]int, len(r.Rules)),
		arts:      &sarifArtifacts{index: map[string]int{}, base: o.BaseDir},
		results:   spool.New(0),
	}
	for i, rule := range r.Rules {
		s.ruleIndex[rule.ID] = i
		s.driver.Rules = append(s.driver.Rules, sarifRule{
			ID:                   rule.ID,
			Name:                 ruleName(rule.ID),
			ShortDescription:     sarifText{rule.Description},
			FullDescription:      sarifText{rule.Description},
			Help:                 sarifText{rule.Remediation},
			HelpURI:              SARIFInformationURI + "#" + rule.ID,
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel[rule.Severity]},
			Properties: map[string]any{
				"requirements":      rule.Requirements,
				"tags":              append([]string{"security"}, rule.Requirements...),
				"security-severity": securitySeverity[rule.Severity],
			},
		})
	}
	return s, nil
}

func (s *sarifStream) close() { s.results.Close() }

var artifactLocationKey = []byte(`"artifactLocation":`)

func (s *sarifStream) prepare(p *Part) {
	var b []byte
	splices := make([]sarifSplice, 0, len(p.Findings))
	for i := range p.Findings {
		f := &p.Findings[i]
		idx, ok := s.ruleIndex[f.Rule]
		if !ok {
			p.err = fmt.Errorf("finding of rule %q, which the report's catalogue lacks", f.Rule)
			return
		}
		sp := sarifSplice{at: -1}
		var pl *sarifPhysicalLocation
		if f.File != "" {
			sp.uri, sp.baseID = s.arts.where(f.File)
			pl = &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: sp.uri, URIBaseID: sp.baseID}}
			if f.Line > 0 {
				pl.Region = &sarifRegion{StartLine: f.Line, StartColumn: f.Column}
			}
		}
		loc := sarifLocation{
			PhysicalLocation: pl,
			LogicalLocations: []sarifLogicalLocation{{Name: f.Service, FullyQualifiedName: strings.TrimSpace(f.Project + "/" + f.Service), Kind: "resource"}},
		}
		res := sarifResult{
			RuleID:              f.Rule,
			RuleIndex:           idx,
			Level:               sarifLevel[f.Severity],
			Message:             sarifText{fmt.Sprintf("%s: %s", f.Service, f.Message)},
			Locations:           []sarifLocation{loc},
			PartialFingerprints: map[string]string{"hyhome/v1": fingerprint(f)},
			Properties:          map[string]any{"requirements": f.Requirements},
		}
		if f.Source != "" {
			res.Properties["source"] = f.Source
		}
		if f.Exempted {
			res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: "exempted by " + f.ADR}}
		}
		enc, err := json.Marshal(res)
		if err == nil && pl != nil {
			// The artifact location is the first object after its key (a
			// key's quotes cannot occur unescaped in the strings before
			// it), and its encoding is the same on its own: the index goes
			// before its closing brace, where the encoder puts it.
			var al []byte
			if al, err = json.Marshal(pl.ArtifactLocation); err == nil {
				k := bytes.Index(enc, artifactLocationKey)
				if k < 0 || !bytes.HasPrefix(enc[k+len(artifactLocationKey):], al) {
					err = fmt.Errorf("encoding a SARIF result of %s: no artifact location", f.Rule)
				} else {
					sp.at = len(b) + k + len(artifactLocationKey) + len(al) - 1
				}
			}
		}
		if err != nil {
			p.err = err
			return
		}
		b = append(b, enc...)
		sp.end = len(b)
		splices = append(splices, sp)
	}
	p.data, p.aux = b, splices
}

func (s *sarifStream) add(p *Part) error {
	splices, _ := p.aux.([]sarifSplice)
	start := 0
	var num [24]byte
	for _, sp := range splices {
		if s.n > 0 {
			s.results.WriteString(",")
		}
		s.n++
		if sp.at < 0 {
			s.results.Write(p.data[start:sp.end])
		} else {
			i := s.arts.indexOf(sp.uri, sp.baseID)
			s.results.Write(p.data[start:sp.at])
			s.results.WriteString(`,"index":`)
			s.results.Write(strconv.AppendInt(num[:0], int64(i), 10))
			s.results.Write(p.data[sp.at:sp.end])
		}
		start = sp.end
	}
	_, err := s.results.Write(nil)
	return err
}

func (s *sarifStream) end(r *Report) error {
	inv := sarifInvocation{ExecutionSuccessful: len(r.Errors) == 0}
	for _, e := range r.Errors {
		n := sarifNotification{Level: "error", Message: sarifText{e.Message}}
		if pl := s.arts.location(e.File, e.Line, e.Column); pl != nil {
			n.Locations = []sarifLocation{{PhysicalLocation: pl}}
		}
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, n)
	}
	w := bufio.NewWriterSize(s.out, 64<<10)
	put := func(prefix string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		w.WriteString(prefix)
		w.Write(b)
		return nil
	}
	// The fields of sarifLog and sarifRun, in order.
	if err := put(`{"$schema":`, SARIFSchema); err != nil {
		return err
	}
	if err := put(`,"version":`, SARIFVersion); err != nil {
		return err
	}
	if err := put(`,"runs":[{"tool":`, sarifTool{Driver: s.driver}); err != nil {
		return err
	}
	if err := put(`,"invocations":`, []sarifInvocation{inv}); err != nil {
		return err
	}
	if len(s.arts.list) > 0 {
		if err := put(`,"artifacts":`, s.arts.list); err != nil {
			return err
		}
	}
	w.WriteString(`,"results":[`)
	if _, err := s.results.WriteTo(w); err != nil {
		return err
	}
	w.WriteString("]}]}\n")
	return w.Flush()
}

// sarifURI makes a path relative to base (the repository root GitHub
// resolves %SRCROOT% against) and uses forward slashes.
func sarifURI(file, base string) string {
	if base != "" {
		if abs, err := filepath.Abs(file); err == nil {
			if rel, err := filepath.Rel(base, abs); err == nil && !strings.HasPrefix(rel, "..") {
				return filepath.ToSlash(rel)
			}
			return "file://" + filepath.ToSlash(abs)
		}
	}
	if filepath.IsAbs(file) {
		return "file://" + filepath.ToSlash(file)
	}
	return filepath.ToSlash(file)
}

// fingerprint identifies a finding across runs without line numbers, so
// that code scanning tracks it through edits.
func fingerprint(f *policy.Finding) string {
	return strings.Join([]string{f.Rule, f.Project, f.Service, f.Message}, "|")
}

// ruleName turns "no-new-privileges" into "NoNewPrivileges" (SARIF names).
func ruleName(id string) string {
	var b strings.Builder
	for _, p := range strings.Split(id, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}
