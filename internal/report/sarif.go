package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/hy-home/hyhome/internal/policy"
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

// location makes the physical location of file:line:column; nil for a
// runtime source with no file.
func (a *sarifArtifacts) location(file string, line, column int) *sarifPhysicalLocation {
	if file == "" {
		return nil
	}
	uri := sarifURI(file, a.base)
	baseID := ""
	if !filepath.IsAbs(file) || a.base != "" && !strings.HasPrefix(uri, "file://") {
		baseID = "%SRCROOT%"
	}
	i, ok := a.index[uri]
	if !ok {
		i = len(a.list)
		a.index[uri] = i
		a.list = append(a.list, sarifArtifact{Location: sarifArtifactLocation{URI: uri, URIBaseID: baseID}})
	}
	pl := &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: uri, URIBaseID: baseID, Index: &i}}
	if line > 0 {
		pl.Region = &sarifRegion{StartLine: line, StartColumn: column}
	}
	return pl
}

func writeSARIF(w io.Writer, r *Report, o Options) error {
	driver := sarifDriver{Name: r.Tool, Version: r.Version, InformationURI: SARIFInformationURI, Rules: []sarifRule{}}
	ruleIndex := make(map[string]int, len(r.Rules))
	for i, rule := range r.Rules {
		ruleIndex[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
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
	arts := &sarifArtifacts{index: map[string]int{}, base: o.BaseDir}
	results := make([]sarifResult, 0, len(r.Findings))
	for i := range r.Findings {
		f := &r.Findings[i]
		idx, ok := ruleIndex[f.Rule]
		if !ok {
			return fmt.Errorf("finding of rule %q, which the report's catalogue lacks", f.Rule)
		}
		loc := sarifLocation{
			PhysicalLocation: arts.location(f.File, f.Line, f.Column),
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
		results = append(results, res)
	}
	inv := sarifInvocation{ExecutionSuccessful: len(r.Errors) == 0}
	for _, e := range r.Errors {
		n := sarifNotification{Level: "error", Message: sarifText{e.Message}}
		if pl := arts.location(e.File, e.Line, e.Column); pl != nil {
			n.Locations = []sarifLocation{{PhysicalLocation: pl}}
		}
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, n)
	}
	doc := sarifLog{Schema: SARIFSchema, Version: SARIFVersion, Runs: []sarifRun{{
		Tool:        sarifTool{Driver: driver},
		Invocations: []sarifInvocation{inv},
		Artifacts:   arts.list,
		Results:     results,
	}}}
	// Compact: SARIF is read by tools, and indenting a large log doubles
	// the memory and time it takes to write.
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := json.NewEncoder(bw).Encode(doc); err != nil {
		return err
	}
	return bw.Flush()
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
