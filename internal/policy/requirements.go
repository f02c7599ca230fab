package policy

// Requirement is a requirement of SPEC-SYS-01 (or an external benchmark the
// hardening extras follow). Sections the spec gives no ID of their own are
// named by a short, stable ID; Section says where they are in the spec.
type Requirement struct {
	ID      string
	Section string
	Text    string
}

// Requirements lists every requirement a rule or check may cite, in spec order.
var Requirements = []Requirement{
	{"NFR-SEC-01", "§1 Isolation", "Containers must not share the host's pid, network or ipc namespaces unless an ADR justifies it."},
	{"NFR-OBS-01", "§1 Latency", "Loki log ingestion latency is under 2 seconds for all local docker events."},
	{"NFR-RES-01", "§1 Density", "Infrastructure services together use under 20% of system memory when idle."},
	{"Strategy-ST-01", "§2 Storage", "Sensitive credentials are stored as Docker secrets (/run/secrets/)."},
	{"Strategy-ST-02", "§2 Storage", "Persistent volume mounts use infra_net for distributed data access where applicable."},
	{"Strategy-ST-03", "§2 Storage", "Bind mounts are read-only unless write access is functionally required."},
	{"IF-INTERNAL", "§3 Interfaces: Internal", "Every service exposes metrics via an OTLP-compatible endpoint or a Prometheus exporter."},
	{"IF-EXTERNAL", "§3 Interfaces: External", "Public access is routed through Traefik using TLS 1.2 or later."},
	{"SEC-ANCHORS", "§4 Anchors", "A local YAML anchor &security-baseline enforces no-new-privileges and cap_drop: ALL."},
	{"SEC-IDENTITY", "§4 Identity", "Root execution inside containers is strictly prohibited."},
	{"OPS-TELEMETRY", "§5 Telemetry", "The LGTM stack (Loki, Grafana, Tempo, Pyroscope) is the primary observability plane."},
	{"OPS-ALERTING", "§5 Alerting", "Alertmanager triggers Slack notifications for any hy-home.tier: infra service downtime."},
	{"AC-SPEC-01", "§6 Security Audit", "docker inspect of a templated service shows no-new-privileges:true in HostConfig.SecurityOpt."},
	{"AC-SPEC-02", "§6 Observability Integrity", "Logs of a crash or log event are found in Loki with {job=\"infra\", tier=\"gateway\"} within 5 seconds."},
	{"AC-SPEC-03", "§6 Resource Ceiling", "At 80% CPU load, baseline infrastructure services do not exceed their memory limits."},
	{"CIS-DOCKER", "CIS Docker Benchmark §4-5", "Container runtime hardening beyond the spec: read-only root, pids limit, health checks, confinement profiles, devices, pinned images."},
}

// RequirementByID returns the requirement with the given ID.
func RequirementByID(id string) (Requirement, bool) {
	for _, r := range Requirements {
		if r.ID == id {
			return r, true
		}
	}
	return Requirement{}, false
}
