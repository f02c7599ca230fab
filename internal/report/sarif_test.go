package report

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hy-home/hyhome/internal/policy"
)

// sarifSchema compiles the OASIS SARIF 2.1.0 schema checked in under
// testdata (origin in testdata/README.md).
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(SARIFSchema, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SARIFSchema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSARIFMatchesTheSchema validates every shape of report against the
// SARIF 2.1.0 schema, and holds what the schema allows but code scanning
// misreads out of the output: rules switched off, zero-value and -1
// fillers, empty arrays (issue 12, item 5).
func TestSARIFMatchesTheSchema(t *testing.T) {
	schema := sarifSchema(t)
	withErrors := sample()
	withErrors.Errors = []InputError{
		{File: "deploy/broken.yaml", Line: 4, Column: 3, Message: `invalid YAML: mapping key "services" already defined at line 1`},
		{File: "deploy/unreadable.yaml", Message: "permission denied"},
	}
	// The validator must refuse what the schema refuses, or passing means
	// nothing.
	bad := strings.Replace(render(t, "sarif", sample()), `"level":"error"`, `"level":"fatal"`, 1)
	if inst, err := jsonschema.UnmarshalJSON(strings.NewReader(bad)); err != nil || schema.Validate(inst) == nil {
		t.Fatalf("a result with level fatal validates (%v)", err)
	}
	for name, r := range map[string]*Report{"empty": {Command: "lint"}, "findings": sample(), "errors": withErrors} {
		t.Run(name, func(t *testing.T) {
			out := render(t, "sarif", r)
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("SARIF does not match the 2.1.0 schema: %v\n%s", err, out)
			}
			var walk func(path string, v any)
			walk = func(path string, v any) {
				switch x := v.(type) {
				case map[string]any:
					if e, ok := x["enabled"]; ok && e != true {
						t.Errorf("%s.enabled = %v: a rule declared off", path, e)
					}
					for _, k := range []string{"rank", "byteOffset", "charOffset", "parentIndex", "length", "kind"} {
						if _, ok := x[k]; ok && !(k == "kind" && strings.HasSuffix(path, "logicalLocations[]") || k == "kind" && strings.HasSuffix(path, "suppressions[]")) {
							t.Errorf("%s has filler %q", path, k)
						}
					}
					for k, e := range x {
						walk(path+"."+k, e)
					}
				case []any:
					if len(x) == 0 && !strings.HasSuffix(path, ".results") && !strings.HasSuffix(path, ".rules") {
						t.Errorf("%s is an empty array", path)
					}
					for _, e := range x {
						walk(path+"[]", e)
					}
				case json.Number:
					if n, _ := x.Int64(); n < 0 {
						t.Errorf("%s = %v", path, x)
					}
				case float64:
					if x < 0 {
						t.Errorf("%s = %v", path, x)
					}
				}
			}
			walk("$", inst)
		})
	}
}

// TestSARIFRulesAndErrors: every rule is declared with its level and no
// `enabled: false`; load errors are tool execution notifications with
// their location, and make the invocation unsuccessful.
func TestSARIFRulesAndErrors(t *testing.T) {
	r := sample()
	r.Errors = []InputError{{File: "deploy/broken.yaml", Line: 4, Column: 3, Message: "invalid YAML: boom"}}
	var doc sarifLog
	var b bytes.Buffer
	if err := Write(&b, "sarif", r, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	run := doc.Runs[0]
	if len(run.Tool.Driver.Rules) != len(policy.Default.Rules()) {
		t.Errorf("%d rules declared, want the catalogue's %d", len(run.Tool.Driver.Rules), len(policy.Default.Rules()))
	}
	for _, rule := range run.Tool.Driver.Rules {
		if rule.DefaultConfiguration.Level == "" {
			t.Errorf("rule %s has no level", rule.ID)
		}
	}
	for _, res := range run.Results {
		if run.Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID {
			t.Errorf("result %s points at rule index %d (%s)", res.RuleID, res.RuleIndex, run.Tool.Driver.Rules[res.RuleIndex].ID)
		}
	}
	inv := run.Invocations[0]
	if inv.ExecutionSuccessful || len(inv.ToolExecutionNotifications) != 1 {
		t.Fatalf("invocation = %+v, want unsuccessful with one notification", inv)
	}
	n := inv.ToolExecutionNotifications[0]
	pl := n.Locations[0].PhysicalLocation
	if n.Level != "error" || n.Message.Text != "invalid YAML: boom" || pl.ArtifactLocation.URI != "deploy/broken.yaml" || pl.Region.StartLine != 4 || pl.Region.StartColumn != 3 {
		t.Errorf("notification = %+v at %+v", n, pl)
	}
}
