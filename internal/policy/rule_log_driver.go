package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// log-driver: the engine delivers a container's output only through an
// allowed log driver, with allowed options.
var ruleLogDriver = &Rule{
	ID:           "log-driver",
	Requirements: []string{"NFR-SEC-01", "OPS-TELEMETRY"},
	Severity:     Error,
	Description:  "Containers must log through an allowed log driver (json-file or local by default) with allowed options.",
	Remediation:  "Use `logging: {driver: json-file}` (or `local`) with max-size/max-file; allow another driver in the guard profile (`admission.log_drivers`) only after reading where the engine sends the output.",
	Requests:     []Request{RequestCreate, RequestExec, RequestPlugin},
	Check:        checkLogDriver,
}

func checkLogDriver(w *workload.Workload, env *Env) []Violation {
	l := w.Logging
	if l.Driver == "" && len(l.Options) == 0 {
		return nil
	}
	allowed := env.Allow.LogDrivers
	if allowed == nil {
		allowed = DefaultLogDrivers
	}
	at := w.At(l.Pos)
	driver := l.Driver
	var opts []string
	switch {
	case driver == "" && env.Host.LogDriver != "":
		driver = env.Host.LogDriver
	case driver == "":
		// The engine's default driver, unknown here, takes the options:
		// only those every allowed driver takes are sure to be harmless.
		opts = nil
		first := true
		for _, os := range allowed {
			if first {
				opts, first = append([]string(nil), os...), false
				continue
			}
			opts = slices.DeleteFunc(opts, func(o string) bool { return !slices.Contains(os, o) })
		}
	}
	if driver != "" {
		var ok bool
		if opts, ok = allowed[driver]; !ok {
			return one(fmt.Sprintf("log driver %q is not allowed (allowed: %s): the engine, in the host's namespaces, delivers the container's output wherever the driver says", l.Driver, strings.Join(sortedKeys(allowed), ", ")), at)
		}
	}
	var vs []Violation
	for _, k := range sortedKeys(l.Options) {
		if !slices.Contains(opts, k) {
			vs = append(vs, Violation{Message: fmt.Sprintf("log option %s is not allowed for driver %q (allowed: %s)", k, orDefault(l.Driver), strings.Join(opts, ", ")), Pos: at})
		}
	}
	return vs
}

func orDefault(driver string) string {
	if driver == "" {
		return "(the engine's default)"
	}
	return driver
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
