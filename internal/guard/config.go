package guard

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
	"github.com/hy-home/hyhome/internal/yamlerr"
)

// FileConfig is what a guard configuration file sets. Every field is
// optional; flags given on the command line win over the file.
//
//	max_body: 4MiB
//	limits:
//	  max_buffered: 8MiB  # request bodies buffered at once, all requests
//	  max_connections: 256 # per listener
//	  body_timeout: 10s
//	admission:
//	  fail_on: error      # or warning
//	  strict: false       # true ignores every ADR exemption
//	  host_sources:       # host directories binds may come from (default: none)
//	    - ${HYHOME_DEPLOY_DIR}/traefik/dynamic
//	  volume_types: []    # local driver types or volume plugins (default: none)
//	  log_drivers:        # log drivers and their options (default below)
//	    json-file: [max-size, max-file, compress, labels, env, tag]
//	    local: [max-size, max-file, compress]
//	profiles:
//	  traefik:
//	    include: [readonly]
//	    allow:
//	      - GET /containers/{name}/logs
//	  deployer:
//	    include: [admission]
//	    exemptions: true  # honour ADR exemptions here (never inherited)
//	  ops:
//	    include: [admission]
//	    allow: [POST /build]
//	    plugins: [vieux/sshfs:latest]
//	    permit: [retag-in-use]
//	    reveal: [join-tokens]
type FileConfig struct {
	// MaxBody is the cap on buffered request bodies, in bytes (0: default).
	MaxBody int64
	// MaxBuffered, MaxConnections and BodyTimeout are Config's (0:
	// default).
	MaxBuffered    int64
	MaxConnections int
	BodyTimeout    time.Duration
	// FailOn is the lowest severity that denies an admission (0: default).
	FailOn policy.Severity
	// Strict ignores every exemption when true.
	Strict bool
	// Profiles are the custom profiles by name.
	Profiles map[string]*Profile
	// Allow is what admission allows beyond the baseline (AdmissionAllow).
	Allow policy.Allowlists
}

type fileDoc struct {
	MaxBody *string `yaml:"max_body"`
	Limits  *struct {
		MaxBuffered    *string `yaml:"max_buffered"`
		MaxConnections *int    `yaml:"max_connections"`
		BodyTimeout    *string `yaml:"body_timeout"`
	} `yaml:"limits"`
	Admission *struct {
		FailOn      *string              `yaml:"fail_on"`
		Strict      *bool                `yaml:"strict"`
		HostSources []yaml.Node          `yaml:"host_sources"`
		VolumeTypes []string             `yaml:"volume_types"`
		LogDrivers  *map[string][]string `yaml:"log_drivers"`
	} `yaml:"admission"`
	Profiles yaml.Node `yaml:"profiles"`
}

type fileProfile struct {
	Include    []yaml.Node `yaml:"include"`
	Allow      []yaml.Node `yaml:"allow"`
	Exemptions bool        `yaml:"exemptions"`
	Plugins    []yaml.Node `yaml:"plugins"`
	Permit     []yaml.Node `yaml:"permit"`
	Reveal     []yaml.Node `yaml:"reveal"`
}

var profileNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// LoadConfig reads a guard configuration file strictly: unknown keys, wrong
// types and unknown routes or profiles are errors that name the file and
// line.
func LoadConfig(path string) (*FileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading guard config: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig is LoadConfig on the file's content.
func ParseConfig(file string, data []byte) (*FileConfig, error) {
	at := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	var doc fileDoc
	if err := yaml.Load(data, &doc, yaml.WithKnownFields()); err != nil {
		return nil, yamlError(file, err)
	}
	cfg := &FileConfig{Profiles: map[string]*Profile{}}
	if doc.MaxBody != nil {
		n, ok := workload.ParseMemory(*doc.MaxBody)
		if !ok || n <= 0 {
			return nil, fmt.Errorf("%s: max_body %q is not a size (e.g. 4MiB)", file, *doc.MaxBody)
		}
		cfg.MaxBody = n
	}
	if l := doc.Limits; l != nil {
		if l.MaxBuffered != nil {
			n, ok := workload.ParseMemory(*l.MaxBuffered)
			if !ok || n <= 0 {
				return nil, fmt.Errorf("%s: limits.max_buffered %q is not a size (e.g. 8MiB)", file, *l.MaxBuffered)
			}
			cfg.MaxBuffered = n
		}
		if l.MaxConnections != nil {
			if *l.MaxConnections <= 0 {
				return nil, fmt.Errorf("%s: limits.max_connections %d: want a positive number", file, *l.MaxConnections)
			}
			cfg.MaxConnections = *l.MaxConnections
		}
		if l.BodyTimeout != nil {
			d, err := time.ParseDuration(*l.BodyTimeout)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s: limits.body_timeout %q is not a positive duration (e.g. 10s)", file, *l.BodyTimeout)
			}
			cfg.BodyTimeout = d
		}
	}
	if a := doc.Admission; a != nil {
		if a.FailOn != nil {
			sev, err := policy.ParseSeverity(*a.FailOn)
			if err != nil || sev == policy.Info {
				return nil, fmt.Errorf("%s: admission.fail_on %q: want error or warning", file, *a.FailOn)
			}
			cfg.FailOn = sev
		}
		if a.Strict != nil {
			cfg.Strict = *a.Strict
		}
		for _, n := range a.HostSources {
			dir, err := hostSource(n)
			if err != nil {
				return nil, at(n.Line, "admission.host_sources: %v", err)
			}
			cfg.Allow.HostSources = append(cfg.Allow.HostSources, dir)
		}
		cfg.Allow.VolumeTypes = a.VolumeTypes
		if a.LogDrivers != nil {
			cfg.Allow.LogDrivers = *a.LogDrivers
			if cfg.Allow.LogDrivers == nil {
				cfg.Allow.LogDrivers = map[string][]string{}
			}
		}
	}
	switch doc.Profiles.Kind {
	case 0:
		return cfg, nil
	case yaml.MappingNode:
	default:
		return nil, at(doc.Profiles.Line, "profiles must be a mapping of profile name to profile")
	}
	builtin := builtinProfiles()
	defs := map[string]fileProfile{}
	lines := map[string]int{}
	var order []string
	for i := 0; i+1 < len(doc.Profiles.Content); i += 2 {
		key, val := doc.Profiles.Content[i], doc.Profiles.Content[i+1]
		name := key.Value
		switch {
		case !profileNameRE.MatchString(name):
			return nil, at(key.Line, "profile name %q: use lower-case letters, digits, - and _", name)
		case builtin[name] != nil:
			return nil, at(key.Line, "profile %q is built in and cannot be redefined", name)
		case lines[name] != 0:
			return nil, at(key.Line, "profile %q is defined twice (first at line %d)", name, lines[name])
		}
		var fp fileProfile
		if err := val.Load(&fp, yaml.WithKnownFields()); err != nil {
			return nil, yamlError(file, err)
		}
		defs[name], lines[name] = fp, key.Line
		order = append(order, name)
	}
	// Resolve includes depth-first, refusing cycles.
	state := map[string]int{} // 1: resolving, 2: done
	var resolve func(name string, line int) (*Profile, error)
	resolve = func(name string, line int) (*Profile, error) {
		if p := builtin[name]; p != nil {
			return p, nil
		}
		fp, ok := defs[name]
		if !ok {
			return nil, at(line, "unknown profile %q (built in: %s)", name, strings.Join(ProfileNames(), ", "))
		}
		switch state[name] {
		case 1:
			return nil, at(line, "profile %q includes itself", name)
		case 2:
			return cfg.Profiles[name], nil
		}
		state[name] = 1
		p := emptyProfile(name)
		// exemptions is the profile's own word, not included: a profile
		// built on one that honours exemptions does not, unless it says so.
		p.exemptions = fp.Exemptions
		for _, inc := range fp.Include {
			if inc.Kind != yaml.ScalarNode {
				return nil, at(inc.Line, "profile %q: include entries are profile names", name)
			}
			ip, err := resolve(inc.Value, inc.Line)
			if err != nil {
				return nil, err
			}
			p.merge(ip)
		}
		if err := profileSettings(p, fp, at); err != nil {
			return nil, err
		}
		for _, a := range fp.Allow {
			if a.Kind != yaml.ScalarNode {
				return nil, at(a.Line, "profile %q: allow entries are routes such as \"GET /containers/json\"", name)
			}
			r, err := lookupRoute(a.Value)
			if err != nil {
				return nil, at(a.Line, "profile %q: %v", name, err)
			}
			p.allow[r] = true
		}
		if len(p.allow) == 0 {
			return nil, at(lines[name], "profile %q allows nothing", name)
		}
		state[name] = 2
		cfg.Profiles[name] = p
		return p, nil
	}
	for _, name := range order {
		if _, err := resolve(name, lines[name]); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// AdmissionAllow is what admission allows when no configuration says
// otherwise: no bind at all (the stack's profile names its own
// directories), plain local volumes only, and policy.DefaultLogDrivers.
func AdmissionAllow(a policy.Allowlists) policy.Allowlists {
	if a.HostSources == nil {
		a.HostSources = []string{}
	}
	return a
}

// hostSource reads one admission.host_sources entry: an absolute host
// directory, ${VAR} references expanded from the guard's environment (an
// unset variable is an error, not an empty string), cleaned, with no `..`
// and outside the trees the guard refuses anyway.
func hostSource(n yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errors.New("entries are host directories such as /srv/hyhome/config")
	}
	var unset []string
	p := os.Expand(n.Value, func(k string) string {
		v, ok := os.LookupEnv(k)
		if !ok {
			unset = append(unset, k)
		}
		return v
	})
	switch {
	case len(unset) > 0:
		return "", fmt.Errorf("%q: %s is not set", n.Value, strings.Join(unset, ", "))
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	if why := workload.SensitiveHostPath(p, ""); why != "" {
		return "", fmt.Errorf("%q %s", p, why)
	}
	return path.Clean(p), nil
}

// yamlError renders the YAML library's errors as file:line: message.
func yamlError(file string, err error) error {
	all := yamlerr.Of(err)
	if len(all) == 1 && all[0].Line == 0 {
		return fmt.Errorf("%s: %w", file, err)
	}
	msgs := make([]string, 0, len(all))
	for _, e := range all {
		msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, e.Line, e.Message))
	}
	return errors.New(strings.Join(msgs, "; "))
}
