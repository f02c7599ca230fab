// Package source reads what a Docker Engine runs: it lists and inspects
// containers and Swarm services (with the images and volumes they use) and
// converts each to a workload through internal/engine, so that a running
// container is judged exactly as the guard judges its create request.
// The audit judges its snapshots, the acceptance checks read them, and
// verify selects what it measures with its filters.
//
// It talks to the engine and converts; it must not judge anything. A field
// the engine reports but the workload lacks is added to workload/engine,
// never interpreted here.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/traefik"
	"github.com/hy-home/hyhome/internal/workload"
)

// DefaultConcurrency bounds concurrent inspect requests. The engine serves
// inspects from memory, so a handful in flight hides the per-request latency
// without queueing the daemon. Measured on 200 containers (bench/audit.sh,
// 2 cores): 8-16 was fastest on a quiet machine (76 ms median at 16), and
// under load from other work every setting from 4 to 32 stayed within
// noise of the others; the daemon, not the client, sets the pace.
const DefaultConcurrency = 16

// Labels the engine sets on Swarm task containers.
const (
	LabelSwarmServiceID   = "com.docker.swarm.service.id"
	LabelSwarmServiceName = "com.docker.swarm.service.name"
	LabelSwarmTaskID      = "com.docker.swarm.task.id"
)

// Engine is the subset of the Docker Engine API client a Source uses. The
// real *client.Client satisfies it; it exists so that the bench can count
// round trips around the same client, not to mock the engine in tests.
type Engine interface {
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ImageInspect(ctx context.Context, id string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	VolumeInspect(ctx context.Context, volumeID string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	ServiceList(ctx context.Context, options client.ServiceListOptions) (client.ServiceListResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkInspect(ctx context.Context, id string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
}

var _ Engine = (*client.Client)(nil)

// Selection says which containers and services are read.
type Selection struct {
	// All includes stopped containers (docker ps -a).
	All bool
	// Filters are engine-side filters "key=value", applied to both the
	// container and the service list. Supported keys: label, name, id.
	Filters []string
	// Services keeps only these services: Swarm services by exact name, and
	// containers whose compose service (or Swarm service) label matches.
	Services []string
	// ContainersOnly skips Swarm services (AC-SPEC-01 needs only containers).
	ContainersOnly bool
}

// filterKeys are the filters both /containers/json and /services accept.
var filterKeys = map[string]bool{"label": true, "name": true, "id": true}

// ParseFilters validates "key=value" filters and turns them into engine filters.
func ParseFilters(specs []string) (client.Filters, error) {
	f := client.Filters{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("invalid filter %q: want key=value, e.g. label=hy-home.tier=infra", s)
		}
		if !filterKeys[k] {
			return nil, fmt.Errorf("invalid filter %q: key %q is not one of label, name, id", s, k)
		}
		f.Add(k, v)
	}
	return f, nil
}

// Config configures a Source.
type Config struct {
	Engine Engine
	// Host is the engine endpoint, for messages and to know whether bind
	// mount sources are readable here (a local engine).
	Host string
	// Concurrency bounds concurrent inspects; 0 means DefaultConcurrency.
	Concurrency int
	Logger      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Source reads workloads from a Docker Engine.
type Source struct {
	cfg Config
}

// New returns a Source; cfg.Engine is required.
func New(cfg Config) (*Source, error) {
	if cfg.Engine == nil {
		return nil, errors.New("engine source: no engine client")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{cfg: cfg}, nil
}

// EngineInfo is what a read learnt about the engine itself.
type EngineInfo struct {
	Host          string `json:"host"`
	Name          string `json:"name"`
	ServerVersion string `json:"server_version"`
	MemTotal      int64  `json:"mem_total"`
	NCPU          int    `json:"ncpu"`
	// SwarmState is the node's local Swarm state ("inactive", "active", ...).
	SwarmState string `json:"swarm_state"`
	// SwarmManager is true when the node can list services.
	SwarmManager bool `json:"swarm_manager"`
	// NoNewPrivilegesDefault is true when the daemon itself runs every
	// container with no-new-privileges (dockerd --no-new-privileges), which
	// .HostConfig.SecurityOpt does not show.
	NoNewPrivilegesDefault bool `json:"no_new_privileges_default"`
	// DataRoot, CgroupVersion and LoggingDriver are the engine's data root,
	// cgroup version and default log driver: facts the rules judge paths,
	// cgroup namespaces and log options against.
	DataRoot      string `json:"data_root"`
	CgroupVersion string `json:"cgroup_version"`
	LoggingDriver string `json:"logging_driver"`
}

// HostFacts is what a read learnt about the engine's host, for the rules.
func (e EngineInfo) HostFacts() workload.Host {
	h := workload.Host{DataRoot: e.DataRoot, LogDriver: e.LoggingDriver}
	switch e.CgroupVersion {
	case "1":
		h.CgroupnsDefault = "host"
	case "2":
		h.CgroupnsDefault = "private"
	}
	return h
}

// Container is one inspected container.
type Container struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	State  string            `json:"state"`
	Image  string            `json:"image"`
	Labels map[string]string `json:"-"`
	// SecurityOpt is .HostConfig.SecurityOpt exactly as inspect returns it
	// (nil and empty both print as "[]").
	SecurityOpt []string `json:"security_opt"`
	// SwarmService names the Swarm service when this is one of its tasks.
	SwarmService string `json:"swarm_service,omitempty"`
	// Workload is the container as the rules see it.
	Workload *workload.Workload `json:"-"`
}

// Display is how reports name the container: "container web (0123456789ab)".
func (c *Container) Display() string {
	return fmt.Sprintf("container %s (%s)", c.Name, engine.ShortID(c.ID))
}

// Notice is something the operator should know that is neither a finding nor
// an error: a container that went away mid-audit, a skipped source.
type Notice struct {
	Kind    string `json:"kind"` // gone, swarm, tasks, image, gateway
	Subject string `json:"subject,omitempty"`
	Message string `json:"message"`
}

func (n Notice) String() string {
	if n.Subject == "" {
		return n.Message
	}
	return n.Subject + ": " + n.Message
}

// Notice kinds.
const (
	NoticeGone    = "gone"
	NoticeSwarm   = "swarm"
	NoticeTasks   = "tasks"
	NoticeImage   = "image"
	NoticeGateway = "gateway"
)

// Stats count the work an audit did.
type Stats struct {
	Listed     int           `json:"listed"`
	Inspected  int           `json:"inspected"`
	Gone       int           `json:"gone"`
	Images     int           `json:"images"`
	Services   int           `json:"services"`
	Tasks      int           `json:"task_containers"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
}

// Snapshot is one read of the engine: the containers and services selected,
// as workloads, with what happened on the way.
type Snapshot struct {
	Engine     EngineInfo
	Containers []*Container
	// Workloads are judged by the rules: containers (except Swarm tasks
	// when their service is judged) and Swarm services.
	Workloads []*workload.Workload
	Notices   []Notice
	Stats     Stats
	Started   time.Time
	// Selection is what was asked for.
	Selection Selection
}

// Project is the snapshot as a policy project: every workload on the engine,
// with the host's memory for the infra budget.
func (s *Snapshot) Project() *workload.Project {
	name := s.Engine.Name
	if name == "" {
		name = s.Engine.Host
	}
	return &workload.Project{Name: "engine " + name, Workloads: s.Workloads, HostMemory: s.Engine.MemTotal}
}

// Read lists, inspects and converts what sel selects. Engine errors (other
// than a container or image vanishing mid-audit) fail the whole read: a
// partial audit presented as complete would hide exactly what it missed.
func (s *Source) Read(ctx context.Context, sel Selection) (*Snapshot, error) {
	filters, err := ParseFilters(sel.Filters)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Started: s.cfg.Now(), Selection: sel}
	info, err := s.cfg.Engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading engine info from %s: %w", s.cfg.Host, err)
	}
	snap.Engine = EngineInfo{
		Host:          s.cfg.Host,
		Name:          info.Info.Name,
		ServerVersion: info.Info.ServerVersion,
		MemTotal:      info.Info.MemTotal,
		NCPU:          info.Info.NCPU,
		SwarmState:    string(info.Info.Swarm.LocalNodeState),
		SwarmManager:  info.Info.Swarm.ControlAvailable,
		DataRoot:      info.Info.DockerRootDir,
		CgroupVersion: info.Info.CgroupVersion,
		LoggingDriver: info.Info.LoggingDriver,
	}
	for _, o := range info.Info.SecurityOptions {
		if o == "name=no-new-privileges" {
			snap.Engine.NoNewPrivilegesDefault = true
		}
	}

	images := newImageCache(s.cfg.Engine)
	volumes := &volumeCache{engine: s.cfg.Engine, byName: map[string]*volumeEntry{}}
	containers, err := s.readContainers(ctx, sel, filters, images, volumes, snap)
	if err != nil {
		return nil, err
	}
	snap.Containers = containers

	judgeServices := !sel.ContainersOnly && snap.Engine.SwarmManager
	switch {
	case sel.ContainersOnly:
	case judgeServices:
		svcs, err := s.readServices(ctx, sel, filters, images)
		if err != nil {
			return nil, err
		}
		snap.Stats.Services = len(svcs)
		snap.Workloads = append(snap.Workloads, svcs...)
	case snap.Engine.SwarmState == string(swarm.LocalNodeStateActive):
		snap.Notices = append(snap.Notices, Notice{Kind: NoticeSwarm, Message: "this node is a Swarm worker, not a manager: services are not audited here (run hyhome audit on a manager); their task containers are audited as containers"})
	case snap.Engine.SwarmState != "" && snap.Engine.SwarmState != string(swarm.LocalNodeStateInactive):
		snap.Notices = append(snap.Notices, Notice{Kind: NoticeSwarm, Message: fmt.Sprintf("Swarm state is %q: services are not audited", snap.Engine.SwarmState)})
	}

	// A task's container is what its service spec says; judging both would
	// report every service finding twice and count its memory twice.
	var tasks int
	for _, c := range containers {
		if c.SwarmService != "" && judgeServices {
			tasks++
			continue
		}
		snap.Workloads = append(snap.Workloads, c.Workload)
	}
	if tasks > 0 {
		snap.Notices = append(snap.Notices, Notice{Kind: NoticeTasks, Message: fmt.Sprintf("%d Swarm task container(s) judged through their service's spec", tasks)})
	}
	snap.Stats.Tasks = tasks
	snap.Stats.Images = images.count()
	snap.Notices = append(snap.Notices, images.notices()...)
	s.readGateways(snap)
	snap.Stats.Duration = s.cfg.Now().Sub(snap.Started)
	snap.Stats.DurationMS = float64(snap.Stats.Duration.Microseconds()) / 1000
	return snap, nil
}

// readContainers lists the selected containers and inspects each one, at
// most Concurrency at a time. A container that is gone by the time it is
// inspected becomes a notice.
func (s *Source) readContainers(ctx context.Context, sel Selection, filters client.Filters, images *imageCache, volumes *volumeCache, snap *Snapshot) ([]*Container, error) {
	list, err := s.cfg.Engine.ContainerList(ctx, client.ContainerListOptions{All: sel.All, Filters: filters.Clone()})
	if err != nil {
		return nil, fmt.Errorf("listing containers on %s: %w", s.cfg.Host, err)
	}
	var ids []string
	for _, c := range list.Items {
		if len(sel.Services) > 0 && !containerInServices(c.Labels, sel.Services) {
			continue
		}
		ids = append(ids, c.ID)
	}
	snap.Stats.Listed = len(ids)

	out := make([]*Container, len(ids))
	gone := make([]bool, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	for i, id := range ids {
		if gctx.Err() != nil {
			break // an inspect failed: the read fails, the rest need not run
		}
		g.Go(func() error {
			c, err := s.inspect(gctx, id, images, volumes)
			switch {
			case err == nil:
				out[i] = c
			case cerrdefs.IsNotFound(err):
				gone[i] = true
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inspecting containers on %s: %w", s.cfg.Host, err)
	}

	var cs []*Container
	for i, c := range out {
		if gone[i] {
			snap.Stats.Gone++
			name := ""
			for _, l := range list.Items {
				if l.ID == ids[i] && len(l.Names) > 0 {
					name = strings.TrimPrefix(l.Names[0], "/")
				}
			}
			snap.Notices = append(snap.Notices, Notice{Kind: NoticeGone, Subject: fmt.Sprintf("container %s (%s)", name, engine.ShortID(ids[i])), Message: "removed between list and inspect; not audited"})
			continue
		}
		cs = append(cs, c)
	}
	snap.Stats.Inspected = len(cs)
	if err := s.resolveJoins(ctx, cs); err != nil {
		return nil, err
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Name != cs[j].Name {
			return cs[i].Name < cs[j].Name
		}
		return cs[i].ID < cs[j].ID
	})
	return cs, nil
}

func containerInServices(labels map[string]string, services []string) bool {
	for _, s := range services {
		if labels[workload.LabelComposeService] == s || labels[LabelSwarmServiceName] == s {
			return true
		}
	}
	return false
}

// inspect reads one container (one round trip), its image when its user is
// empty or root (at most once per distinct image for the whole audit), and
// the volumes it mounts with a driver (once per volume).
func (s *Source) inspect(ctx context.Context, id string, images *imageCache, volumes *volumeCache) (*Container, error) {
	res, err := s.cfg.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("inspecting container %s: %w", engine.ShortID(id), err)
	}
	ins := res.Container
	cfg := ins.Config
	if cfg == nil {
		cfg = &container.Config{}
	}
	in := engine.ContainerInput{
		ID:          ins.ID,
		Name:        ins.Name,
		Config:      cfg,
		HostConfig:  ins.HostConfig,
		MountPoints: ins.Mounts,
	}
	if in.MountPoints == nil {
		in.MountPoints = []container.MountPoint{} // inspect: judge effective mounts, not HostConfig.Binds
	}
	if ns := ins.NetworkSettings; ns != nil {
		for name := range ns.Networks {
			in.Networks = append(in.Networks, name)
		}
		sort.Strings(in.Networks)
	}
	// The daemon copies the image's USER into Config.User when the container
	// is created, so an empty Config.User already means "the image has no
	// USER: root". The image is asked only to say where a root user comes
	// from (the image's default or an explicit --user), which changes the
	// remediation; a non-root user needs no image at all.
	user := strings.TrimSpace(cfg.User)
	if user == "" || workload.RootUser(user) {
		in.ImageUserKnown = true
		if iu, ok, err := images.user(ctx, ins.Image, cfg.Image); err != nil {
			return nil, err
		} else if ok && iu == cfg.User {
			in.Config = withUser(cfg, "")
			in.ImageUser = iu
		}
	}
	var volErr error
	in.Volume = func(name string) (*workload.VolumeConfig, bool) {
		cfg, ok, err := volumes.config(ctx, name)
		if err != nil && volErr == nil {
			volErr = err
		}
		return cfg, ok
	}
	w := engine.Container(in)
	if volErr != nil {
		return nil, fmt.Errorf("inspecting the volumes of container %s: %w", engine.ShortID(id), volErr)
	}
	c := &Container{
		ID:          ins.ID,
		Name:        w.Name,
		Image:       cfg.Image,
		Labels:      w.Labels,
		SecurityOpt: nil,
		Workload:    w,
	}
	if ins.HostConfig != nil {
		c.SecurityOpt = ins.HostConfig.SecurityOpt
	}
	if ins.State != nil {
		c.State = string(ins.State.Status)
	}
	if cfg.Labels[LabelSwarmTaskID] != "" {
		c.SwarmService = cfg.Labels[LabelSwarmServiceName]
		if c.SwarmService == "" {
			c.SwarmService = cfg.Labels[LabelSwarmServiceID]
		}
	}
	return c, nil
}

func withUser(cfg *container.Config, user string) *container.Config {
	cp := *cfg
	cp.User = user
	return &cp
}

// resolveJoins follows `container:<ref>` namespace modes. A referenced
// container outside the selection is inspected too (not judged), so that a
// filtered audit still sees a namespace inherited from the host.
func (s *Source) resolveJoins(ctx context.Context, cs []*Container) error {
	index := map[string]*workload.Workload{}
	add := func(w *workload.Workload) {
		index[w.ID] = w
		index[w.Name] = w
		index[engine.ShortID(w.ID)] = w
	}
	for _, c := range cs {
		add(c.Workload)
	}
	lookup := func(ref string) *workload.Workload {
		if w, ok := index[ref]; ok {
			return w
		}
		for id, w := range index {
			if len(ref) >= 12 && strings.HasPrefix(id, ref) {
				return w
			}
		}
		return nil
	}
	// One level of out-of-selection references is fetched; chains beyond it
	// are rare and resolve as far as the fetched containers reach.
	for _, c := range cs {
		w := c.Workload
		for _, n := range w.Joinable() {
			ref, ok := strings.CutPrefix(n.Mode, "container:")
			if !ok || lookup(ref) != nil {
				continue
			}
			res, err := s.cfg.Engine.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
			if cerrdefs.IsNotFound(err) {
				continue
			} else if err != nil {
				return fmt.Errorf("inspecting container %s (joined by %s): %w", ref, w.Name, err)
			}
			add(engine.Container(engine.ContainerInput{ID: res.Container.ID, Name: res.Container.Name, Config: res.Container.Config, HostConfig: res.Container.HostConfig, MountPoints: []container.MountPoint{}}))
		}
	}
	for _, c := range cs {
		engine.ResolveJoins(c.Workload, lookup)
	}
	return nil
}

// readServices lists Swarm services and converts their specs.
func (s *Source) readServices(ctx context.Context, sel Selection, filters client.Filters, images *imageCache) ([]*workload.Workload, error) {
	f := filters.Clone()
	for _, name := range sel.Services {
		f.Add("name", name)
	}
	res, err := s.cfg.Engine.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing Swarm services on %s: %w", s.cfg.Host, err)
	}
	var svcs []swarm.Service
	for _, svc := range res.Items {
		// The engine's name filter matches prefixes; --service means the name.
		if len(sel.Services) > 0 && !contains(sel.Services, svc.Spec.Name) {
			continue
		}
		svcs = append(svcs, svc)
	}
	if len(svcs) == 0 {
		return nil, nil
	}
	networks := map[string]string{}
	needNetworks := false
	for _, svc := range svcs {
		if len(svc.Spec.TaskTemplate.Networks) > 0 {
			needNetworks = true
		}
	}
	if needNetworks {
		nl, err := s.cfg.Engine.NetworkList(ctx, client.NetworkListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing networks on %s: %w", s.cfg.Host, err)
		}
		for _, n := range nl.Items {
			networks[n.ID] = n.Name
			networks[n.Name] = n.Name
		}
		// Swarm gives node-local networks (host, bridge) cluster IDs of
		// their own that the list does not show; ask the manager for those,
		// once each: a service on "host" shares the host's network namespace.
		for _, svc := range svcs {
			for _, n := range svc.Spec.TaskTemplate.Networks {
				if _, ok := networks[n.Target]; ok {
					continue
				}
				ni, err := s.cfg.Engine.NetworkInspect(ctx, n.Target, client.NetworkInspectOptions{Scope: "swarm"})
				switch {
				case err == nil:
					networks[n.Target] = ni.Network.Name
				case cerrdefs.IsNotFound(err):
					networks[n.Target] = n.Target
				default:
					return nil, fmt.Errorf("inspecting network %s of service %s: %w", n.Target, svc.Spec.Name, err)
				}
			}
		}
	}
	var out []*workload.Workload
	for _, svc := range svcs {
		w := engine.Service(engine.ServiceInput{
			ID:          svc.ID,
			Spec:        svc.Spec,
			NetworkName: func(ref string) string { return networks[ref] },
		})
		// The image's default user is known when the manager has the image.
		if strings.TrimSpace(w.User) == "" && w.Image != "" {
			iu, ok, err := images.user(ctx, "", w.Image)
			if err != nil {
				return nil, err
			}
			w.ImageUser, w.ImageUserKnown = iu, ok
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// readGateways reads Traefik's TLS configuration from the files a Traefik
// container bind-mounts. Those paths are on the engine's host, so they are
// read only when the engine is local.
func (s *Source) readGateways(snap *Snapshot) {
	local := s.cfg.Host == "" || strings.HasPrefix(s.cfg.Host, "unix://") || strings.HasPrefix(s.cfg.Host, "npipe://")
	for _, w := range snap.Workloads {
		if w.Kind != workload.KindContainer || !traefik.IsTraefik(w) {
			continue
		}
		if !local {
			snap.Notices = append(snap.Notices, Notice{Kind: NoticeGateway, Subject: w.Display, Message: "Traefik's configuration files are on the engine's host, not readable here; traefik-tls judges the command line and labels only"})
			g, _ := traefik.ReadGateway(&workload.Workload{Kind: w.Kind, Command: w.Command, Pos: w.Pos})
			w.Gateway = g
			continue
		}
		g, err := traefik.ReadGateway(w)
		if err != nil {
			snap.Notices = append(snap.Notices, Notice{Kind: NoticeGateway, Subject: w.Display, Message: fmt.Sprintf("reading Traefik configuration: %v", err)})
		}
		w.Gateway = g
	}
}

// volumeCache inspects each volume a container mounts at most once per
// audit: its driver options say what the local driver mounts (a bind of a
// host path, a disk, a kernel file system).
type volumeCache struct {
	engine Engine
	mu     sync.Mutex
	byName map[string]*volumeEntry
}

type volumeEntry struct {
	once   sync.Once
	cfg    *workload.VolumeConfig
	exists bool
	err    error
}

func (c *volumeCache) config(ctx context.Context, name string) (*workload.VolumeConfig, bool, error) {
	c.mu.Lock()
	e, ok := c.byName[name]
	if !ok {
		e = &volumeEntry{}
		c.byName[name] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		res, err := c.engine.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
		switch {
		case cerrdefs.IsNotFound(err):
		case err != nil:
			e.err = err
		default:
			e.cfg, e.exists = &workload.VolumeConfig{Driver: res.Volume.Driver, Options: res.Volume.Options}, true
		}
	})
	return e.cfg, e.exists, e.err
}

// imageCache inspects each distinct image at most once per audit, however
// many containers use it and however many ask at the same time.
type imageCache struct {
	engine Engine
	mu     sync.Mutex
	byRef  map[string]*imageEntry
	gone   []Notice
}

type imageEntry struct {
	once  sync.Once
	user  string
	known bool
	err   error
}

func newImageCache(e Engine) *imageCache {
	return &imageCache{engine: e, byRef: map[string]*imageEntry{}}
}

// user returns the default USER of the image with the given ID (preferred:
// immutable) or reference. known is false when the engine no longer has it.
func (c *imageCache) user(ctx context.Context, id, ref string) (user string, known bool, err error) {
	key := id
	if key == "" {
		key = ref
	}
	if key == "" {
		return "", false, nil
	}
	c.mu.Lock()
	e, ok := c.byRef[key]
	if !ok {
		e = &imageEntry{}
		c.byRef[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		res, err := c.engine.ImageInspect(ctx, key)
		switch {
		case cerrdefs.IsNotFound(err):
			name := ref
			if name == "" {
				name = engine.ShortID(strings.TrimPrefix(key, "sha256:"))
			}
			c.mu.Lock()
			c.gone = append(c.gone, Notice{Kind: NoticeImage, Subject: "image " + name, Message: "not present on the engine; its default user is unknown"})
			c.mu.Unlock()
		case err != nil:
			e.err = fmt.Errorf("inspecting image %s: %w", key, err)
		default:
			e.known = true
			if res.Config != nil {
				e.user = res.Config.User
			}
		}
	})
	return e.user, e.known, e.err
}

func (c *imageCache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byRef)
}

func (c *imageCache) notices() []Notice {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]Notice(nil), c.gone...)
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	return out
}
