package policy

import (
	"fmt"
	"net"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// published-ports: only the gateway tier publishes host ports.
var rulePublishedPorts = &Rule{
	ID:           "published-ports",
	Requirements: []string{"IF-EXTERNAL"},
	Severity:     Error,
	Description:  "Only the gateway tier may publish host ports.",
	Remediation:  "Remove `ports:` and route through Traefik with labels (or bind to 127.0.0.1 for host-local access); only `hy-home.tier: gateway` may publish.",
	Requests:     []Request{RequestCreate},
	Check:        checkPublishedPorts,
}

func isLoopback(ip string) bool {
	p := net.ParseIP(strings.Trim(ip, "[]"))
	return p != nil && p.IsLoopback()
}

func checkPublishedPorts(w *workload.Workload, _ *Env) []Violation {
	if w.Tier() == workload.TierGateway {
		return nil
	}
	var vs []Violation
	for _, p := range w.Ports {
		if isLoopback(p.HostIP) {
			continue
		}
		host := p.Published
		if host == "" {
			host = "an ephemeral port"
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		vs = append(vs, Violation{Message: fmt.Sprintf("publishes %d/%s on host %s; public traffic must enter through the Traefik gateway", p.Target, proto, host), Pos: w.At(p.Pos)})
	}
	return vs
}
