// Package compose builds workloads from Docker Compose files with the full
// semantics of `docker compose` (compose-go: anchors, merge keys, extends,
// include, several -f files, profiles, .env and --env-file interpolation),
// and locates every value at the file and line where it is written.
//
// It reads files and converts; it must not judge anything (package policy).
package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v4"

	"github.com/hy-home/hyhome/internal/workload"
)

// Options says which compose project to load and how.
type Options struct {
	// Files are the -f files, merged in order. Empty means discover the
	// default files in WorkDir the way docker compose does.
	Files []string
	// WorkDir is the project directory (default: the first file's directory).
	WorkDir string
	// ProjectName overrides the name compose would derive.
	ProjectName string
	// Profiles to activate ("*" activates all).
	Profiles []string
	// EnvFiles replace the default .env (--env-file).
	EnvFiles []string
	// Validate sends the project through compose-go's full pipeline,
	// schema validation of every field included, instead of the fast path.
	Validate bool
	// Environ is the process environment used for interpolation
	// (os.Environ() in the CLI; tests pass their own).
	Environ []string
	// MaxFileSize bounds the size of each compose file read (0:
	// DefaultMaxFileSize); a larger one is refused, not parsed.
	MaxFileSize int64
	// cache shares parsed files between projects of one directory walk.
	cache *fileCache
}

func init() {
	// compose-go logs warnings (obsolete `version`, unset variables) through
	// logrus' global logger; hyhome reports through its own logger instead.
	logrus.SetOutput(io.Discard)
}

// fileCache parses each file once, even when several projects use it.
type fileCache struct {
	mu    sync.Mutex
	files map[string]*cacheEntry
	// limit bounds each file's size (0: DefaultMaxFileSize).
	limit int64
}

type cacheEntry struct {
	once sync.Once
	f    *yamlFile
	err  error
}

func newFileCache() *fileCache { return &fileCache{files: map[string]*cacheEntry{}} }

// release drops files from the cache once their project is loaded; a later
// project that needs one parses it again.
//
// Every file a load reads is released when the load is done, loaded or
// not (loadCache): a walk's cache then holds only the files of the
// projects being loaded, however many projects the walk found.
func (c *fileCache) release(paths ...string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	for _, p := range paths {
		delete(c.files, p)
	}
	c.mu.Unlock()
}

func (c *fileCache) get(path string) (*yamlFile, error) {
	if c == nil {
		return readFile(path, 0)
	}
	c.mu.Lock()
	e, ok := c.files[path]
	if !ok {
		e = &cacheEntry{}
		c.files[path] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.f, e.err = readFile(path, c.limit) })
	return e.f, e.err
}

// loadCache is one load's use of a cache: it remembers what the load read,
// to release it all when the load is done.
type loadCache struct {
	*fileCache
	mu   sync.Mutex
	read []string
}

func (l *loadCache) get(path string) (*yamlFile, error) {
	l.mu.Lock()
	l.read = append(l.read, path)
	l.mu.Unlock()
	return l.fileCache.get(path)
}

func (l *loadCache) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fileCache.release(l.read...)
	l.read = nil
}

// Result is a loaded project: its workloads and the files it came from.
type Result struct {
	Project *workload.Project
	Files   []string
	// Fast is true when the fast path built the project (see fast.go).
	Fast bool
	// Parsed are the -f files as parsed (see Parsed).
	Parsed []Parsed
}

// Load loads one compose project and converts its services to workloads.
func Load(ctx context.Context, opts Options) (*Result, error) {
	files, workDir, err := resolveFiles(opts)
	if err != nil {
		return nil, err
	}
	shared := opts.cache
	if shared == nil {
		shared = newFileCache()
		shared.limit = opts.MaxFileSize
	}
	cache := &loadCache{fileCache: shared}
	defer cache.done()
	var parsed []*yamlFile
	for _, f := range files {
		yf, err := cache.get(f)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, yf)
	}

	popts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(workDir),
		cli.WithEnv(opts.Environ),
		cli.WithEnvFiles(opts.EnvFiles...),
		cli.WithDotEnv,
	)
	if err != nil {
		return nil, fmt.Errorf("reading the environment for %s: %w", files[0], err)
	}
	name, explicit := projectName(opts, parsed, workDir, popts.Environment)

	var proj *types.Project
	fast := false
	if len(parsed) == 1 && explicit && !opts.Validate {
		proj, fast = fastProject(parsed[0], name, workDir, popts.Environment, opts.Profiles)
	}
	if proj == nil {
		details := types.ConfigDetails{WorkingDir: workDir, Environment: popts.Environment}
		for _, yf := range parsed {
			cf := types.ConfigFile{Filename: yf.path}
			if yf.rawTags || len(yf.more) > 0 {
				// compose-go's own YAML pass: !reset/!override, and the
				// merge of several documents.
				cf.Content = yf.content
			} else {
				m, err := yf.decoded()
				if err != nil {
					return nil, err
				}
				cf.Config = copyConfig(m)
			}
			details.ConfigFiles = append(details.ConfigFiles, cf)
		}
		lopts := []func(*loader.Options){
			func(o *loader.Options) { o.SetProjectName(name, explicit) },
			loader.WithProfiles(opts.Profiles),
		}
		if proj, err = safeLoad(ctx, details, lopts); err != nil {
			return nil, explainLoadError(err, relatedFiles(cache, parsed), popts.Environment)
		}
	}

	ix := &index{cache: cache, top: parsed, in: newInterpolator(proj.Environment)}
	p := &workload.Project{Name: proj.Name, Files: files}
	names := make([]string, 0, len(proj.Services))
	for n := range proj.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := convert(proj, proj.Services[n], ix)
		if err != nil {
			return nil, err
		}
		p.Workloads = append(p.Workloads, w)
	}
	resolveServiceJoins(p)
	return &Result{Project: p, Files: files, Fast: fast, Parsed: parsedFiles(parsed)}, nil
}

// safeLoad runs compose-go, turning a panic on hostile input into an error.
func safeLoad(ctx context.Context, details types.ConfigDetails, lopts []func(*loader.Options)) (p *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("compose loader failed on this input: %v", r)
		}
	}()
	return loader.LoadWithContext(ctx, details, lopts...)
}

// projectName follows docker compose: --project-name, COMPOSE_PROJECT_NAME,
// a top-level `name:` (interpolated and normalised; the last file's wins),
// then the project directory's base name. Deciding it here, explicitly,
// spares compose-go a second parse of every file just to find `name:`.
func projectName(opts Options, parsed []*yamlFile, workDir string, env types.Mapping) (string, bool) {
	if opts.ProjectName != "" {
		return loader.NormalizeProjectName(opts.ProjectName), true
	}
	if n := env["COMPOSE_PROJECT_NAME"]; n != "" {
		return loader.NormalizeProjectName(n), true
	}
	fromFile := ""
	var docs []*yamlFile
	for _, f := range parsed {
		docs = append(docs, f.documents()...)
	}
	for _, f := range docs {
		n := resolve(mapValue(f.root, "name"))
		if n == nil || n.Kind != yaml.ScalarNode || n.Value == "" {
			continue
		}
		v, err := newInterpolator(env).value([]string{"name"}, n.Value)
		if err != nil {
			return "", false // compose-go reports the error
		}
		if s, ok := v.(string); ok && s != "" {
			fromFile = s
		}
	}
	if fromFile != "" {
		if n := loader.NormalizeProjectName(fromFile); n != "" {
			return n, true
		}
	}
	return loader.NormalizeProjectName(filepath.Base(workDir)), true
}

// copyConfig deep-copies a decoded document: compose-go modifies what it is
// given, and parsed files are shared between projects.
func copyConfig(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyConfig(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}

// DefaultFileNames and DefaultOverrideFileNames are docker compose's
// discovery order.
var (
	DefaultFileNames         = cli.DefaultFileNames
	DefaultOverrideFileNames = cli.DefaultOverrideFileNames
)

// ErrNoComposeFile is returned when discovery finds nothing.
var ErrNoComposeFile = errors.New("no compose file found")

// Discover returns the compose file docker compose would pick in dir, and
// its override file if one exists.
func Discover(dir string) ([]string, error) {
	var files []string
	for _, n := range DefaultFileNames {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			files = append(files, p)
			break
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s (looked for %s)", ErrNoComposeFile, dir, strings.Join(DefaultFileNames, ", "))
	}
	for _, n := range DefaultOverrideFileNames {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			files = append(files, p)
			break
		}
	}
	return files, nil
}

func resolveFiles(opts Options) (files []string, workDir string, err error) {
	workDir = opts.WorkDir
	if len(opts.Files) == 0 {
		if workDir == "" {
			if workDir, err = os.Getwd(); err != nil {
				return nil, "", err
			}
		}
		if files, err = Discover(workDir); err != nil {
			return nil, "", err
		}
	} else {
		for _, f := range opts.Files {
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, "", err
			}
			files = append(files, abs)
		}
	}
	if workDir == "" {
		workDir = filepath.Dir(files[0])
	}
	if workDir, err = filepath.Abs(workDir); err != nil {
		return nil, "", err
	}
	return files, workDir, nil
}
