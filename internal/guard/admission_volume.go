package guard

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"

	"github.com/hy-home/hyhome/internal/workload"
)

// inlineVolumeDrivers returns, by target, the volume driver configuration a
// create request gives the named volumes it mounts; the engine uses it when
// it creates the volume.
func inlineVolumeDrivers(hc *container.HostConfig) map[string]*mount.Driver {
	out := map[string]*mount.Driver{}
	for _, m := range hc.Mounts {
		if m.Type == mount.TypeVolume && m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil {
			out[m.Target] = m.VolumeOptions.DriverConfig
		}
	}
	return out
}

// volumeBinds turns named volumes that are really host mounts into the bind
// mounts they are, so the bind and socket rules judge them: an existing
// volume by its driver options on the engine, a new one by the driver
// configuration the request gives it.
func (a *admission) volumeBinds(ctx context.Context, w *workload.Workload, inline map[string]*mount.Driver) *denial {
	for i, m := range w.Mounts {
		if m.Type != "volume" {
			continue
		}
		if m.Source == "" {
			// An anonymous volume is created by the driver configuration
			// the request gives it, which may bind a host path too.
			if d := inline[m.Target]; d != nil {
				if dev, ro, ok := workload.VolumeHostDevice(d.Name, d.Options); ok {
					w.Mounts[i] = workload.Mount{Type: "bind", Source: dev, Target: m.Target, ReadOnly: m.ReadOnly || ro, ViaVolumeDriver: "(anonymous)", Pos: m.Pos}
				}
			}
			continue
		}
		if !validRef(m.Source) {
			return deny(http.StatusForbidden, reasonBody, "volume name %q is not valid", m.Source)
		}
		var driver string
		var opts map[string]string
		v, err := a.engine.volume(ctx, m.Source)
		switch {
		case err == nil:
			driver, opts = v.Driver, v.Options
		case errors.Is(err, errNotFound):
			d := inline[m.Target]
			if d == nil {
				continue
			}
			driver, opts = d.Name, d.Options
		default:
			return lookupDenial("volume", m.Source, err, "")
		}
		if dev, ro, ok := workload.VolumeHostDevice(driver, opts); ok {
			w.Mounts[i] = workload.Mount{Type: "bind", Source: dev, Target: m.Target, ReadOnly: m.ReadOnly || ro, ViaVolumeDriver: m.Source, Pos: m.Pos}
		}
	}
	return nil
}

// volumeCreate judges POST /volumes/create: a local volume with a host
// device is a bind mount waiting to happen, judged by the bind and socket
// rules (with the volume's own exemption labels).
func (a *admission) volumeCreate(t *target, r *http.Request, body []byte) verdict {
	var req volume.CreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	dev, ro, ok := workload.VolumeHostDevice(req.Driver, req.DriverOpts)
	if !ok {
		return verdict{}
	}
	name := req.Name
	if name == "" {
		name = "(unnamed)"
	}
	w := &workload.Workload{
		Kind:    workload.KindRequest,
		Name:    name,
		Display: "volume request " + name,
		Labels:  maps.Clone(req.Labels),
		Mounts:  []workload.Mount{{Type: "bind", Source: dev, Target: "every container that mounts it", ReadOnly: ro, ViaVolumeDriver: name}},
	}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	return a.conclude(w, a.volume)
}
