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
	Unseen: map[Source]string{
		SourceContainer: "compose mounts a secret into a container as a read-only bind of its file: outside /run/secrets/ the container shows a bind, not a secret",
	},
	Check: checkSecretTarget,
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
