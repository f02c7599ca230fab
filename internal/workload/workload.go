// Package workload is the one normalised model every policy rule is written
// against. Compose services, running containers, Swarm services and Docker
// API create/update requests are all turned into Workloads by their sources
// (internal/compose, internal/audit, internal/guard); rules never see YAML or
// JSON. This package owns the model and small, Docker-faithful helpers for
// reading it; it must not import any source or any rule.
package workload

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Kind says which source a Workload was built from.
type Kind string

const (
	KindCompose   Kind = "compose"   // a service in compose files
	KindContainer Kind = "container" // a container the engine reports
	KindSwarm     Kind = "swarm"     // a Swarm service spec
	KindRequest   Kind = "request"   // a create/update request seen by the guard
)

// Position is where a value is written. A zero Line means unknown.
//
// Compose sources give the YAML node that defines the value, in the file
// that writes it: a list item's own node (volumes, ports, devices, secrets,
// cap_add, security_opt), the value node of a mapping entry (environment,
// labels) or the item of their list form, the value of a scalar key. A
// value written through an alias is at the anchored node; one an `extends`
// base or an included file provides is in that file. Line and Column are
// 1-based, as the YAML parser reports them.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// Known reports whether the position names a file.
func (p Position) Known() bool { return p.File != "" }

func (p Position) String() string {
	switch {
	case p.File == "":
		return ""
	case p.Line == 0:
		return p.File
	default:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
}

// Namespace is the effective mode of one Linux namespace, after following
// `service:x` / `container:x` references.
type Namespace struct {
	// Mode is what was written: "", "host", "private", "service:db", "container:abc", ...
	Mode string
	// Effective is what the process gets: "host" when Mode is host or when it
	// joins a workload whose namespace is the host's.
	Effective string
	// Via names the workload the namespace was inherited from, if any.
	Via string
	// Joined is the workload a `container:x` or `service:x` mode joins,
	// with its whole configuration, when the source could look it up: a
	// join inherits what that workload can see and reach.
	Joined *Workload
	Pos    Position
}

// IsHost reports whether the workload shares the host's namespace.
func (n Namespace) IsHost() bool { return n.Effective == "host" }

// Namespaces are the Linux namespaces a workload may share with the host.
type Namespaces struct {
	PID, Network, IPC, UTS, UserNS, Cgroup Namespace
}

// Mount is a filesystem mount: bind, volume, tmpfs, npipe, image or cluster.
type Mount struct {
	Type     string // "bind", "volume", "tmpfs", "npipe", "image", "cluster"
	Source   string // host path for binds; volume name ("" when anonymous)
	Target   string // path inside the container
	ReadOnly bool
	// External is true for named volumes declared external (not created here).
	External bool
	// ViaVolumeDriver is set when a named volume is really a bind mount made
	// by the local driver (driver_opts o=bind, device=/path).
	ViaVolumeDriver string
	// Volume is the driver configuration of a volume mount (or of the
	// volume a ViaVolumeDriver bind came from) when the source knows it;
	// nil for a plain volume of the default driver.
	Volume *VolumeConfig
	Pos    Position
}

// VolumeConfig is a volume's driver and driver options, as the volume was
// (or will be) created.
type VolumeConfig struct {
	Driver  string // "" and "local" are the engine's built-in driver
	Options map[string]string
}

// SetVolume records a volume mount's driver configuration (nil: a plain
// volume of the default driver) and, when the local driver will bind a host
// path, turns the mount into the bind it is, so that every bind rule judges
// it.
func (m *Mount) SetVolume(cfg *VolumeConfig) {
	if cfg == nil || (cfg.Driver == "" || cfg.Driver == "local") && len(cfg.Options) == 0 {
		m.Volume = nil
		return
	}
	m.Volume = cfg
	if e := LocalVolume(cfg.Driver, cfg.Options); e.Type == "bind" {
		name := m.Source
		if m.ViaVolumeDriver != "" {
			name = m.ViaVolumeDriver
		}
		if name == "" {
			name = "(anonymous)"
		}
		m.Type, m.ViaVolumeDriver, m.Source = "bind", name, e.Device
		m.ReadOnly = m.ReadOnly || e.ReadOnly
	}
}

// HostPaths returns the host paths the mount exposes to the container:
// a bind's source, and whatever the local volume driver will mount from
// the host (a bind's device, a block device, overlay's layer directories).
func (m Mount) HostPaths() []string {
	var out []string
	if m.Type == "bind" && m.Source != "" {
		out = append(out, m.Source)
	}
	if m.Volume != nil {
		for _, p := range LocalVolume(m.Volume.Driver, m.Volume.Options).HostPaths {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// Persistent reports whether the mount keeps data beyond the container's life
// in a named volume.
func (m Mount) Persistent() bool { return m.Type == "volume" && m.Source != "" }

// Secret is a secret made available to the workload.
type Secret struct {
	Source string
	Target string // absolute path inside the container
	Pos    Position
}

// EnvVar is an environment variable.
type EnvVar struct {
	Key   string
	Value string
	// HasValue is false for a bare `KEY` that passes the host's value through.
	HasValue bool
	// Raw is the value as written before interpolation, when the source knows it.
	Raw string
	// Interpolated is true when the value came from the host environment
	// (`${VAR}` in a compose file, or a bare pass-through KEY).
	Interpolated bool
	Pos          Position
}

// Port is a published (host) port.
type Port struct {
	HostIP    string
	Published string // "8080", "8080-8081"; "" means not published on the host
	Target    uint32
	Protocol  string
	Mode      string // "ingress" or "host" (Swarm)
	Pos       Position
}

// Device is a host device made available to the container.
type Device struct {
	Host, Container, Permissions string
	Pos                          Position
}

// Logging is the container's log driver and its options.
type Logging struct {
	Driver  string // "" means the engine's default driver
	Options map[string]string
	Pos     Position
}

// Healthcheck says whether a health check is defined and whether it is disabled.
type Healthcheck struct {
	Defined  bool
	Disabled bool
	// FromImage is true when the check comes from the image (runtime sources).
	FromImage bool
	Pos       Position
}

// Baseline records how a compose service relates to the spec's
// `&security-baseline` anchor. Only compose sources fill it.
type Baseline struct {
	Applicable  bool // the source is a compose file
	FileDefines bool // the file defining the service defines &security-baseline
	Merged      bool // the service merges it (directly, via another anchor, or via extends)
	File        string
}

// Gateway is Traefik's TLS-relevant configuration, read by the source from the
// gateway's command line and the configuration files it mounts.
type Gateway struct {
	// EntryPoints by name.
	EntryPoints map[string]EntryPoint
	// TLSOptions by name ("default" applies to routers naming none).
	TLSOptions map[string]TLSOption
	// Routers defined in Traefik's file provider.
	Routers []Router
	// Files the configuration was read from, for messages.
	Files []string
	Pos   Position
}

// EntryPoint is a Traefik entry point.
type EntryPoint struct {
	Address    string
	TLS        bool   // http.tls set on the entry point: every router on it is TLS
	RedirectTo string // http.redirections.entryPoint.to
	Pos        Position
}

// TLSOption is a Traefik TLS option set.
type TLSOption struct {
	MinVersion string // e.g. VersionTLS12; "" when not set
	Pos        Position
}

// Router is a Traefik router (from labels or from the file provider).
type Router struct {
	Name        string
	Protocol    string // "http" or "tcp"
	EntryPoints []string
	TLS         bool
	TLSOptions  string // name of the TLS options, "" for default
	Service     string // workload defining it (labels) or "" for the file provider
	Pos         Position
}

// Workload is one unit of execution under policy: a compose service, a
// container, a Swarm service or an API request to create or update one.
type Workload struct {
	Kind    Kind
	Name    string // service or container name
	Project string // compose project or stack, if known
	Service string // compose service, if known
	ID      string // container or service ID, runtime sources only
	// ContainerName is a compose service's container_name, which other
	// services may join as `container:NAME`.
	ContainerName string
	// Display is how reports name the workload's source when there is no
	// file, e.g. "container web (0123456789ab)" or "service web".
	Display string
	// Pos is where the workload is defined (the service key in a compose file).
	Pos Position
	// Files are the compose files that contributed to this service.
	Files []string

	Image    string
	ImagePos Position
	// ImageUser is the image's default USER, known only to runtime sources
	// (ImageUserKnown). Compose cannot know it without pulling the image.
	ImageUser      string
	ImageUserKnown bool

	User    string
	UserPos Position
	// GroupAdd are the supplementary groups the workload asks for, names
	// or numbers, as written.
	GroupAdd    []string
	GroupAddPos Position
	// Identity is what the engine will run the process as, when the source
	// resolved the user and groups from the image's own /etc/passwd and
	// /etc/group as the engine does at start (nil when it could not look).
	Identity *Identity
	Replicas int // 0 when unknown (means 1)

	Privileged    bool
	PrivilegedPos Position

	Namespaces Namespaces

	SecurityOpt    []string
	SecurityOptPos []Position // parallel to SecurityOpt where known
	SecurityOptAt  Position   // the security_opt key

	CapAdd, CapDrop       []string
	CapAddPos, CapDropPos []Position
	CapDropAt             Position

	Mounts  []Mount
	Secrets []Secret
	Env     []EnvVar
	Labels  map[string]string
	// LabelPos holds where each label is written.
	LabelPos map[string]Position
	// ServiceOnly holds the labels written only under a compose file's
	// deploy.labels: Swarm puts them on the service, never on its
	// containers, and docker compose ignores them. They stay in Labels
	// (Traefik's Swarm provider reads service labels), but hyhome's own
	// labels (Label, Tier) count only where containers carry them, since
	// ship, Prometheus' discovery and audit read them there.
	ServiceOnly map[string]bool

	MemoryLimit    int64 // bytes; 0 means none
	MemoryLimitPos Position
	PidsLimit      int64 // 0 or negative means none
	PidsLimitPos   Position

	// Networks the workload is attached to, by the name the source uses
	// (compose key) together with the engine-level name when different.
	Networks    []string
	NetworksPos Position

	Ports []Port

	ReadOnlyRootfs    bool
	ReadOnlyRootfsPos Position

	Healthcheck Healthcheck
	Devices     []Device
	// DeviceCgroupRules are extra device cgroup rules ("c 1:3 rwm").
	DeviceCgroupRules    []string
	DeviceCgroupRulesPos Position

	// MaskedPaths and ReadonlyPaths are the /proc and /sys paths hidden
	// from, or read-only for, the container; nil means the engine's
	// default lists (an empty list hides nothing).
	MaskedPaths, ReadonlyPaths []string

	Logging Logging

	// Command is the process arguments (entrypoint + command), used to read
	// a gateway's static configuration flags.
	Command []string

	Baseline Baseline

	// Gateway is set for a Traefik service whose configuration the source read.
	Gateway *Gateway
	// Routers are the Traefik routers the workload declares with traefik.*
	// labels, read from Labels by the source (internal/traefik) once the
	// labels and their positions are final.
	Routers []Router
}

// Label returns a label's value and where it is written.
func (w *Workload) Label(key string) (string, Position, bool) {
	if w.ServiceOnly[key] {
		return "", Position{}, false
	}
	v, ok := w.Labels[key]
	return v, w.At(w.LabelPos[key]), ok
}

// At returns p, or the workload's own position when p is unknown, so that a
// finding always points somewhere useful.
func (w *Workload) At(p Position) Position {
	if p.Known() {
		return p
	}
	return w.Pos
}

// Where is the human-readable source of the workload: file:line for compose,
// Display for runtime sources.
func (w *Workload) Where() string {
	if w.Pos.Known() {
		return w.Pos.String()
	}
	return w.Display
}

// Tier is the hy-home.tier label ("" when missing).
func (w *Workload) Tier() string {
	if w.ServiceOnly[LabelTier] {
		return ""
	}
	return strings.TrimSpace(w.Labels[LabelTier])
}

// Project groups the workloads that are evaluated together: the services of
// one compose project, or every container on one engine.
type Project struct {
	Name      string
	Files     []string
	Workloads []*Workload
	// HostMemory is the memory of the host the project runs on, in bytes.
	HostMemory int64
}

// Find returns the workload with the given name.
func (p *Project) Find(name string) *Workload {
	for _, w := range p.Workloads {
		if w.Name == name {
			return w
		}
	}
	return nil
}

// SortedLabels returns the label keys in order, for stable output.
func (w *Workload) SortedLabels() []string {
	keys := make([]string, 0, len(w.Labels))
	for k := range w.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
