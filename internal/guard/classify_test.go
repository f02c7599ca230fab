package guard

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// classifyCase is one request line (plus headers) and what a profile must
// make of it before any body is read. The rows double as the seed corpus of
// FuzzClassify, which checks them exactly.
type classifyCase struct {
	name    string
	profile string
	method  string
	target  string
	headers string // extra header lines, each ending in \r\n
	// route is the route the guard must judge ("" when it must refuse
	// before routing); reason is the denial reason ("" when allowed).
	route, reason string
}

func (c classifyCase) raw() string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: docker\r\n%s\r\n", c.method, c.target, c.headers)
}

var classifyCases = []classifyCase{
	// Allowed read-only traffic, in the spellings clients use.
	{"ping", "readonly", "GET", "/_ping", "", "GET /_ping", ""},
	{"ping head", "readonly", "HEAD", "/_ping", "", "HEAD /_ping", ""},
	{"versioned list", "readonly", "GET", "/v1.41/containers/json?all=1", "", "GET /containers/json", ""},
	{"inspect", "readonly", "GET", "/v1.41/containers/abc/json", "", "GET /containers/{name}/json", ""},
	{"image inspect with repository path", "readonly", "GET", "/v1.41/images/hyhome-test/testprog:nonroot/json", "", "GET /images/{name}/json", ""},
	{"events with filters", "readonly", "GET", "/v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D", "", "GET /events", ""},
	{"networks trailing slash route", "readonly", "GET", "/networks/", "", "GET /networks/", ""},
	{"swarm services", "readonly", "GET", "/v1.41/services?status=true", "", "GET /services", ""},
	{"logs in shipper", "shipper", "GET", "/v1.41/containers/abc/logs?follow=1&stdout=1", "", "GET /containers/{name}/logs", ""},

	// Version prefix: any spelling the engine's [0-9.]+ accepts routes the
	// same; versions below 1.24 are refused; anything else is no route.
	{"version leading zero", "readonly", "GET", "/v01.041/containers/json", "", "GET /containers/json", ""},
	{"version three fields", "readonly", "GET", "/v1.41.0/containers/json", "", "GET /containers/json", ""},
	{"version 1.23 start body era", "admission", "POST", "/v1.23/containers/abc/start", "", "POST /containers/{name}/start", reasonVersion},
	{"version dots only", "readonly", "GET", "/v.../containers/json", "", "GET /containers/json", reasonVersion},
	{"version empty", "readonly", "GET", "/v/containers/json", "", "", reasonRoute},
	{"version upper-case V", "readonly", "GET", "/V1.41/containers/json", "", "", reasonRoute},
	{"version twice", "readonly", "GET", "/v1.41/v1.41/containers/json", "", "", reasonRoute},
	{"version glued to path", "readonly", "GET", "/v1.41containers/json", "", "", reasonRoute},

	// Dot segments, doubled and encoded slashes: the engine redirects
	// these, the guard refuses them.
	{"dot segments to export", "readonly", "GET", "/containers/abc/json/../export", "", "", reasonPath},
	{"dot segments to image export", "readonly", "GET", "/v1.41/containers/json/../../images/get?names=x", "", "", reasonPath},
	{"encoded dot segments", "readonly", "GET", "/v1.41/containers/x/%2e%2e/%2e%2e/images/get", "", "", reasonPath},
	{"double slash create", "admission", "POST", "/v1.41/containers//create", "", "", reasonPath},
	{"leading double slash", "readonly", "GET", "//containers/json", "", "", reasonPath},
	{"dot segment", "readonly", "GET", "/./containers/json", "", "", reasonPath},
	{"encoded slash to create", "readonly", "POST", "/v1.41/containers%2Fcreate", "", "POST /containers/create", reasonProfile},
	{"encoded slash in name stays a name", "readonly", "GET", "/containers/a%2Fb/json", "", "GET /containers/{name}/json", ""},
	{"encoded slash building an exec path", "readonly", "POST", "/v1.41/exec%2Fabc%2Fstart", "", "POST /exec/{name}/start", reasonProfile},
	{"encoded question mark is no query", "readonly", "GET", "/containers/json%3Fall=1", "", "", reasonRoute},
	{"newline in name is no route", "readonly", "GET", "/containers/a%0Ab/json", "", "", reasonRoute},

	// Absolute-form targets: the host is ignored, the path is judged.
	{"absolute-form read", "readonly", "GET", "http://evil.example/v1.41/containers/json", "", "GET /containers/json", ""},
	{"absolute-form write", "readonly", "POST", "http://docker/v1.41/containers/create", "", "POST /containers/create", reasonProfile},
	{"asterisk-form", "readonly", "OPTIONS", "*", "", "", reasonMethod},

	// Path-prefix confusion: the route is the whole path, last segment
	// included, not a prefix.
	{"archive is not inspect", "readonly", "GET", "/v1.41/containers/abc/archive?path=/etc/shadow", "", "GET /containers/{name}/archive", reasonProfile},
	{"export", "readonly", "GET", "/v1.41/containers/abc/export", "", "GET /containers/{name}/export", reasonProfile},
	{"logs under inspect-like name", "readonly", "GET", "/v1.41/containers/abc/json/logs", "", "GET /containers/{name}/logs", reasonProfile},
	{"image export single", "readonly", "GET", "/v1.41/images/abc/get", "", "GET /images/{name}/get", reasonProfile},
	{"image export many", "readonly", "GET", "/v1.41/images/get?names=abc", "", "GET /images/get", reasonProfile},
	{"top shows process args", "readonly", "GET", "/v1.41/containers/abc/top", "", "GET /containers/{name}/top", reasonProfile},
	{"exec inspect", "readonly", "GET", "/v1.41/exec/abc/json", "", "GET /exec/{id}/json", reasonProfile},
	{"containers prefix without slash", "readonly", "GET", "/containersjson", "", "", reasonRoute},
	{"swarm join tokens", "readonly", "GET", "/v1.41/swarm", "", "GET /swarm", reasonProfile},
	{"swarm unlock key", "readonly", "GET", "/v1.41/swarm/unlockkey", "", "GET /swarm/unlockkey", reasonProfile},
	{"pprof", "admission", "GET", "/debug/pprof/", "", "", reasonRoute},
	{"checkpoint delete masks container delete", "admission", "DELETE", "/v1.41/containers/abc/checkpoints/cp", "", "DELETE /containers/{name}/checkpoints/{checkpoint}", ""},

	// Methods: case-sensitive, override headers ignored, HEAD is its own.
	{"lower-case get", "readonly", "get", "/v1.41/containers/json", "", "", reasonMethod},
	{"mixed-case post", "admission", "Post", "/v1.41/containers/create", "", "", reasonMethod},
	{"override header does not make POST a GET", "readonly", "POST", "/v1.41/containers/create", "X-HTTP-Method-Override: GET\r\n", "POST /containers/create", reasonProfile},
	{"override header does not make GET a DELETE", "readonly", "GET", "/v1.41/containers/json", "X-HTTP-Method-Override: DELETE\r\nX-Method-Override: DELETE\r\n", "GET /containers/json", ""},
	{"head archive stats files", "readonly", "HEAD", "/v1.41/containers/abc/archive?path=/etc/shadow", "", "HEAD /containers/{name}/archive", reasonProfile},
	{"head is not get", "readonly", "HEAD", "/v1.41/containers/json", "", "", reasonRoute},
	{"options", "readonly", "OPTIONS", "/v1.41/containers/json", "", "", reasonMethod},
	{"connect", "admission", "CONNECT", "docker:2375", "", "", reasonMethod},
	{"patch", "admission", "PATCH", "/v1.41/containers/abc/update", "", "", reasonMethod},

	// Writes in read-only profiles.
	{"run", "readonly", "POST", "/v1.41/containers/create", "", "POST /containers/create", reasonProfile},
	{"exec create", "readonly", "POST", "/v1.41/containers/abc/exec", "", "POST /containers/{name}/exec", reasonProfile},
	{"exec start", "shipper", "POST", "/v1.41/exec/abc/start", "", "POST /exec/{name}/start", reasonProfile},
	{"cp into", "readonly", "PUT", "/v1.41/containers/abc/archive?path=/", "", "PUT /containers/{name}/archive", reasonProfile},
	{"update", "readonly", "POST", "/v1.41/containers/abc/update", "", "POST /containers/{name}/update", reasonProfile},
	{"kill", "shipper", "POST", "/v1.41/containers/abc/kill", "", "POST /containers/{name}/kill", reasonProfile},
	{"delete", "readonly", "DELETE", "/v1.41/containers/abc", "", "DELETE /containers/{name}", reasonProfile},
	{"build", "readonly", "POST", "/v1.41/build?networkmode=host", "", "POST /build", reasonProfile},
	{"session", "readonly", "POST", "/session", "Upgrade: h2c\r\nConnection: Upgrade\r\n", "POST /session", reasonProfile},
	{"grpc", "readonly", "POST", "/grpc", "Upgrade: h2c\r\nConnection: Upgrade\r\n", "POST /grpc", reasonProfile},
	{"plugin pull", "readonly", "POST", "/v1.41/plugins/pull?remote=x", "", "POST /plugins/pull", reasonProfile},
	{"service create", "readonly", "POST", "/v1.41/services/create", "", "POST /services/create", reasonProfile},
	{"volume create", "readonly", "POST", "/v1.41/volumes/create", "", "POST /volumes/create", reasonProfile},
	{"unknown profile route", "readonly", "GET", "/v1.41/plugins", "", "GET /plugins", reasonProfile},

	// Query strings the engine's Go may read differently, and bodies that
	// would become parameters.
	{"semicolon separator", "admission", "POST", "/v1.41/build?q=1;networkmode=host", "", "POST /build", reasonQuery},
	{"bad escape in query", "readonly", "GET", "/v1.41/containers/json?filters=%zz", "", "GET /containers/json", reasonQuery},
	{"urlencoded form body", "admission", "POST", "/v1.41/build", "Content-Type: application/x-www-form-urlencoded\r\n", "POST /build", reasonContentType},
	{"multipart form body", "admission", "POST", "/v1.41/build", "Content-Type: multipart/form-data; boundary=x\r\n", "POST /build", reasonContentType},
	{"form type with odd case", "admission", "POST", "/v1.41/build", "Content-Type: Application/X-WWW-Form-URLEncoded\r\n", "POST /build", reasonContentType},
	{"two content types", "admission", "POST", "/v1.41/containers/create", "Content-Type: application/json\r\nContent-Type: text/plain\r\n", "POST /containers/create", reasonContentType},
	{"unparsable content type", "admission", "POST", "/v1.41/containers/create", "Content-Type: application/json; ;\r\n", "POST /containers/create", reasonContentType},
	{"json with parameters", "admission", "POST", "/v1.41/containers/create", "Content-Type: application/json; charset=utf-8\r\n", "POST /containers/create", ""},
}

var testProfiles = builtinProfiles()

// classify runs the guard's routing and profile steps on a parsed request.
func classify(r *http.Request, profile string) (*target, *denial) {
	t, d := canonicalize(r)
	if d != nil {
		return t, d
	}
	if !testProfiles[profile].Allows(t.route) {
		return t, deny(http.StatusForbidden, reasonProfile, "not allowed")
	}
	return t, nil
}

func TestClassify(t *testing.T) {
	for _, c := range classifyCases {
		t.Run(c.name, func(t *testing.T) {
			r, err := parseRaw(c.raw())
			if err != nil {
				t.Fatalf("the HTTP server would refuse this request (%v); the row tests nothing", err)
			}
			tg, d := canonicalize(r)
			gotRoute := ""
			if tg != nil {
				gotRoute = tg.route.Name
			}
			if d == nil && !builtinProfiles()[c.profile].Allows(tg.route) {
				d = deny(http.StatusForbidden, reasonProfile, "")
			}
			gotReason := ""
			if d != nil {
				gotReason = d.reason
			}
			if gotRoute != c.route || gotReason != c.reason {
				t.Errorf("%s %s in %s: route %q, denial %q; want route %q, denial %q", c.method, c.target, c.profile, gotRoute, gotReason, c.route, c.reason)
			}
			// Whatever the guard judged is what the engine routes: the
			// client's request as sent, and the request forwarded.
			if c.route != "" && c.reason != reasonVersion {
				if got := oracleRoute(r); got != c.route && got != oracleRedirect {
					t.Errorf("the engine routes the request to %q, the guard judged %q", got, c.route)
				}
			}
			if d == nil {
				checkForwarded(t, r, tg)
			}
		})
	}
}

// checkForwarded checks that the request the guard forwards for an allowed
// target reaches the same route in the engine's router.
func checkForwarded(t testing.TB, r *http.Request, tg *target) {
	t.Helper()
	h := &handler{g: &Guard{}, profile: builtinProfiles()[ProfileAdmission]}
	out := h.outbound(context.Background(), r, &decision{target: tg})
	fwd, err := reparse(out)
	if err != nil {
		t.Fatalf("the forwarded request does not parse: %v", err)
	}
	if got := oracleRoute(fwd); got != tg.route.Name {
		t.Fatalf("forwarded %s %s reaches %q in the engine, but %q was judged", fwd.Method, fwd.URL, got, tg.route.Name)
	}
	for _, h := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} {
		if fwd.Header.Get(h) != "" {
			t.Fatalf("forwarded request carries %s", h)
		}
	}
}

// FuzzClassify feeds request lines to the guard's classifier. It must never
// panic; every request it lets through in any profile must be one the
// engine's router dispatches to the route the guard judged, both as the
// client sent it and as the guard forwards it; read-only profiles never let
// a write through; and the seed rows keep their verdicts.
func FuzzClassify(f *testing.F) {
	want := map[string]classifyCase{}
	for _, c := range classifyCases {
		f.Add(c.method, c.target, c.headers)
		want[c.raw()+"|"+c.profile] = c
	}
	f.Fuzz(func(t *testing.T, method, target, headers string) {
		if strings.ContainsAny(method+target, "\r\n ") || strings.Count(headers, "\r\n") > 8 {
			return
		}
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: docker\r\n%s\r\n", method, target, headers)
		r, err := parseRaw(raw)
		if err != nil {
			return // the HTTP server refuses it before the guard sees it
		}
		for _, profile := range []string{ProfileReadonly, ProfileShipper, ProfileAdmission} {
			tg, d := classify(r, profile)
			if c, ok := want[raw+"|"+profile]; ok {
				reason := ""
				if d != nil {
					reason = d.reason
				}
				if reason != c.reason {
					t.Fatalf("seed %q in %s: denial %q, want %q", c.name, profile, reason, c.reason)
				}
			}
			if d != nil {
				continue
			}
			if got := oracleRoute(r); got != tg.route.Name {
				t.Fatalf("%s %q allowed in %s as %s, but the engine routes it to %q", method, target, profile, tg.route.Name, got)
			}
			if profile != ProfileAdmission && tg.route.Method != http.MethodGet && tg.route.Method != http.MethodHead {
				t.Fatalf("%s %q: %s profile allowed a %s", method, target, profile, tg.route.Method)
			}
			checkForwarded(t, r, tg)
		}
	})
}
