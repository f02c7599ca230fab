package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/network"
)

// Networks decide what a container can reach and who answers a name. Two
// decisions are made here, each denied by default and allowed by a profile
// permit: networks that put containers on a host interface's link, and
// names that would answer for an infrastructure service.

// networkCreateRequest is POST /networks/create as clients of API 1.24 to
// the newest send it: CheckDuplicate (dropped from the types in API 1.44)
// only makes the engine refuse a duplicate name.
type networkCreateRequest struct {
	network.CreateRequest
	CheckDuplicate bool `json:",omitempty"`
}

// bridgeDrivers are the drivers whose networks stay behind the host's own
// bridge or overlay, with the engine's NAT and port filtering in front.
var bridgeDrivers = map[string]bool{"": true, "bridge": true, "overlay": true}

// hostLinkOptions are bridge driver options that put a network on a host
// interface's link or open it to the host's LAN.
var hostLinkOptions = map[string]func(string) bool{
	// An existing host bridge (br0 with eth0 enslaved) is reused as it is.
	"com.docker.network.bridge.name": func(string) bool { return true },
	// "routed" and "nat-unprotected" make container addresses reachable
	// from the host's LAN, without the engine's port filtering.
	"com.docker.network.bridge.gateway_mode_ipv4": func(v string) bool { return v != "nat" },
	"com.docker.network.bridge.gateway_mode_ipv6": func(v string) bool { return v != "nat" },
}

// networkCreate judges POST /networks/create: a driver other than bridge
// or overlay (macvlan and ipvlan take a host interface as parent; plugin
// drivers do what they like), a bridge option that names a host bridge or
// opens the network to the LAN, or a ConfigFrom (whose options the guard
// would have to judge in another network) is refused unless the profile
// permits host-interface-networks.
func (a *admission) networkCreate(p *Profile, t *target, r *http.Request, body []byte) verdict {
	var req networkCreateRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	permitted := p.Permits(PermitHostInterfaceNetworks)
	why := ""
	switch {
	case !bridgeDrivers[req.Driver] && !hostLinkDrivers[req.Driver]:
		return refused(deny(http.StatusForbidden, reasonField, "%s: network driver %q is not allowed: only bridge and overlay, and macvlan or ipvlan where a profile permits %s (host and null are the engine's own, plugin drivers are unknown)",
			t.route.Name, req.Driver, PermitHostInterfaceNetworks))
	case !bridgeDrivers[req.Driver]:
		why = "driver " + req.Driver + " can attach containers to a host interface (macvlan and ipvlan take one as parent)"
	case req.ConfigFrom != nil && req.ConfigFrom.Network != "":
		why = "ConfigFrom takes its options (a parent interface, a host bridge) from network " + req.ConfigFrom.Network
	default:
		for k, v := range req.Options {
			if check, ok := hostLinkOptions[strings.ToLower(k)]; ok && check(v) {
				why = "option " + k + "=" + v + " puts the network on a host interface's link"
				break
			}
		}
	}
	if why != "" && !permitted {
		return refused(deny(http.StatusForbidden, reasonPermit, "%s: %s: containers on it bypass the host's firewall and published ports (profile %s does not permit %s)",
			t.route.Name, why, p.Name, PermitHostInterfaceNetworks))
	}
	var bad []string
	for k := range req.Options {
		check, hostLink := hostLinkOptions[strings.ToLower(k)]
		switch {
		case slices.Contains(networkOptions, k):
		case hostLink && (permitted || !check(req.Options[k])):
		case permitted && slices.Contains(hostLinkDriverOptions, k):
		default:
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return refused(deny(http.StatusForbidden, reasonField, "%s: network options %s are not allowed (allowed: %s)", t.route.Name, strings.Join(bad, ", "), strings.Join(networkOptions, ", ")))
	}
	return verdict{}
}

// hostLinkDrivers put containers directly on a host interface's link; a
// profile that permits host-interface-networks may create them.
var hostLinkDrivers = map[string]bool{"macvlan": true, "ipvlan": true}

// hostLinkDriverOptions are the macvlan and ipvlan driver options.
var hostLinkDriverOptions = []string{"parent", "macvlan_mode", "ipvlan_mode", "ipvlan_flag"}

// infraNames are the DNS names infrastructure containers answer to on
// their networks: container names, network aliases, the DNS names the
// engine reports, and compose service names (which compose registers as
// aliases), lower-case, each with the container that has it.
type infraNames map[string]string

func (a *admission) infraNames(ctx context.Context, except string) (infraNames, *denial) {
	cs, err := a.engine.infraContainers(ctx)
	if err != nil {
		return nil, lookupDenial("containers", "of the infrastructure tiers", err, "")
	}
	names := infraNames{}
	for _, c := range cs {
		if c.ID == except {
			continue
		}
		who := containerName(c.Names, c.ID)
		add := func(n string) {
			if n = strings.ToLower(strings.TrimPrefix(n, "/")); n != "" {
				names[n] = who
			}
		}
		for _, n := range c.Names {
			add(n)
		}
		add(c.Labels["com.docker.compose.service"])
		// The list leaves network aliases out (20.10 sends null):
		// inspect has them.
		ins, err := a.engine.container(ctx, c.ID)
		if errors.Is(err, errNotFound) {
			continue // removed since the list
		}
		if err != nil {
			return nil, lookupDenial("container", c.ID, err, "")
		}
		if ins.NetworkSettings != nil {
			for _, ep := range ins.NetworkSettings.Networks {
				if ep == nil {
					continue
				}
				for _, n := range ep.Aliases {
					add(n)
				}
				for _, n := range ep.DNSNames {
					add(n)
				}
			}
		}
	}
	return names, nil
}

// check refuses the first name that an infrastructure container answers
// to.
func (n infraNames) check(p *Profile, route, what string, names ...string) *denial {
	for _, name := range names {
		if who, taken := n[strings.ToLower(name)]; taken && name != "" {
			return deny(http.StatusForbidden, reasonPermit, "%s: %s %q is a name infrastructure container %s answers to on its networks; a second answer would take its traffic (profile %s does not permit %s)",
				route, what, name, who, p.Name, PermitInfraNames)
		}
	}
	return nil
}

// createNames judges the names a container create gives: its name and its
// network aliases. It runs after the create judge, which has decoded the
// body strictly, so the body has one reading.
func (a *admission) createNames(ctx context.Context, p *Profile, t *target, body []byte) *denial {
	names := queryValues(t.query, "name")
	// The create judge decoded the body strictly, keys spelled exactly: a
	// body without "Aliases" gives none, and needs no second decoding.
	if p.Permits(PermitInfraNames) || len(names) == 0 && !bytes.Contains(body, []byte(`"Aliases"`)) {
		return nil
	}
	var req struct {
		NetworkingConfig *network.NetworkingConfig
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return deny(http.StatusForbidden, reasonBody, "request body: %v", err)
	}
	var aliases []string
	if req.NetworkingConfig != nil {
		for _, ep := range req.NetworkingConfig.EndpointsConfig {
			if ep != nil {
				aliases = append(aliases, ep.Aliases...)
			}
		}
	}
	if len(names) == 0 && len(aliases) == 0 {
		return nil
	}
	infra, d := a.infraNames(ctx, "")
	if d != nil {
		return d
	}
	if d := infra.check(p, t.route.Name, "container name", names...); d != nil {
		return d
	}
	return infra.check(p, t.route.Name, "network alias", aliases...)
}

// networkConnect judges POST /networks/{id}/connect: the container's name
// and the aliases it is given become names on the network.
func (a *admission) networkConnect(ctx context.Context, p *Profile, t *target, r *http.Request, body []byte) verdict {
	var req network.ConnectRequest
	if d := decodeBody(r, body, &req); d != nil {
		return refused(d)
	}
	if p.Permits(PermitInfraNames) {
		return verdict{}
	}
	res := newRefs(ctx, a.engine)
	c, d := res.container(req.Container)
	if d != nil {
		return refused(d)
	}
	infra, d := a.infraNames(ctx, c.ID)
	if d != nil {
		return refused(d)
	}
	if d := infra.check(p, t.route.Name, "container name", strings.TrimPrefix(c.Name, "/")); d != nil {
		return refused(d)
	}
	if req.EndpointConfig != nil {
		if d := infra.check(p, t.route.Name, "network alias", req.EndpointConfig.Aliases...); d != nil {
			return refused(d)
		}
	}
	return verdict{}
}

// containerRename judges POST /containers/{name}/rename: the new name is a
// DNS name on every network the container is on. The container is pinned
// by ID.
func (a *admission) containerRename(ctx context.Context, p *Profile, t *target) verdict {
	res := newRefs(ctx, a.engine)
	c, d := res.container(t.vars["name"])
	if d != nil {
		return refused(d)
	}
	v := verdict{vars: pinVar(t.vars, "name", c.ID)}
	if p.Permits(PermitInfraNames) {
		return v
	}
	infra, d := a.infraNames(ctx, c.ID)
	if d != nil {
		return refused(d)
	}
	if d := infra.check(p, t.route.Name, "new name", queryValues(t.query, "name")...); d != nil {
		return refused(d)
	}
	return v
}
