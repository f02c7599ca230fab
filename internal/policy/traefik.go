package policy

import (
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// traefikUnknownTLS is the finding for a router without tls in a project
// with no Traefik gateway: its entry points are defined by a gateway lint
// cannot see, so whether they terminate TLS is unknown, not "not TLS".
func traefikUnknownTLS(owner *workload.Workload, r workload.Router) Violation {
	eps := "its entry points"
	if len(r.EntryPoints) > 0 {
		eps = "entry points " + strings.Join(r.EntryPoints, ", ")
	}
	return Violation{
		Workload: owner,
		Message: fmt.Sprintf("Traefik %s router %q sets no tls, and no Traefik gateway in this project says whether %s terminate TLS: TLS status unknown (set tls=true, or lint the gateway's compose file with this one)",
			r.Protocol, r.Name, eps),
		Pos:      owner.At(r.Pos),
		Severity: Warning,
	}
}
