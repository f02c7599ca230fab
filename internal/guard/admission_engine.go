package guard

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/system"

	"github.com/hy-home/hyhome/internal/workload"
)

// admissionEngine is what the admission judges ask the engine: the objects
// a request refers to, facts about the host, and the user database of an
// image or a container.
type admissionEngine interface {
	lookups
	info(ctx context.Context) (*system.Info, error)
	// socketGroup is the group owning the engine's socket, when the guard
	// reaches the engine through one it can stat.
	socketGroup() (uint32, bool)
	// imageFiles returns an image's /etc/passwd and /etc/group (nil when
	// the image has none), and the engine's default MaskedPaths and
	// ReadonlyPaths as it gave them to the probe container.
	imageFiles(ctx context.Context, imageID string) (userFiles, error)
	// containerFiles returns a container's /etc/passwd and /etc/group as
	// its filesystem holds them now.
	containerFiles(ctx context.Context, id string) (userFiles, error)
}

// userFiles are the files the engine resolves user and group names from.
type userFiles struct {
	passwd, group []byte
	// masked and readonly are the engine's default path lists, read from
	// a probe container (image probes only).
	masked, readonly []string
}

// maxUserFile bounds /etc/passwd and /etc/group; real ones are a few KiB.
const maxUserFile = 1 << 20

// probeLabel marks the containers the guard creates, never starts, to copy
// an image's user database out of it.
const probeLabel = "hy-home.guard.probe"

func (e engineLookups) info(ctx context.Context) (*system.Info, error) {
	var v system.Info
	if err := e.u.getJSON(ctx, "/info", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func (e engineLookups) socketGroup() (uint32, bool) {
	if e.u.network != "unix" {
		return 0, false
	}
	return socketGID(e.u.address)
}

// imageFiles creates a container from the image, never starts it, copies
// the two files out through the archive API (so the engine resolves the
// paths in the image's filesystem, as it does when it starts a container)
// and removes the container, even when the request that asked is gone.
func (e engineLookups) imageFiles(ctx context.Context, imageID string) (userFiles, error) {
	body, err := json.Marshal(map[string]any{
		"Image":           imageID,
		"Entrypoint":      []string{"/.hyhome-guard-probe"},
		"NetworkDisabled": true,
		"Labels":          map[string]string{probeLabel: "user-database"},
		"HostConfig":      map[string]any{"NetworkMode": "none", "LogConfig": map[string]any{"Type": "none"}},
	})
	if err != nil {
		return userFiles{}, err
	}
	status, out, err := e.u.call(ctx, http.MethodPost, "/containers/create", nil, body, 1<<16)
	if err != nil {
		return userFiles{}, fmt.Errorf("creating a probe container from image %s: %w", imageID, err)
	}
	if status != http.StatusCreated {
		return userFiles{}, fmt.Errorf("creating a probe container from image %s: engine answered %d: %s", imageID, status, engineMessage(out))
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil || !validRef(created.ID) {
		return userFiles{}, fmt.Errorf("creating a probe container from image %s: unexpected answer %q", imageID, out)
	}
	defer func() {
		rm, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		_, _, _ = e.u.call(rm, http.MethodDelete, "/containers/"+created.ID, url.Values{"force": {"1"}, "v": {"1"}}, nil, 1<<16)
	}()
	f, err := e.containerFiles(ctx, created.ID)
	if err != nil {
		return f, err
	}
	c, err := e.container(ctx, created.ID)
	if err != nil {
		return f, err
	}
	if c.HostConfig != nil {
		f.masked, f.readonly = c.HostConfig.MaskedPaths, c.HostConfig.ReadonlyPaths
	}
	return f, nil
}

func (e engineLookups) containerFiles(ctx context.Context, id string) (userFiles, error) {
	var f userFiles
	var err error
	if f.passwd, err = e.readFile(ctx, id, "/etc/passwd"); err != nil {
		return f, err
	}
	f.group, err = e.readFile(ctx, id, "/etc/group")
	return f, err
}

// readFile copies one file out of a container, following symbolic links
// within the container's filesystem (the archive API returns a link as a
// link); nil when it does not exist.
func (e engineLookups) readFile(ctx context.Context, id, p string) ([]byte, error) {
	for hops := 0; hops < 16; hops++ {
		status, out, err := e.u.call(ctx, http.MethodGet, "/containers/"+id+"/archive", url.Values{"path": {p}}, nil, maxUserFile+64<<10)
		switch {
		case err != nil:
			return nil, fmt.Errorf("reading %s of container %s: %w", p, id, err)
		case status == http.StatusNotFound:
			return nil, nil
		case status != http.StatusOK:
			return nil, fmt.Errorf("reading %s of container %s: engine answered %d: %s", p, id, status, engineMessage(out))
		}
		tr := tar.NewReader(bytes.NewReader(out))
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("reading %s of container %s: %w", p, id, err)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(p), target)
			}
			p = path.Clean(target)
			continue
		case tar.TypeReg:
			if h.Size > maxUserFile {
				return nil, fmt.Errorf("%s of container %s is larger than %d bytes", p, id, maxUserFile)
			}
			return io.ReadAll(io.LimitReader(tr, maxUserFile))
		default:
			// A directory or a device where the file should be: the
			// engine cannot read users from it either.
			return []byte{}, nil
		}
	}
	return nil, fmt.Errorf("reading %s of container %s: too many symbolic links", p, id)
}

// call sends one request to the engine outside any client's request and
// reads at most limit bytes of the answer.
func (u *upstream) call(ctx context.Context, method, p string, query url.Values, body []byte, limit int64) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	req := &http.Request{
		Method:        method,
		URL:           &url.URL{Scheme: "http", Host: upstreamHost, Path: p, RawQuery: query.Encode()},
		Header:        http.Header{"User-Agent": {"hyhome-guard"}},
		Host:          upstreamHost,
		ContentLength: int64(len(body)),
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := u.pool.roundTrip(ctx, req, func() io.ReadCloser {
		if body == nil {
			return http.NoBody
		}
		return io.NopCloser(bytes.NewReader(body))
	})
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(out)) > limit {
		return 0, nil, fmt.Errorf("the engine's answer to %s %s is larger than %d bytes", method, p, limit)
	}
	return resp.StatusCode, out, nil
}

func engineMessage(b []byte) string {
	var e struct{ Message string }
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(b))
}

// hostFacts caches what the judges learn about the engine's host: its
// memory, data root, cgroup and log defaults from `info` (refreshed after
// factsTTL), the socket's group, and the default masked paths once a probe
// container has shown them.
type hostFacts struct {
	mu      sync.Mutex
	at      time.Time
	host    workload.Host
	memory  int64
	learned bool // masked paths learnt from a probe
}

// factsTTL bounds how long the engine's info is trusted: memory and the
// data root change only with a restart of the engine or the machine.
const factsTTL = time.Minute

// facts is what a judge knows beyond the workload.
type facts struct {
	host   workload.Host
	memory int64
}

// facts returns the host facts, asking the engine when they are stale.
func (a *admission) facts(ctx context.Context) (facts, *denial) {
	f := a.hostFacts
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.at.IsZero() && time.Since(f.at) < factsTTL {
		return facts{f.host, f.memory}, nil
	}
	info, err := a.engine.info(ctx)
	if err != nil {
		return facts{}, deny(http.StatusBadGateway, reasonLookup, "cannot ask the engine about its host: %v", err)
	}
	h := f.host
	h.DataRoot, h.LogDriver = info.DockerRootDir, info.LoggingDriver
	switch info.CgroupVersion {
	case "1":
		h.CgroupnsDefault = "host"
	case "2":
		h.CgroupnsDefault = "private"
	}
	h.SocketGID, h.SocketGIDKnown = a.engine.socketGroup()
	f.host, f.memory, f.at = h, info.MemTotal, time.Now()
	return facts{f.host, f.memory}, nil
}

// lastFacts returns the host facts as last learnt, without asking the
// engine (zero before the first judgement that asked).
func (a *admission) lastFacts() facts {
	a.hostFacts.mu.Lock()
	defer a.hostFacts.mu.Unlock()
	return facts{a.hostFacts.host, a.hostFacts.memory}
}

// learnDefaults records the engine's default masked and read-only paths
// from a probe container, once.
func (a *admission) learnDefaults(uf userFiles) {
	f := a.hostFacts
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.learned || uf.masked == nil || uf.readonly == nil {
		return
	}
	f.host.MaskedPaths, f.host.ReadonlyPaths, f.learned = uf.masked, uf.readonly, true
}

// defaultsLearned reports whether the engine's default path lists are known.
func (a *admission) defaultsLearned() bool {
	a.hostFacts.mu.Lock()
	defer a.hostFacts.mu.Unlock()
	return a.hostFacts.learned
}

// imageCache keeps images' user databases by image ID: an image's files
// never change under its ID.
type imageCache struct {
	mu    sync.Mutex
	files map[string]userFiles
}

// maxCachedImages bounds the cache; it is emptied when full (images are
// few, and a miss costs one probe container).
const maxCachedImages = 256

// imageUsers returns an image's user database, probing the image once.
func (a *admission) imageUsers(ctx context.Context, imageID string) (userFiles, *denial) {
	c := a.images
	c.mu.Lock()
	f, ok := c.files[imageID]
	c.mu.Unlock()
	if ok {
		return f, nil
	}
	f, err := a.engine.imageFiles(ctx, imageID)
	if err != nil {
		return f, deny(http.StatusBadGateway, reasonLookup, "cannot read the user database of image %s: %v", imageID, err)
	}
	a.learnDefaults(f)
	c.mu.Lock()
	if c.files == nil || len(c.files) >= maxCachedImages {
		c.files = map[string]userFiles{}
	}
	c.files[imageID] = f
	c.mu.Unlock()
	return f, nil
}

// resolveIdentity resolves what the engine will run a process as: without
// reading any file when the spec and the extra groups are numeric, else
// from the files the engine will read them from.
func resolveIdentity(spec string, groupAdd []string, from string, files func() (userFiles, *denial)) (*workload.Identity, *denial) {
	if !workload.NeedsFiles(spec, groupAdd) {
		id := workload.ResolveIdentity(spec, groupAdd, nil, nil)
		return &id, nil
	}
	if rootWithoutFiles(spec) {
		return &workload.Identity{UID: 0, From: from}, nil
	}
	f, d := files()
	if d != nil {
		return nil, d
	}
	id := workload.ResolveIdentity(spec, groupAdd, f.passwd, f.group)
	id.From = from
	return &id, nil
}

// rootWithoutFiles reports whether the engine runs a user spec as uid 0
// whatever /etc/passwd says: an empty user (the default, uid 0) or a
// numeric 0 ("0", "+0", "000"). Groups are not resolved then; root needs no
// more judging.
func rootWithoutFiles(spec string) bool {
	u, _, _ := strings.Cut(spec, ":")
	if u == "" {
		return true
	}
	n, err := strconv.Atoi(u)
	return err == nil && n == 0
}
