package policy

import (
	"github.com/hy-home/hyhome/internal/workload"
)

// secrets-in-env: credentials come from Docker secrets, not environment values.
// What a name and a value mean is read in secrets.go.
var ruleSecretsInEnv = &Rule{
	ID:           "secrets-in-env",
	Requirements: []string{"Strategy-ST-01"},
	Severity:     Error,
	Description:  "Credentials must come from Docker secrets, not environment values.",
	Remediation:  "Declare the credential under `secrets:` and point the service at the file, e.g. `DB_PASSWORD_FILE: /run/secrets/db_password`.",
	Requests:     []Request{RequestCreate},
	Check:        checkSecretsInEnv,
}

func checkSecretsInEnv(w *workload.Workload, _ *Env) []Violation {
	var vs []Violation
	for _, e := range w.Env {
		if v := judgeEnv(e); v.report {
			vs = append(vs, Violation{Message: v.message, Pos: w.At(e.Pos), Severity: v.severity})
		}
	}
	return vs
}
