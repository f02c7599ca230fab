package dockertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Object is one engine object a test created: every kind carries LabelKey
// except plugins, which have no labels and are recognised by a name that
// starts with PluginPrefix followed by the run ID.
type Object struct {
	Kind  string // container, service, secret, config, network, volume, image, plugin
	ID    string // what the remove call takes
	Name  string // for people
	RunID string // the LabelKey value (or the run ID in a plugin's name)
}

func (o Object) String() string { return fmt.Sprintf("%s %s (run %s)", o.Kind, o.Name, o.RunID) }

// PluginPrefix starts the name of every plugin a test installs:
// PluginPrefix + RunID + "-" + anything.
const PluginPrefix = "hyhome-test-"

// kindOrder is the order of removal: services own tasks (containers) and
// hold secrets and configs; containers hold networks, volumes and images.
var kindOrder = []string{"service", "container", "secret", "config", "network", "volume", "image", "plugin"}

// ListObjects lists every object of every kind that carries LabelKey, with
// any value (runID empty) or runID's. Services, secrets and configs exist
// only on a Swarm manager and are listed only there; nothing on the node's
// Swarm membership is read or changed otherwise.
func ListObjects(ctx context.Context, c *client.Client, runID string) ([]Object, error) {
	sel := LabelKey
	if runID != "" {
		sel += "=" + runID
	}
	f := client.Filters{}.Add("label", sel)
	var out []Object
	var errs []error
	add := func(kind, id, name string, labels map[string]string) {
		out = append(out, Object{Kind: kind, ID: id, Name: name, RunID: labels[LabelKey]})
	}
	if res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err != nil {
		errs = append(errs, fmt.Errorf("listing containers: %w", err))
	} else {
		for _, x := range res.Items {
			name := x.ID[:12]
			if len(x.Names) > 0 {
				name = strings.TrimPrefix(x.Names[0], "/")
			}
			add("container", x.ID, name, x.Labels)
		}
	}
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		errs = append(errs, fmt.Errorf("reading engine info: %w", err))
	} else if info.Info.Swarm.ControlAvailable {
		if res, err := c.ServiceList(ctx, client.ServiceListOptions{Filters: f}); err != nil {
			errs = append(errs, fmt.Errorf("listing services: %w", err))
		} else {
			for _, x := range res.Items {
				add("service", x.ID, x.Spec.Name, x.Spec.Labels)
			}
		}
		if res, err := c.SecretList(ctx, client.SecretListOptions{Filters: f}); err != nil {
			errs = append(errs, fmt.Errorf("listing secrets: %w", err))
		} else {
			for _, x := range res.Items {
				add("secret", x.ID, x.Spec.Name, x.Spec.Labels)
			}
		}
		if res, err := c.ConfigList(ctx, client.ConfigListOptions{Filters: f}); err != nil {
			errs = append(errs, fmt.Errorf("listing configs: %w", err))
		} else {
			for _, x := range res.Items {
				add("config", x.ID, x.Spec.Name, x.Spec.Labels)
			}
		}
	}
	if res, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err != nil {
		errs = append(errs, fmt.Errorf("listing networks: %w", err))
	} else {
		for _, x := range res.Items {
			add("network", x.ID, x.Name, x.Labels)
		}
	}
	if res, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err != nil {
		errs = append(errs, fmt.Errorf("listing volumes: %w", err))
	} else {
		for _, x := range res.Items {
			add("volume", x.Name, x.Name, x.Labels)
		}
	}
	if res, err := c.ImageList(ctx, client.ImageListOptions{All: true, Filters: f}); err != nil {
		errs = append(errs, fmt.Errorf("listing images: %w", err))
	} else {
		for _, x := range res.Items {
			name := x.ID
			// Engines before API 1.44 list an untagged image as "<none>:<none>".
			if len(x.RepoTags) > 0 && x.RepoTags[0] != "<none>:<none>" {
				name = x.RepoTags[0]
			}
			add("image", x.ID, name, x.Labels)
		}
	}
	if res, err := c.PluginList(ctx, client.PluginListOptions{}); err != nil {
		errs = append(errs, fmt.Errorf("listing plugins: %w", err))
	} else {
		for _, x := range res.Items {
			if id, ok := pluginRunID(x.Name); ok && (runID == "" || id == runID) {
				out = append(out, Object{Kind: "plugin", ID: x.Name, Name: x.Name, RunID: id})
			}
		}
	}
	rank := map[string]int{}
	for i, k := range kindOrder {
		rank[k] = i
	}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Kind] < rank[out[j].Kind] })
	return out, errors.Join(errs...)
}

// pluginRunID cuts the run ID out of a test plugin's name
// (PluginPrefix + RunID, then optionally "-" and more, and a ":tag").
func pluginRunID(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, PluginPrefix)
	if !ok {
		return "", false
	}
	rest, _, _ = strings.Cut(rest, ":")
	parts := strings.SplitN(rest, "-", 4)
	if len(parts) < 3 {
		return "", false
	}
	id := strings.Join(parts[:3], "-")
	if _, ok := ParseRunID(id); !ok {
		return "", false
	}
	return id, true
}

// RemoveService removes a service and waits until the engine has removed
// its tasks' containers too: ServiceRemove returns before Swarm has, so a
// caller that moves on (a test's cleanup, then Main's check for what tests
// left) would otherwise still find them.
func RemoveService(ctx context.Context, c *client.Client, id string) error {
	if _, err := c.ServiceRemove(ctx, id, client.ServiceRemoveOptions{}); err != nil {
		return err
	}
	f := client.Filters{}.Add("label", "com.docker.swarm.service.id="+id)
	for {
		res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			return fmt.Errorf("service %s removed; listing its task containers: %w", id, err)
		}
		if len(res.Items) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s removed, but %d of its task containers are still there: %w", id, len(res.Items), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RemoveObject removes one object, forcibly where the kind allows it: a
// test's container may still run, its image may still be tagged twice.
func RemoveObject(ctx context.Context, c *client.Client, o Object) error {
	var err error
	switch o.Kind {
	case "container":
		_, err = c.ContainerRemove(ctx, o.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	case "service":
		err = RemoveService(ctx, c, o.ID)
	case "secret":
		_, err = c.SecretRemove(ctx, o.ID, client.SecretRemoveOptions{})
	case "config":
		_, err = c.ConfigRemove(ctx, o.ID, client.ConfigRemoveOptions{})
	case "network":
		_, err = c.NetworkRemove(ctx, o.ID, client.NetworkRemoveOptions{})
	case "volume":
		_, err = c.VolumeRemove(ctx, o.ID, client.VolumeRemoveOptions{Force: true})
	case "image":
		_, err = c.ImageRemove(ctx, o.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	case "plugin":
		_, err = c.PluginRemove(ctx, o.ID, client.PluginRemoveOptions{Force: true})
	default:
		err = fmt.Errorf("unknown kind %q", o.Kind)
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", o, err)
	}
	return nil
}

// RemoveObjects removes objects in kindOrder. A service's tasks release its
// secrets and networks asynchronously after the service is gone, so what
// fails is retried for a while (within ctx); the errors of the last attempt
// are returned, except "not found".
func RemoveObjects(ctx context.Context, c *client.Client, objs []Object) error {
	var errs []error
	for attempt := 0; len(objs) > 0; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(append(errs, ctx.Err())...)
			case <-time.After(500 * time.Millisecond):
			}
		}
		var failed []Object
		errs = errs[:0]
		for _, o := range objs {
			if err := RemoveObject(ctx, c, o); err != nil && !isNotFound(err) {
				failed = append(failed, o)
				errs = append(errs, err)
			}
		}
		if attempt == 20 {
			break
		}
		objs = failed
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	// The engine says "No such container", "no such image", "not found"...
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no such") || strings.Contains(s, "not found")
}

// TempDirs lists the per-process temporary directories of test processes
// (TempDir), by run ID.
func TempDirs() map[string]string {
	out := map[string]string{}
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, m := range matches {
		id := strings.TrimPrefix(filepath.Base(m), tempPrefix)
		if _, ok := ParseRunID(id); ok {
			out[id] = m
		}
	}
	return out
}
