package guard

import (
	"context"
	"maps"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/workload"
)

// volumeCreate judges POST /volumes/create by what the volume's driver will
// mount when a container first uses it (workload.LocalVolume): a bind of a
// host path whatever `type` says, a host disk, overlay layers of host
// directories, a kernel file system of the engine's namespaces, a network
// file system, a driver plugin. It is judged as a mount by the host-path,
// volume-type, bind and socket rules, with the volume's own exemption
// labels.
func (a *admission) volumeCreate(ctx context.Context, t *target, r *http.Request, body []byte) verdict {
	var req volume.CreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	if d := judgeFields(&req); d != nil {
		return refused(d)
	}
	name := req.Name
	if name == "" {
		name = "(unnamed)"
	}
	m := workload.Mount{Type: "volume", Source: name, Target: "every container that mounts it"}
	m.SetVolume(&workload.VolumeConfig{Driver: req.Driver, Options: req.DriverOpts})
	if m.Volume == nil {
		return verdict{} // a plain local volume: a directory under the data root
	}
	f, d := a.facts(ctx)
	if d != nil {
		return refused(d)
	}
	w := &workload.Workload{
		Kind:    workload.KindRequest,
		Name:    name,
		Display: "volume request " + name,
		Labels:  maps.Clone(req.Labels),
		Mounts:  []workload.Mount{m},
	}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	return a.concludeWith(w, a.rules(policy.RequestVolume), f)
}

// networkBody judges the bodies of network create, connect and disconnect
// by the field table: drivers that put containers on host interfaces,
// options that take over host bridges, endpoint driver options and legacy
// links are refused there.
func (a *admission) networkBody(t *target, r *http.Request, body []byte) verdict {
	var v any
	switch {
	case strings.HasSuffix(t.route.Template, "/create"):
		v = &networkCreateRequest{}
	case strings.HasSuffix(t.route.Template, "/connect"):
		v = &network.ConnectRequest{}
	default:
		v = &network.DisconnectRequest{}
	}
	if d := decodeBody(r, body, v); d != nil {
		return refused(d)
	}
	if d := judgeFields(v); d != nil {
		return refused(d)
	}
	return verdict{}
}
