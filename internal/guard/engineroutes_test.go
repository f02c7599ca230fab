package guard

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/dockertest"
)

// engineRouteDef is one route of testdata/engine-routes.txt.
type engineRouteDef struct {
	Router, Origin   string // router name; "repo path commit" it was read from
	Method, Template string
	OnlyAPI          string // the API version of the older engines that alone have it
}

func (d engineRouteDef) key() string { return d.Method + " " + d.Template }

const engineRoutesFile = "testdata/engine-routes.txt"

// loadEngineRoutes parses testdata/engine-routes.txt.
func loadEngineRoutes() ([]engineRouteDef, error) {
	f, err := os.Open(engineRoutesFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []engineRouteDef
	var router, origin string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "router" && len(f) == 5 && len(f[4]) == 40:
			router, origin = f[1], strings.Join(f[2:], " ")
		case router == "":
			return nil, fmt.Errorf("%s:%d: route before any router line", engineRoutesFile, n)
		case f[0] == "only-api" && len(f) == 4:
			out = append(out, engineRouteDef{Router: router, Origin: origin, OnlyAPI: f[1], Method: f[2], Template: f[3]})
		case len(f) == 2 && slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}, f[0]) && strings.HasPrefix(f[1], "/"):
			out = append(out, engineRouteDef{Router: router, Origin: origin, Method: f[0], Template: f[1]})
		default:
			return nil, fmt.Errorf("%s:%d: cannot read %q", engineRoutesFile, n, line)
		}
	}
	return out, sc.Err()
}

// notGuarded are the engine's routes the guard leaves out on purpose, so
// that it refuses them: CORS pre-flight answers any path.
var notGuarded = map[string]string{
	"OPTIONS /{anyroute:.*}": "CORS pre-flight: the guard's clients are not browsers",
}

// TestRouteTableMatchesEngineDefinitions: the guard's route table is the
// engine's, as moby defines it, route for route (same method, same template
// with the same variable patterns), with the same order within each
// router, so that the first route that matches is the engine's. A route
// the engine adds, or one the guard invents, fails here.
func TestRouteTableMatchesEngineDefinitions(t *testing.T) {
	defs, err := loadEngineRoutes()
	if err != nil {
		t.Fatal(err)
	}
	engine := map[string]engineRouteDef{}
	for _, d := range defs {
		if _, dup := engine[d.key()]; dup {
			t.Errorf("%s twice in %s", d.key(), engineRoutesFile)
		}
		engine[d.key()] = d
	}
	guard := map[string]int{}
	for i, r := range engineRoutes {
		k := r.Method + " " + r.Template
		guard[k] = i
		if _, ok := engine[k]; !ok {
			t.Errorf("the guard's table has %s, which the engine does not define (%s)", k, engineRoutesFile)
		}
	}
	for _, d := range defs {
		if _, ok := guard[d.key()]; !ok {
			if why, skip := notGuarded[d.key()]; skip {
				t.Logf("%s (%s router) left out on purpose: %s", d.key(), d.Router, why)
				continue
			}
			t.Errorf("the engine defines %s (%s router, %s); the guard's table lacks it, so it would refuse it", d.key(), d.Router, d.Origin)
		}
	}
	// Within a router, the engine's order: mux takes the first match.
	last := map[string]engineRouteDef{}
	for _, d := range defs {
		i, ok := guard[d.key()]
		if !ok {
			continue
		}
		if prev, ok := last[d.Router]; ok && guard[prev.key()] > i {
			t.Errorf("%s router: the guard lists %s before %s; the engine registers them the other way round", d.Router, d.key(), prev.key())
		}
		last[d.Router] = d
	}
	// Across routers, where the engine's order decides between two routes
	// that match the same path, the guard's must decide the same way: the
	// checkpoint router comes before the container router.
	if guard["DELETE /containers/{name}/checkpoints/{checkpoint}"] > guard["DELETE /containers/{name:.*}"] {
		t.Error("the checkpoint router's DELETE must come before the container router's (the engine registers checkpoint first)")
	}
}

// TestEngineHasOlderRoutes asks the machine's engine whether it dispatches
// the routes the file marks as its API version's only (they are not in the
// newest moby sources). A route the engine does not know answers 404
// "page not found"; the deprecated copy route answers an empty 404 from its
// own handler at API 1.24 and later.
func TestEngineHasOlderRoutes(t *testing.T) {
	defs, err := loadEngineRoutes()
	if err != nil {
		t.Fatal(err)
	}
	c := dockertest.Client(t)
	v, err := c.ServerVersion(ctxT(t, dockertest.CallTimeout), client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, d := range defs {
		if d.OnlyAPI == "" {
			continue
		}
		if d.OnlyAPI != v.APIVersion {
			t.Logf("%s: this engine speaks API %s, not %s; not asked", d.key(), v.APIVersion, d.OnlyAPI)
			continue
		}
		path := strings.ReplaceAll(d.Template, "{name:.*}", "hyhome-test-nothing-"+dockertest.RunID)
		req := request(d.Method, "/v"+d.OnlyAPI+path, "")
		conn, err := c.Dialer()(ctxT(t, dockertest.CallTimeout))
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = io.WriteString(conn, req) }()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if strings.Contains(string(body), "page not found") {
			t.Errorf("API %s engine does not dispatch %s: %d %s", d.OnlyAPI, d.key(), resp.StatusCode, body)
		}
		checked++
	}
	if v.APIVersion == "1.41" && checked == 0 {
		t.Error("no API 1.41 route was asked about")
	}
}
