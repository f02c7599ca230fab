package policy

// Allowlists are what a guard profile allows beyond the baseline. Lint and
// audit judge with the zero value: no host source allowlist (sensitive
// trees are refused all the same), no volume types beyond plain local
// volumes, and DefaultLogDrivers.
type Allowlists struct {
	// HostSources, when not nil, are the only host directories a bind (or
	// a volume the local driver binds) may come from, each with what is
	// below it; an empty list allows no bind at all. The sensitive trees
	// of workload.SensitiveHostPath are refused whatever it says.
	HostSources []string
	// VolumeTypes are the file system types of the local driver (tmpfs,
	// nfs, ...) and the volume driver plugins, by name, that volumes may
	// use. Plain local volumes and volumes that bind are always judged by
	// the other rules instead.
	VolumeTypes []string
	// LogDrivers are the log drivers containers may use, each with the
	// options it may be given; nil means DefaultLogDrivers.
	LogDrivers map[string][]string
}

// DefaultLogDrivers are the log drivers allowed by default: the two that
// write files on the host, with their own options and the options every
// driver takes (mode, max-buffer-size). hyhome ship reads both through the
// engine's logs API. Every other driver delivers the container's output
// from the engine, in the host's namespaces, somewhere the container itself
// may not be able to reach (syslog or fluentd over the network, a host
// socket).
var DefaultLogDrivers = map[string][]string{
	"json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode", "max-buffer-size"},
	"local":     {"max-size", "max-file", "compress", "mode", "max-buffer-size"},
}
