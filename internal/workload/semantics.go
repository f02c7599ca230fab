package workload

import (
	"path"
	"strconv"
	"strings"
)

// The label contract between the stack, the rules and the daemons (DESIGN.md).
const (
	LabelTier        = "hy-home.tier"
	LabelJob         = "hy-home.job"
	LabelADR         = "hy-home.adr"
	LabelExempt      = "hy-home.exempt"
	LabelMetrics     = "hy-home.metrics"
	LabelMetricsPort = "hy-home.metrics.port"
	LabelMetricsPath = "hy-home.metrics.path"

	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
	LabelStackNamespace = "com.docker.stack.namespace"
)

// Tiers with a meaning to the rules.
const (
	TierInfra   = "infra"
	TierGateway = "gateway"
)

// SecurityOption is one parsed --security-opt entry.
type SecurityOption struct {
	Key, Value string
	// Index is the entry's position in SecurityOpt.
	Index int
	// Valid is false when the daemon would refuse the entry.
	Valid bool
}

// ParseSecurityOpt splits an entry the way the daemon does
// (daemon/create.go parseSecurityOpt): a bare "no-new-privileges" means
// true; otherwise "key=value", or the deprecated "key:value" when there is
// no "=".
func ParseSecurityOpt(opt string) SecurityOption {
	opt = strings.TrimSpace(opt)
	switch {
	case opt == "no-new-privileges":
		return SecurityOption{Key: opt, Value: "true", Valid: true}
	case opt == "disable":
		return SecurityOption{Key: "label", Value: "disable", Valid: true}
	case strings.Contains(opt, "="):
		k, v, _ := strings.Cut(opt, "=")
		return SecurityOption{Key: k, Value: v, Valid: true}
	case strings.Contains(opt, ":"):
		k, v, _ := strings.Cut(opt, ":")
		return SecurityOption{Key: k, Value: v, Valid: true}
	default:
		return SecurityOption{Key: opt, Valid: false}
	}
}

// NoNewPrivileges reports what the daemon would set for no-new-privileges
// from the workload's security options: the last entry wins, values parse as
// Go booleans (strconv.ParseBool, as the daemon does). idx is the index of
// the deciding entry, -1 when none; invalid is true when that entry's value
// is not a boolean (the daemon would refuse to create the container).
func (w *Workload) NoNewPrivileges() (set bool, idx int, invalid bool) {
	idx = -1
	for i, o := range w.SecurityOpt {
		so := ParseSecurityOpt(o)
		if so.Key != "no-new-privileges" {
			continue
		}
		b, err := strconv.ParseBool(so.Value)
		set, idx, invalid = b && err == nil, i, err != nil
	}
	return set, idx, invalid
}

// SecurityOptPosition returns where the i-th security option is written.
func (w *Workload) SecurityOptPosition(i int) Position {
	if i >= 0 && i < len(w.SecurityOptPos) && w.SecurityOptPos[i].Known() {
		return w.SecurityOptPos[i]
	}
	return w.At(w.SecurityOptAt)
}

// NormalizeCap returns a capability in canonical form: upper case without
// the CAP_ prefix ("cap_net_admin" → "NET_ADMIN", "all" → "ALL").
func NormalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	return strings.TrimPrefix(c, "CAP_")
}

// DropsAll reports whether the capability drop list contains ALL.
func (w *Workload) DropsAll() bool {
	for _, c := range w.CapDrop {
		if NormalizeCap(c) == "ALL" {
			return true
		}
	}
	return false
}

// RootUser reports whether a user specification (as in `user:` or
// `docker run -u`) runs as root: "root", "0", "0:1000", "root:staff",
// "00". An empty spec is not decided here (it means the image's default).
//
// A numeric user is read as runc reads it (strconv.Atoi), so "+0", "-0" and
// "000" are uid 0 too.
func RootUser(spec string) bool {
	u, _, _ := strings.Cut(strings.TrimSpace(spec), ":")
	if u == "root" {
		return true
	}
	if n, err := strconv.Atoi(u); err == nil && n == 0 {
		return true
	}
	return false
}

// EffectiveUser returns the user the process runs as and whether it is known:
// the workload's own user, else the image's default, else unknown (compose
// without the image at hand).
func (w *Workload) EffectiveUser() (user string, fromImage, known bool) {
	if strings.TrimSpace(w.User) != "" {
		return w.User, false, true
	}
	if w.ImageUserKnown {
		return w.ImageUser, true, true
	}
	return "", false, false
}

// IsDockerSocket reports whether a host path exposes the Docker API socket:
// the socket itself (any of its usual paths) or a directory containing it.
func IsDockerSocket(hostPath string) bool {
	raw := strings.TrimSpace(hostPath)
	if raw == "" {
		return false
	}
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//./") {
		// The engine cleans bind sources, so /var/./run is /var/run
		// (a Windows named pipe, //./pipe/..., is not a path to clean).
		raw = path.Clean(raw)
	}
	p := strings.TrimRight(raw, "/")
	switch p {
	case "", "/var":
		// The host's root and /var hold /var/run/docker.sock too: a bind of
		// either, even read-only, hands over the socket.
		return true
	case "/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run",
		"/var/run/docker", "/run/docker", "//./pipe/docker_engine", `\\.\pipe\docker_engine`,
		// containerd's API is the engine's backend: as much root as Docker's.
		"/run/containerd", "/var/run/containerd":
		return true
	}
	return strings.HasSuffix(p, "/docker.sock") || p == "docker.sock" || strings.HasSuffix(p, "/containerd.sock")
}

// ParseMemory parses a memory size as Docker and compose write it: a plain
// byte count or a number with b, k, m, g (optionally followed by b or ib;
// powers of 1024, as docker's RAMInBytes does) or ki/mi/gi/ti units.
func ParseMemory(s string) (int64, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, false
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, false
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "ib"), "b")
	unit = strings.TrimSuffix(unit, "i")
	mult := float64(1)
	switch unit {
	case "":
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	case "t":
		mult = 1 << 40
	case "p":
		mult = 1 << 50
	default:
		return 0, false
	}
	return int64(f * mult), true
}

// FormatBytes renders a byte count with binary units (e.g. "1.5 GiB").
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTP"[exp]) + "iB"
}
