package policy

import (
	"fmt"

	"github.com/hy-home/hyhome/internal/workload"
)

// secret-target: secrets are mounted under /run/secrets/.
var ruleSecretTarget = &Rule{
	ID:           "secret-target",
	Requirements: []string{"Strategy-ST-01"},
	Severity:     Error,
	Description:  "Secrets must be mounted under /run/secrets/.",
	Remediation:  "Drop the custom `target:` or make it a name or path under /run/secrets/.",
	Requests:     []Request{RequestCreate},
	Check:        checkSecretTarget,
}

func checkSecretTarget(w *workload.Workload, _ *Env) []Violation {
	var vs []Violation
	for _, s := range w.Secrets {
		if !underRunSecrets(s.Target) {
			vs = append(vs, Violation{Message: fmt.Sprintf("secret %s is mounted at %s, outside /run/secrets/", s.Source, s.Target), Pos: w.At(s.Pos)})
		}
	}
	return vs
}
