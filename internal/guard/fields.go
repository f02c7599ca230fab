package guard

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/plugin"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"
)

// Fail closed by construction: every field of every request body the guard
// decodes is in fieldTable, marked judged (a rule, or a check here, decides
// on its value), harmless (with the reason) or denied. judgeFields refuses
// a body in which a denied field has a value, or a field the table does not
// know (a field a newer moby/moby/api brings is refused until someone
// judges it; TestFieldTableCoversTheAPITypes walks the types by reflection
// and fails when a field has no row).
//
// The table covers the API types the guard decodes with, the newest moby
// API types; fields that API 1.41 (Docker 20.10) accepted and later types
// dropped are not in them, so decodeStrict refuses them as unknown keys.
// Zero values are not judged: the docker CLI sends every field of its
// structs, and a zero value asks the engine for its default.

// reasonField is the denial reason (and metric label) of a refused field.
const reasonField = "field"

type fieldKind int

const (
	fieldJudged fieldKind = iota + 1
	fieldHarmless
	fieldDenied
)

func (k fieldKind) String() string {
	switch k {
	case fieldJudged:
		return "judged"
	case fieldHarmless:
		return "harmless"
	case fieldDenied:
		return "denied"
	}
	return "unknown"
}

// fieldRow is one field's verdict. why names the rules that judge it, why
// it is harmless, or why it is refused; check, when set, refuses some of its
// values (returning why).
type fieldRow struct {
	kind  fieldKind
	why   string
	check func(v reflect.Value) string
}

func byRules(rules string) fieldRow { return fieldRow{kind: fieldJudged, why: rules} }
func harmless(why string) fieldRow  { return fieldRow{kind: fieldHarmless, why: why} }
func deniedField(why string) fieldRow {
	return fieldRow{kind: fieldDenied, why: why}
}
func checked(why string, check func(v reflect.Value) string) fieldRow {
	return fieldRow{kind: fieldJudged, why: why, check: check}
}

// fieldRoots are the request bodies the table covers, by route.
var fieldRoots = []struct {
	route string
	body  any
}{
	{"POST /containers/create", container.CreateRequest{}},
	{"POST /containers/{name}/update", container.UpdateConfig{}},
	{"POST /containers/{name}/exec", execCreateRequest{}},
	{"POST /exec/{name}/start", container.ExecStartRequest{}},
	{"POST /volumes/create", volume.CreateRequest{}},
	{"POST /networks/create", networkCreateRequest{}},
	{"POST /networks/{id}/connect", network.ConnectRequest{}},
	{"POST /networks/{id}/disconnect", network.DisconnectRequest{}},
	{"POST /services/create", swarm.ServiceSpec{}},
	{"POST /plugins/pull", plugin.Privilege{}},
	{"POST /swarm/init", swarm.InitRequest{}},
	{"POST /swarm/join", swarm.JoinRequest{}},
	{"POST /swarm/update", swarm.Spec{}},
	{"POST /swarm/unlock", swarm.UnlockRequest{}},
	{"POST /nodes/{id}/update", swarm.NodeSpec{}},
}

const (
	inContainer = "acts inside the container's own namespaces and confinement"
	engineFills = "operational data the engine reports on inspect; a create does not set it"
	windowsOnly = "Windows containers only; a Linux engine ignores it"
	scheduling  = "CPU, I/O or scheduling shares of the container's own cgroup"
	swarmCtl    = "Swarm membership and control: a node joined to a foreign manager runs whatever it schedules, and a manager hands out join tokens; the routes are refused in every profile"
	streams     = "stream plumbing of the container's own process"
	orchestr    = "how Swarm schedules, restarts and updates the judged tasks"
	impersonate = "naming or addressing on a network the container may join; impersonating an infra service this way is issue 17 item 9's decision"
	legacyLinks = "legacy links copy the linked container's environment, its credentials included, into this one"
)

var fieldTable = map[string]fieldRow{
	// --- container create: Config ---
	"container.CreateRequest.HostConfig":       byRules("its fields, below"),
	"container.CreateRequest.NetworkingConfig": byRules("its fields, below"),
	"container.Config.Hostname":                harmless("the container's own UTS name (uts host is judged by host-namespaces)"),
	"container.Config.Domainname":              harmless("the container's own UTS domain name"),
	"container.Config.User":                    byRules("non-root (names resolved from the image's /etc/passwd and pinned numerically), docker-socket (groups)"),
	"container.Config.AttachStdin":             harmless(streams),
	"container.Config.AttachStdout":            harmless(streams),
	"container.Config.AttachStderr":            harmless(streams),
	"container.Config.ExposedPorts":            byRules("published-ports (with PublishAllPorts)"),
	"container.Config.Tty":                     harmless(streams),
	"container.Config.OpenStdin":               harmless(streams),
	"container.Config.StdinOnce":               harmless(streams),
	"container.Config.Env":                     byRules("secrets-in-env"),
	"container.Config.Cmd":                     harmless("the process, run inside the judged confinement"),
	"container.Config.Healthcheck":             byRules("healthcheck"),
	"v1.HealthcheckConfig.Test":                byRules("healthcheck (run inside the container)"),
	"v1.HealthcheckConfig.Interval":            harmless("timing of a check run inside the container"),
	"v1.HealthcheckConfig.Timeout":             harmless("timing of a check run inside the container"),
	"v1.HealthcheckConfig.StartPeriod":         harmless("timing of a check run inside the container"),
	"v1.HealthcheckConfig.StartInterval":       harmless("timing of a check run inside the container"),
	"v1.HealthcheckConfig.Retries":             harmless("timing of a check run inside the container"),
	"container.Config.ArgsEscaped":             harmless(windowsOnly),
	"container.Config.Image":                   byRules("non-root (the image's USER and user database), image-pinned"),
	"container.Config.Volumes":                 byRules("volume-type (anonymous volumes take HostConfig.VolumeDriver)"),
	"container.Config.WorkingDir":              harmless(inContainer),
	"container.Config.Entrypoint":              harmless("the process, run inside the judged confinement"),
	"container.Config.NetworkDisabled":         harmless("takes networking away"),
	"container.Config.OnBuild":                 harmless("build triggers stored with a committed image; not run by a create"),
	"container.Config.Labels":                  byRules("tier-label, metrics-endpoint, published-ports, adr-exemption: claims the rules read, never proof"),
	"container.Config.StopSignal":              harmless("the signal the engine sends the container's own process"),
	"container.Config.StopTimeout":             harmless("how long the engine waits before killing the container's process"),
	"container.Config.Shell":                   harmless("the build shell of a committed image"),

	// --- container create: HostConfig ---
	"container.HostConfig.Binds":                byRules("host-path, bind-mount-readonly, docker-socket, volume-type, secret-target"),
	"container.HostConfig.ContainerIDFile":      harmless("read by the docker CLI; the engine ignores it"),
	"container.HostConfig.LogConfig":            byRules("log-driver"),
	"container.LogConfig.Type":                  byRules("log-driver"),
	"container.LogConfig.Config":                byRules("log-driver"),
	"container.HostConfig.NetworkMode":          byRules("host-namespaces (by name, ID, ID prefix or a joined container), namespace-join"),
	"container.HostConfig.PortBindings":         byRules("published-ports"),
	"network.PortBinding.HostIP":                byRules("published-ports"),
	"network.PortBinding.HostPort":              byRules("published-ports"),
	"container.HostConfig.RestartPolicy":        harmless("restarts the same judged container"),
	"container.RestartPolicy.Name":              harmless("restarts the same judged container"),
	"container.RestartPolicy.MaximumRetryCount": harmless("restarts the same judged container"),
	"container.HostConfig.AutoRemove":           harmless("removes the container when it exits"),
	"container.HostConfig.VolumeDriver":         byRules("volume-type (the driver of the volumes the engine creates for Binds and Config.Volumes)"),
	"container.HostConfig.VolumesFrom":          byRules("every mount of the other container is judged as this one's; pinned to its ID"),
	"container.HostConfig.ConsoleSize":          harmless(streams),
	"container.HostConfig.Annotations":          deniedField("handed to the OCI runtime, some of which change the container's privileges (crun's run.oci.keep_original_groups, kata's io.katacontainers.*)"),
	"container.HostConfig.CapAdd":               byRules("cap-add"),
	"container.HostConfig.CapDrop":              byRules("cap-drop-all"),
	"container.HostConfig.CgroupnsMode":         byRules("host-namespaces"),
	"container.HostConfig.DNS":                  harmless("name resolution inside the container"),
	"container.HostConfig.DNSOptions":           harmless("name resolution inside the container"),
	"container.HostConfig.DNSSearch":            harmless("name resolution inside the container"),
	"container.HostConfig.ExtraHosts":           harmless("the container's own /etc/hosts"),
	"container.HostConfig.GroupAdd":             byRules("non-root (names resolved and pinned), docker-socket (the socket's group)"),
	"container.HostConfig.IpcMode":              byRules("host-namespaces, namespace-join"),
	"container.HostConfig.Cgroup":               deniedField("puts the container in another container's cgroup, outside its own limits"),
	"container.HostConfig.Links":                deniedField(legacyLinks),
	"container.HostConfig.OomScoreAdj": checked("a negative score makes the host's OOM killer spare the container over the host's own processes", func(v reflect.Value) string {
		if v.Int() < 0 {
			return "a negative OomScoreAdj makes the host's OOM killer spare the container over the host's own processes"
		}
		return ""
	}),
	"container.HostConfig.PidMode":         byRules("host-namespaces, namespace-join"),
	"container.HostConfig.Privileged":      byRules("privileged"),
	"container.HostConfig.PublishAllPorts": byRules("published-ports"),
	"container.HostConfig.ReadonlyRootfs":  byRules("read-only-rootfs; non-root resolves names in existing containers only on a read-only root"),
	"container.HostConfig.SecurityOpt":     byRules("no-new-privileges, security-profile"),
	"container.HostConfig.StorageOpt":      harmless("the size of the container's own writable layer"),
	"container.HostConfig.Tmpfs":           harmless("memory-backed mounts inside the container, charged to its memory limit"),
	"container.HostConfig.UTSMode":         byRules("host-namespaces"),
	"container.HostConfig.UsernsMode":      byRules("host-namespaces"),
	"container.HostConfig.ShmSize":         harmless("the container's own /dev/shm, charged to its memory limit"),
	"container.HostConfig.Sysctls":         harmless("the engine accepts only namespaced sysctls (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) and refuses net.* in the host's network namespace"),
	"container.HostConfig.Runtime":         deniedField("another OCI runtime than the engine's default: its confinement is not the one judged here"),
	"container.HostConfig.Umask":           harmless(inContainer),
	"container.HostConfig.Isolation":       harmless(windowsOnly),
	"container.HostConfig.MaskedPaths":     byRules("security-profile (a list must keep every path of the engine's default)"),
	"container.HostConfig.ReadonlyPaths":   byRules("security-profile (a list must keep every path of the engine's default)"),
	"container.HostConfig.Init":            harmless("docker-init as the container's PID 1"),
	"container.HostConfig.Mounts":          byRules("host-path, bind-mount-readonly, docker-socket, volume-type, secret-target"),

	// --- resources (container create and update) ---
	"container.Resources.CPUShares":             harmless(scheduling),
	"container.Resources.Memory":                byRules("memory-limit (at or above the host's memory is no limit)"),
	"container.Resources.NanoCPUs":              harmless(scheduling),
	"container.Resources.CgroupParent":          deniedField("puts the container under another cgroup of the host, where other limits (or none) apply"),
	"container.Resources.BlkioWeight":           harmless(scheduling),
	"container.Resources.BlkioWeightDevice":     harmless("throttles I/O to a host device; grants no access to it"),
	"blkiodev.WeightDevice.Path":                harmless("throttles I/O to a host device; grants no access to it"),
	"blkiodev.WeightDevice.Weight":              harmless(scheduling),
	"container.Resources.BlkioDeviceReadBps":    harmless("throttles I/O to a host device; grants no access to it"),
	"blkiodev.ThrottleDevice.Path":              harmless("throttles I/O to a host device; grants no access to it"),
	"blkiodev.ThrottleDevice.Rate":              harmless(scheduling),
	"container.Resources.BlkioDeviceWriteBps":   harmless("throttles I/O to a host device; grants no access to it"),
	"container.Resources.BlkioDeviceReadIOps":   harmless("throttles I/O to a host device; grants no access to it"),
	"container.Resources.BlkioDeviceWriteIOps":  harmless("throttles I/O to a host device; grants no access to it"),
	"container.Resources.CPUPeriod":             harmless(scheduling),
	"container.Resources.CPUQuota":              harmless(scheduling),
	"container.Resources.CPURealtimePeriod":     harmless("a real-time budget, usable only with CAP_SYS_NICE (cap-add judges it)"),
	"container.Resources.CPURealtimeRuntime":    harmless("a real-time budget, usable only with CAP_SYS_NICE (cap-add judges it)"),
	"container.Resources.CpusetCpus":            harmless(scheduling),
	"container.Resources.CpusetMems":            harmless(scheduling),
	"container.Resources.Devices":               byRules("host-devices (by the cleaned path and what it is)"),
	"container.DeviceMapping.PathOnHost":        byRules("host-devices"),
	"container.DeviceMapping.PathInContainer":   harmless("where the judged device appears inside the container"),
	"container.DeviceMapping.CgroupPermissions": harmless("narrows access to the judged device"),
	"container.Resources.DeviceCgroupRules":     byRules("host-devices (every rule is refused)"),
	"container.Resources.DeviceRequests":        deniedField("devices a runtime hook adds (GPUs through the NVIDIA toolkit), outside host-devices' judgement"),
	"container.DeviceRequest.Driver":            deniedField("part of DeviceRequests"),
	"container.DeviceRequest.Count":             deniedField("part of DeviceRequests"),
	"container.DeviceRequest.DeviceIDs":         deniedField("part of DeviceRequests"),
	"container.DeviceRequest.Capabilities":      deniedField("part of DeviceRequests"),
	"container.DeviceRequest.Options":           deniedField("part of DeviceRequests"),
	"container.Resources.MemoryReservation":     harmless("a soft limit below Memory"),
	"container.Resources.MemorySwap":            harmless("swap beyond Memory; Memory still bounds RAM"),
	"container.Resources.MemorySwappiness":      harmless("the container's own swap preference"),
	"container.Resources.OomKillDisable": checked("true keeps the kernel from killing the container at its memory limit", func(v reflect.Value) string {
		if !v.IsNil() && v.Elem().Bool() {
			return "OomKillDisable stops the kernel from killing the container's processes at its memory limit: they stall instead, and without a limit the host's OOM killer takes host processes"
		}
		return ""
	}),
	"container.Resources.PidsLimit":          byRules("pids-limit"),
	"container.Resources.Ulimits":            harmless("limits of the container's own processes"),
	"units.Ulimit.Name":                      harmless("limits of the container's own processes"),
	"units.Ulimit.Hard":                      harmless("limits of the container's own processes"),
	"units.Ulimit.Soft":                      harmless("limits of the container's own processes"),
	"container.Resources.CPUCount":           harmless(windowsOnly),
	"container.Resources.CPUPercent":         harmless(windowsOnly),
	"container.Resources.IOMaximumIOps":      harmless(windowsOnly),
	"container.Resources.IOMaximumBandwidth": harmless(windowsOnly),

	// --- mounts (containers and services) ---
	"mount.Mount.Type":        byRules("host-path, bind-mount-readonly, docker-socket, volume-type"),
	"mount.Mount.Source":      byRules("host-path, docker-socket, volume-type"),
	"mount.Mount.Target":      byRules("secret-target; where the judged mount appears"),
	"mount.Mount.ReadOnly":    byRules("bind-mount-readonly"),
	"mount.Mount.Consistency": harmless("Docker Desktop's file sharing; a Linux engine ignores it"),
	"mount.Mount.BindOptions": byRules("its fields, below"),
	"mount.BindOptions.Propagation": checked("shared propagation sends mounts made inside the container to the host", func(v reflect.Value) string {
		switch p := mount.Propagation(v.String()); p {
		case mount.PropagationShared, mount.PropagationRShared:
			return fmt.Sprintf("bind propagation %q sends mounts made inside the container back to the host", p)
		}
		return ""
	}),
	"mount.BindOptions.NonRecursive":           harmless("leaves out the submounts of the judged source"),
	"mount.BindOptions.CreateMountpoint":       deniedField("creates the source path on the host"),
	"mount.BindOptions.ReadOnlyNonRecursive":   deniedField("keeps every mount below a read-only bind writable"),
	"mount.BindOptions.ReadOnlyForceRecursive": harmless("makes read-only recursive, or fails"),
	"mount.Mount.VolumeOptions":                byRules("its fields, below"),
	"mount.VolumeOptions.NoCopy":               harmless("skips copying the image's content into a new volume"),
	"mount.VolumeOptions.Labels":               harmless("labels of a volume the engine creates"),
	"mount.VolumeOptions.Subpath":              deniedField("mounts a path inside a volume that containers write, which the guard judges only as the whole volume"),
	"mount.VolumeOptions.DriverConfig":         byRules("volume-type, host-path, bind-mount-readonly, docker-socket (what the driver will mount)"),
	"mount.Driver.Name":                        byRules("volume-type"),
	"mount.Driver.Options":                     byRules("volume-type, host-path, bind-mount-readonly, docker-socket"),
	"mount.Mount.ImageOptions":                 harmless("mounts an image's content, read-only"),
	"mount.ImageOptions.Subpath":               harmless("a path inside the image mounted read-only"),
	"mount.Mount.TmpfsOptions":                 harmless("a memory-backed mount inside the container"),
	"mount.TmpfsOptions.SizeBytes":             harmless("a memory-backed mount inside the container"),
	"mount.TmpfsOptions.Mode":                  harmless("a memory-backed mount inside the container"),
	"mount.TmpfsOptions.Options":               harmless("a memory-backed mount inside the container"),
	"mount.Mount.ClusterOptions":               harmless("Swarm cluster volumes; the volume itself is refused at creation (ClusterVolumeSpec)"),

	// --- networking (container create, network connect) ---
	"network.NetworkingConfig.EndpointsConfig":     byRules("host-namespaces (the host network by name or ID)"),
	"network.EndpointSettings.IPAMConfig":          harmless(impersonate),
	"network.EndpointIPAMConfig.IPv4Address":       harmless(impersonate),
	"network.EndpointIPAMConfig.IPv6Address":       harmless(impersonate),
	"network.EndpointIPAMConfig.LinkLocalIPs":      harmless(impersonate),
	"network.EndpointSettings.Links":               deniedField(legacyLinks),
	"network.EndpointSettings.Aliases":             harmless(impersonate),
	"network.EndpointSettings.DriverOpts":          deniedField("endpoint driver options (per-interface sysctls and macvlan parents on newer engines) are not judged"),
	"network.EndpointSettings.GwPriority":          harmless("which attached network gives the default route"),
	"network.EndpointSettings.NetworkID":           harmless("the engine reads the network from the map key"),
	"network.EndpointSettings.EndpointID":          harmless(engineFills),
	"network.EndpointSettings.Gateway":             harmless(engineFills),
	"network.EndpointSettings.IPAddress":           harmless(engineFills),
	"network.EndpointSettings.MacAddress":          harmless(impersonate),
	"network.EndpointSettings.IPPrefixLen":         harmless(engineFills),
	"network.EndpointSettings.IPv6Gateway":         harmless(engineFills),
	"network.EndpointSettings.GlobalIPv6Address":   harmless(engineFills),
	"network.EndpointSettings.GlobalIPv6PrefixLen": harmless(engineFills),
	"network.EndpointSettings.DNSNames":            harmless(engineFills),
	"network.ConnectRequest.Container":             harmless("the container was judged when it was created; it becomes an endpoint"),
	"network.ConnectRequest.EndpointConfig":        byRules("its fields, above"),
	"network.DisconnectRequest.Container":          harmless("removes an endpoint"),
	"network.DisconnectRequest.Force":              harmless("removes an endpoint"),

	// --- container update ---
	"container.UpdateConfig.RestartPolicy": harmless("restarts the same judged container"),

	// --- exec ---
	"guard.execCreateRequest.Detach":           harmless("the docker CLI's field; engines ignore it"),
	"container.ExecCreateRequest.User":         byRules("non-root (resolved in the container and pinned numerically)"),
	"container.ExecCreateRequest.Privileged":   byRules("privileged"),
	"container.ExecCreateRequest.Tty":          harmless(streams),
	"container.ExecCreateRequest.ConsoleSize":  harmless(streams),
	"container.ExecCreateRequest.AttachStdin":  harmless(streams),
	"container.ExecCreateRequest.AttachStderr": harmless(streams),
	"container.ExecCreateRequest.AttachStdout": harmless(streams),
	"container.ExecCreateRequest.DetachKeys":   harmless(streams),
	"container.ExecCreateRequest.Env":          harmless("the exec process's environment, inside the container"),
	"container.ExecCreateRequest.WorkingDir":   harmless(inContainer),
	"container.ExecCreateRequest.Cmd":          harmless("the process, run inside the judged confinement"),
	"container.ExecStartRequest.Detach":        harmless(streams),
	"container.ExecStartRequest.Tty":           harmless(streams),
	"container.ExecStartRequest.ConsoleSize":   harmless(streams),

	// --- volumes ---
	"volume.CreateRequest.Name":                          harmless("the volume's name"),
	"volume.CreateRequest.Driver":                        byRules("volume-type"),
	"volume.CreateRequest.DriverOpts":                    byRules("volume-type, host-path, bind-mount-readonly, docker-socket (what mount(2) will do)"),
	"volume.CreateRequest.Labels":                        byRules("adr-exemption"),
	"volume.CreateRequest.ClusterVolumeSpec":             deniedField("Swarm cluster volumes are mounted by CSI plugins, which the guard does not judge"),
	"volume.ClusterVolumeSpec.Group":                     deniedField("part of ClusterVolumeSpec"),
	"volume.ClusterVolumeSpec.AccessMode":                deniedField("part of ClusterVolumeSpec"),
	"volume.AccessMode.Scope":                            deniedField("part of ClusterVolumeSpec"),
	"volume.AccessMode.Sharing":                          deniedField("part of ClusterVolumeSpec"),
	"volume.AccessMode.MountVolume":                      deniedField("part of ClusterVolumeSpec"),
	"volume.TypeMount.FsType":                            deniedField("part of ClusterVolumeSpec"),
	"volume.TypeMount.MountFlags":                        deniedField("part of ClusterVolumeSpec"),
	"volume.AccessMode.BlockVolume":                      deniedField("part of ClusterVolumeSpec"),
	"volume.ClusterVolumeSpec.AccessibilityRequirements": deniedField("part of ClusterVolumeSpec"),
	"volume.TopologyRequirement.Requisite":               deniedField("part of ClusterVolumeSpec"),
	"volume.Topology.Segments":                           deniedField("part of ClusterVolumeSpec"),
	"volume.TopologyRequirement.Preferred":               deniedField("part of ClusterVolumeSpec"),
	"volume.ClusterVolumeSpec.CapacityRange":             deniedField("part of ClusterVolumeSpec"),
	"volume.CapacityRange.RequiredBytes":                 deniedField("part of ClusterVolumeSpec"),
	"volume.CapacityRange.LimitBytes":                    deniedField("part of ClusterVolumeSpec"),
	"volume.ClusterVolumeSpec.Secrets":                   deniedField("part of ClusterVolumeSpec"),
	"volume.Secret.Key":                                  deniedField("part of ClusterVolumeSpec"),
	"volume.Secret.Secret":                               deniedField("part of ClusterVolumeSpec"),
	"volume.ClusterVolumeSpec.Availability":              deniedField("part of ClusterVolumeSpec"),

	// --- networks ---
	"guard.networkCreateRequest.CheckDuplicate": harmless("sent by clients below API 1.44; the engine refuses a duplicate name either way"),
	"network.CreateRequest.Name":                harmless(impersonate),
	"network.CreateRequest.Driver":              byRules("networkCreate: bridge and overlay, and macvlan or ipvlan only where the profile permits host-interface-networks (host and null are the engine's own, plugin drivers are unknown)"),
	"network.CreateRequest.Scope":               harmless("local or swarm visibility of the network"),
	"network.CreateRequest.EnableIPv4":          harmless("address families of the network"),
	"network.CreateRequest.EnableIPv6":          harmless("address families of the network"),
	"network.CreateRequest.IPAM":                byRules("its fields, below"),
	"network.IPAM.Driver": checked("only the default IPAM driver", func(v reflect.Value) string {
		if d := v.String(); d != "" && d != "default" {
			return fmt.Sprintf("IPAM driver %q is a plugin the guard does not judge", d)
		}
		return ""
	}),
	"network.IPAM.Options":             harmless("options of the default IPAM driver"),
	"network.IPAM.Config":              harmless("the network's subnets and gateway"),
	"network.IPAMConfig.Subnet":        harmless("the network's subnets and gateway"),
	"network.IPAMConfig.IPRange":       harmless("the network's subnets and gateway"),
	"network.IPAMConfig.Gateway":       harmless("the network's subnets and gateway"),
	"network.IPAMConfig.AuxAddress":    harmless("the network's subnets and gateway"),
	"network.CreateRequest.Internal":   harmless("takes the network's route out away"),
	"network.CreateRequest.Attachable": harmless("lets standalone containers join a Swarm network"),
	"network.CreateRequest.Ingress":    deniedField("replaces the Swarm routing mesh's ingress network, through which every published port passes"),
	"network.CreateRequest.ConfigOnly": harmless("a network no container can join, holding configuration only"),
	"network.CreateRequest.ConfigFrom": byRules("networkCreate: takes the driver and options from a configuration-only network the guard does not read, so only where the profile permits host-interface-networks"),
	"network.ConfigReference.Network":  byRules("part of ConfigFrom"),
	"network.CreateRequest.Options":    byRules("networkCreate: the bridge and overlay options in networkOptions; host-link options (a host bridge, routed gateway modes) and the macvlan/ipvlan options only where the profile permits host-interface-networks"),
	"network.CreateRequest.Labels":     harmless("labels of the network"),

	// --- services ---
	"swarm.ServiceSpec.TaskTemplate":       byRules("its fields, below"),
	"swarm.Annotations.Name":               harmless("the object's name"),
	"swarm.Annotations.Labels":             byRules("tier-label, metrics-endpoint, adr-exemption: claims the rules read, never proof"),
	"swarm.TaskSpec.ContainerSpec":         byRules("judged as a container create"),
	"swarm.ContainerSpec.Image":            byRules("image-pinned"),
	"swarm.ContainerSpec.Labels":           byRules("tier-label, metrics-endpoint, adr-exemption"),
	"swarm.ContainerSpec.Command":          harmless("the process, run inside the judged confinement"),
	"swarm.ContainerSpec.Args":             harmless("the process, run inside the judged confinement"),
	"swarm.ContainerSpec.Hostname":         harmless("the task's own UTS name"),
	"swarm.ContainerSpec.Env":              byRules("secrets-in-env"),
	"swarm.ContainerSpec.Dir":              harmless(inContainer),
	"swarm.ContainerSpec.User":             byRules("non-root (numeric only: tasks resolve names on their node)"),
	"swarm.ContainerSpec.Groups":           byRules("non-root, docker-socket"),
	"swarm.ContainerSpec.Privileges":       byRules("its fields, below"),
	"swarm.Privileges.CredentialSpec":      harmless(windowsOnly),
	"swarm.CredentialSpec.Config":          harmless(windowsOnly),
	"swarm.CredentialSpec.File":            harmless(windowsOnly),
	"swarm.CredentialSpec.Registry":        harmless(windowsOnly),
	"swarm.Privileges.SELinuxContext":      byRules("its fields, below"),
	"swarm.SELinuxContext.Disable":         byRules("security-profile"),
	"swarm.SELinuxContext.User":            deniedField("an SELinux label of the client's choosing (spc_t is unconfined)"),
	"swarm.SELinuxContext.Role":            deniedField("an SELinux label of the client's choosing (spc_t is unconfined)"),
	"swarm.SELinuxContext.Type":            deniedField("an SELinux label of the client's choosing (spc_t is unconfined)"),
	"swarm.SELinuxContext.Level":           deniedField("an SELinux label of the client's choosing (spc_t is unconfined)"),
	"swarm.Privileges.Seccomp":             byRules("security-profile"),
	"swarm.SeccompOpts.Mode":               byRules("security-profile"),
	"swarm.SeccompOpts.Profile":            byRules("security-profile (compared with Docker's default profile)"),
	"swarm.Privileges.AppArmor":            byRules("security-profile"),
	"swarm.AppArmorOpts.Mode":              byRules("security-profile"),
	"swarm.Privileges.NoNewPrivileges":     byRules("no-new-privileges (ignored by Swarm before API 1.46)"),
	"swarm.ContainerSpec.Init":             harmless("docker-init as the task's PID 1"),
	"swarm.ContainerSpec.StopSignal":       harmless("the signal the engine sends the task's process"),
	"swarm.ContainerSpec.TTY":              harmless(streams),
	"swarm.ContainerSpec.OpenStdin":        harmless(streams),
	"swarm.ContainerSpec.ReadOnly":         byRules("read-only-rootfs"),
	"swarm.ContainerSpec.Mounts":           byRules("host-path, bind-mount-readonly, docker-socket, volume-type"),
	"swarm.ContainerSpec.StopGracePeriod":  harmless("how long the engine waits before killing the task"),
	"swarm.ContainerSpec.Healthcheck":      byRules("healthcheck"),
	"swarm.ContainerSpec.Hosts":            harmless("the task's own /etc/hosts"),
	"swarm.ContainerSpec.DNSConfig":        harmless("name resolution inside the task"),
	"swarm.DNSConfig.Nameservers":          harmless("name resolution inside the task"),
	"swarm.DNSConfig.Search":               harmless("name resolution inside the task"),
	"swarm.DNSConfig.Options":              harmless("name resolution inside the task"),
	"swarm.ContainerSpec.Secrets":          byRules("secret-target"),
	"swarm.SecretReference.File":           byRules("secret-target"),
	"swarm.SecretReferenceFileTarget.Name": byRules("secret-target"),
	"swarm.SecretReferenceFileTarget.UID":  harmless("the owner of the secret's file inside the task"),
	"swarm.SecretReferenceFileTarget.GID":  harmless("the group of the secret's file inside the task"),
	"swarm.SecretReferenceFileTarget.Mode": harmless("the mode of the secret's file inside the task"),
	"swarm.SecretReference.SecretID":       harmless("which secret; the secret store is Swarm's"),
	"swarm.SecretReference.SecretName":     harmless("which secret; the secret store is Swarm's"),
	"swarm.ContainerSpec.Configs":          harmless("configuration files mounted inside the task"),
	"swarm.ConfigReference.File":           harmless("configuration files mounted inside the task"),
	"swarm.ConfigReferenceFileTarget.Name": harmless("configuration files mounted inside the task"),
	"swarm.ConfigReferenceFileTarget.UID":  harmless("configuration files mounted inside the task"),
	"swarm.ConfigReferenceFileTarget.GID":  harmless("configuration files mounted inside the task"),
	"swarm.ConfigReferenceFileTarget.Mode": harmless("configuration files mounted inside the task"),
	"swarm.ConfigReference.Runtime":        harmless(windowsOnly),
	"swarm.ConfigReference.ConfigID":       harmless("which config"),
	"swarm.ConfigReference.ConfigName":     harmless("which config"),
	"swarm.ContainerSpec.Isolation":        harmless(windowsOnly),
	"swarm.ContainerSpec.Sysctls":          harmless("the engine accepts only namespaced sysctls"),
	"swarm.ContainerSpec.CapabilityAdd":    byRules("cap-add (ignored by Swarm before API 1.41)"),
	"swarm.ContainerSpec.CapabilityDrop":   byRules("cap-drop-all (ignored by Swarm before API 1.41)"),
	"swarm.ContainerSpec.Ulimits":          harmless("limits of the task's own processes"),
	"swarm.ContainerSpec.OomScoreAdj": checked("a negative score makes the host's OOM killer spare the task", func(v reflect.Value) string {
		if v.Int() < 0 {
			return "a negative OomScoreAdj makes the host's OOM killer spare the task over the host's own processes"
		}
		return ""
	}),
	"swarm.TaskSpec.PluginSpec":                   byRules("the plugin's privileges: the isolation rules"),
	"swarm.RuntimeSpec.Name":                      harmless("the plugin's name"),
	"swarm.RuntimeSpec.Remote":                    harmless("where the plugin comes from; its privileges are judged"),
	"swarm.RuntimeSpec.Privileges":                byRules("host-namespaces, bind-mount-readonly, docker-socket, cap-add, host-devices"),
	"swarm.RuntimePrivilege.Name":                 byRules("the isolation rules, by privilege"),
	"swarm.RuntimePrivilege.Description":          harmless("text shown to a user"),
	"swarm.RuntimePrivilege.Value":                byRules("the isolation rules, by privilege"),
	"swarm.RuntimeSpec.Disabled":                  harmless("leaves the plugin disabled"),
	"swarm.RuntimeSpec.Env":                       harmless("the plugin's own settings"),
	"swarm.TaskSpec.NetworkAttachmentSpec":        deniedField("network attachment tasks are the engine's own, made for containers joining attachable overlays"),
	"swarm.NetworkAttachmentSpec.ContainerID":     deniedField("part of NetworkAttachmentSpec"),
	"swarm.TaskSpec.Resources":                    byRules("its fields, below"),
	"swarm.ResourceRequirements.Limits":           byRules("its fields, below"),
	"swarm.Limit.NanoCPUs":                        harmless(scheduling),
	"swarm.Limit.MemoryBytes":                     byRules("memory-limit"),
	"swarm.Limit.Pids":                            byRules("pids-limit (ignored by Swarm before API 1.41)"),
	"swarm.ResourceRequirements.Reservations":     harmless("what the scheduler reserves on a node"),
	"swarm.Resources.NanoCPUs":                    harmless("what the scheduler reserves on a node"),
	"swarm.Resources.MemoryBytes":                 harmless("what the scheduler reserves on a node"),
	"swarm.Resources.GenericResources":            harmless("what the scheduler reserves on a node"),
	"swarm.GenericResource.NamedResourceSpec":     harmless("what the scheduler reserves on a node"),
	"swarm.NamedGenericResource.Kind":             harmless("what the scheduler reserves on a node"),
	"swarm.NamedGenericResource.Value":            harmless("what the scheduler reserves on a node"),
	"swarm.GenericResource.DiscreteResourceSpec":  harmless("what the scheduler reserves on a node"),
	"swarm.DiscreteGenericResource.Kind":          harmless("what the scheduler reserves on a node"),
	"swarm.DiscreteGenericResource.Value":         harmless("what the scheduler reserves on a node"),
	"swarm.ResourceRequirements.SwapBytes":        harmless("swap beyond the memory limit"),
	"swarm.ResourceRequirements.MemorySwappiness": harmless("the task's own swap preference"),
	"swarm.TaskSpec.RestartPolicy":                harmless(orchestr),
	"swarm.RestartPolicy.Condition":               harmless(orchestr),
	"swarm.RestartPolicy.Delay":                   harmless(orchestr),
	"swarm.RestartPolicy.MaxAttempts":             harmless(orchestr),
	"swarm.RestartPolicy.Window":                  harmless(orchestr),
	"swarm.TaskSpec.Placement":                    harmless(orchestr),
	"swarm.Placement.Constraints":                 harmless(orchestr),
	"swarm.Placement.Preferences":                 harmless(orchestr),
	"swarm.PlacementPreference.Spread":            harmless(orchestr),
	"swarm.SpreadOver.SpreadDescriptor":           harmless(orchestr),
	"swarm.Placement.MaxReplicas":                 harmless(orchestr),
	"swarm.Placement.Platforms":                   harmless(orchestr),
	"swarm.Platform.Architecture":                 harmless(orchestr),
	"swarm.Platform.OS":                           harmless(orchestr),
	"swarm.TaskSpec.Networks":                     byRules("host-namespaces (the host network by name or ID)"),
	"swarm.NetworkAttachmentConfig.Target":        byRules("host-namespaces"),
	"swarm.NetworkAttachmentConfig.Aliases":       harmless(impersonate),
	"swarm.NetworkAttachmentConfig.DriverOpts":    deniedField("endpoint driver options are not judged"),
	"swarm.TaskSpec.LogDriver":                    byRules("log-driver"),
	"swarm.Driver.Name":                           byRules("log-driver"),
	"swarm.Driver.Options":                        byRules("log-driver"),
	"swarm.TaskSpec.ForceUpdate":                  harmless(orchestr),
	"swarm.TaskSpec.Runtime":                      byRules("container specs as containers, plugin specs by their privileges; anything else is refused"),
	"swarm.ServiceSpec.Mode":                      harmless(orchestr),
	"swarm.ServiceMode.Replicated":                harmless(orchestr),
	"swarm.ReplicatedService.Replicas":            harmless(orchestr),
	"swarm.ServiceMode.Global":                    harmless(orchestr),
	"swarm.ServiceMode.ReplicatedJob":             harmless(orchestr),
	"swarm.ReplicatedJob.MaxConcurrent":           harmless(orchestr),
	"swarm.ReplicatedJob.TotalCompletions":        harmless(orchestr),
	"swarm.ServiceMode.GlobalJob":                 harmless(orchestr),
	"swarm.ServiceSpec.UpdateConfig":              harmless(orchestr),
	"swarm.UpdateConfig.Parallelism":              harmless(orchestr),
	"swarm.UpdateConfig.Delay":                    harmless(orchestr),
	"swarm.UpdateConfig.FailureAction":            harmless(orchestr),
	"swarm.UpdateConfig.Monitor":                  harmless(orchestr),
	"swarm.UpdateConfig.MaxFailureRatio":          harmless(orchestr),
	"swarm.UpdateConfig.Order":                    harmless(orchestr),
	"swarm.ServiceSpec.RollbackConfig":            harmless(orchestr),
	"swarm.ServiceSpec.EndpointSpec":              byRules("published-ports"),
	"swarm.EndpointSpec.Mode":                     harmless("how the service's name resolves"),
	"swarm.EndpointSpec.Ports":                    byRules("published-ports"),
	"swarm.PortConfig.Name":                       harmless("the port's name"),
	"swarm.PortConfig.Protocol":                   byRules("published-ports"),
	"swarm.PortConfig.TargetPort":                 byRules("published-ports"),
	"swarm.PortConfig.PublishedPort":              byRules("published-ports"),
	"swarm.PortConfig.PublishMode":                byRules("published-ports"),

	// --- plugins ---
	"plugin.Privilege.Name":        byRules("the isolation rules, by privilege (network, mount, device, capabilities, ...)"),
	"plugin.Privilege.Description": harmless("text shown to a user"),
	"plugin.Privilege.Value":       byRules("the isolation rules, by privilege"),

	// --- swarm control ---
	"swarm.InitRequest.ListenAddr":                        deniedField(swarmCtl),
	"swarm.InitRequest.AdvertiseAddr":                     deniedField(swarmCtl),
	"swarm.InitRequest.DataPathAddr":                      deniedField(swarmCtl),
	"swarm.InitRequest.DataPathPort":                      deniedField(swarmCtl),
	"swarm.InitRequest.ForceNewCluster":                   deniedField(swarmCtl),
	"swarm.InitRequest.Spec":                              deniedField(swarmCtl),
	"swarm.InitRequest.AutoLockManagers":                  deniedField(swarmCtl),
	"swarm.InitRequest.Availability":                      deniedField(swarmCtl),
	"swarm.InitRequest.DefaultAddrPool":                   deniedField(swarmCtl),
	"swarm.InitRequest.SubnetSize":                        deniedField(swarmCtl),
	"swarm.Spec.Orchestration":                            deniedField(swarmCtl),
	"swarm.OrchestrationConfig.TaskHistoryRetentionLimit": deniedField(swarmCtl),
	"swarm.Spec.Raft":                                     deniedField(swarmCtl),
	"swarm.RaftConfig.SnapshotInterval":                   deniedField(swarmCtl),
	"swarm.RaftConfig.KeepOldSnapshots":                   deniedField(swarmCtl),
	"swarm.RaftConfig.LogEntriesForSlowFollowers":         deniedField(swarmCtl),
	"swarm.RaftConfig.ElectionTick":                       deniedField(swarmCtl),
	"swarm.RaftConfig.HeartbeatTick":                      deniedField(swarmCtl),
	"swarm.Spec.Dispatcher":                               deniedField(swarmCtl),
	"swarm.DispatcherConfig.HeartbeatPeriod":              deniedField(swarmCtl),
	"swarm.Spec.CAConfig":                                 deniedField(swarmCtl),
	"swarm.CAConfig.NodeCertExpiry":                       deniedField(swarmCtl),
	"swarm.CAConfig.ExternalCAs":                          deniedField(swarmCtl),
	"swarm.ExternalCA.Protocol":                           deniedField(swarmCtl),
	"swarm.ExternalCA.URL":                                deniedField(swarmCtl),
	"swarm.ExternalCA.Options":                            deniedField(swarmCtl),
	"swarm.ExternalCA.CACert":                             deniedField(swarmCtl),
	"swarm.CAConfig.SigningCACert":                        deniedField(swarmCtl),
	"swarm.CAConfig.SigningCAKey":                         deniedField(swarmCtl),
	"swarm.CAConfig.ForceRotate":                          deniedField(swarmCtl),
	"swarm.Spec.TaskDefaults":                             deniedField(swarmCtl),
	"swarm.TaskDefaults.LogDriver":                        deniedField(swarmCtl),
	"swarm.Spec.EncryptionConfig":                         deniedField(swarmCtl),
	"swarm.EncryptionConfig.AutoLockManagers":             deniedField(swarmCtl),
	"swarm.JoinRequest.ListenAddr":                        deniedField(swarmCtl),
	"swarm.JoinRequest.AdvertiseAddr":                     deniedField(swarmCtl),
	"swarm.JoinRequest.DataPathAddr":                      deniedField(swarmCtl),
	"swarm.JoinRequest.RemoteAddrs":                       deniedField(swarmCtl),
	"swarm.JoinRequest.JoinToken":                         deniedField(swarmCtl),
	"swarm.JoinRequest.Availability":                      deniedField(swarmCtl),
	"swarm.UnlockRequest.UnlockKey":                       deniedField(swarmCtl),
	"swarm.NodeSpec.Role":                                 deniedField(swarmCtl),
	"swarm.NodeSpec.Availability":                         deniedField(swarmCtl),
}

// networkOptions are the bridge and overlay driver options a network may
// set: they change how its own containers reach each other and the
// outside, not what of the host they reach.
var networkOptions = []string{
	"com.docker.network.bridge.enable_icc",
	"com.docker.network.bridge.enable_ip_masquerade",
	"com.docker.network.bridge.host_binding_ipv4",
	"com.docker.network.container_iface_prefix",
	"com.docker.network.driver.mtu",
	"com.docker.network.driver.overlay.vxlanid_list",
	"encrypted",
}

// maxListEntries bounds every list and map of a request body the guard
// judges (Binds, Mounts, VolumesFrom, Env, Labels, ...).
const maxListEntries = 4096

// judgeFields walks a decoded request body and refuses it when a field
// with a value is denied, refused by its row's check, or not in the table.
func judgeFields(body any) *denial {
	return walkFields(reflect.ValueOf(body), "")
}

func walkFields(v reflect.Value, at string) *denial {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	// What the guard does per entry (findings, engine lookups, pins) is
	// bounded by what it judges, not by the body's bytes: a 4 MiB body holds
	// 600,000 binds. No workload needs more entries in one list.
	if k := v.Kind(); (k == reflect.Slice || k == reflect.Array || k == reflect.Map) && v.Len() > maxListEntries {
		return deny(http.StatusForbidden, reasonBody, "%s has %d entries; the guard judges at most %d in one list", cmp.Or(at, "the request body"), v.Len(), maxListEntries)
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if d := walkFields(v.Index(i), fmt.Sprintf("%s[%d]", at, i)); d != nil {
				return d
			}
		}
		return nil
	case reflect.Map:
		type entry struct {
			name string
			key  reflect.Value
		}
		keys := make([]entry, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, entry{fmt.Sprint(k), k})
		}
		slices.SortFunc(keys, func(a, b entry) int { return strings.Compare(a.name, b.name) })
		for _, k := range keys {
			if d := walkFields(v.MapIndex(k.key), at+"["+k.name+"]"); d != nil {
				return d
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous {
			// Embedded structs are flattened into their parent's JSON.
			if d := walkFields(fv, at); d != nil {
				return d
			}
			continue
		}
		if fv.IsZero() {
			continue
		}
		name := f.Name
		if at != "" {
			name = at + "." + f.Name
		}
		row, ok := fieldTable[t.String()+"."+f.Name]
		switch {
		case !ok:
			return deny(http.StatusForbidden, reasonField, "%s has a value, and the guard has not judged that field (%s.%s): a field no one has judged is refused", name, t.String(), f.Name)
		case row.kind == fieldDenied:
			return deny(http.StatusForbidden, reasonField, "%s is refused: %s", name, row.why)
		case row.check != nil:
			if why := row.check(fv); why != "" {
				return deny(http.StatusForbidden, reasonField, "%s is refused: %s", name, why)
			}
		}
		if d := walkFields(fv, name); d != nil {
			return d
		}
	}
	return nil
}

// fieldKeys lists the table keys reachable from a body type, in field
// order, each type once (what seen already holds is skipped).
func fieldKeys(t reflect.Type, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return nil
	}
	seen[t] = true
	var keys, nested []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if !f.Anonymous {
			keys = append(keys, t.String()+"."+f.Name)
		}
		nested = append(nested, fieldKeys(f.Type, seen)...)
	}
	return append(keys, nested...)
}

// WriteFieldTable writes the field table as Markdown, body by body, for
// the documentation (`hyhome guard fields`).
func WriteFieldTable(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Request fields the guard judges\n\n")
	b.WriteString("Generated by `hyhome guard fields`; do not edit. Every field of every request body the guard decodes\n")
	b.WriteString("(the newest moby/moby/api types) is judged (a rule, or the check named, decides on its value), harmless\n")
	b.WriteString("(with the reason) or denied; a field with a value that is denied, refused by its check, or in no row is\n")
	b.WriteString("refused with 403. Fields that API 1.41 accepted and newer types dropped are refused as unknown keys.\n")
	b.WriteString("A type shared by several bodies is listed under the first.\n")
	seen := map[reflect.Type]bool{}
	for _, root := range fieldRoots {
		keys := fieldKeys(reflect.TypeOf(root.body), seen)
		if len(keys) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s (`%T`)\n\n| field | verdict | why |\n|---|---|---|\n", root.route, root.body)
		for _, k := range keys {
			row := fieldTable[k]
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k, row.kind, strings.ReplaceAll(row.why, "|", `\|`))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
