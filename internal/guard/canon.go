package guard

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// minAPIVersion is the oldest API version the guard forwards. Handlers of
// older versions accept request shapes the guard does not judge: below 1.24
// `POST /containers/{id}/start` takes a HostConfig body and replaces the
// container's host configuration with it. Every client of the last decade
// negotiates 1.24 or later.
const minAPIVersion = "1.24"

// target is a request as the engine will route it, after canonicalisation.
type target struct {
	route *Route
	vars  Vars
	// version is the /v{version} prefix as written ("" when unversioned).
	version string
	// path is the decoded, unversioned path that was judged.
	path  string
	query url.Values
}

// forwardPath is the path the engine receives: the judged route rendered
// with the (possibly pinned) variables, under the client's version prefix.
func (t *target) forwardPath() string {
	p := t.route.path(t.vars)
	if t.version != "" {
		p = "/v" + t.version + p
	}
	return p
}

// canonicalize reads the method, path, query and framing headers of a
// request the way the engine's router and handlers read them, and finds the
// route the engine would dispatch it to. Anything the guard could read
// differently from the engine is refused rather than guessed at. Once the
// route is known it is returned with a denial too, for the log.
func canonicalize(r *http.Request) (*target, *denial) {
	// The engine's router matches methods upper-case only (RFC 9110:
	// methods are case-sensitive), and ignores X-HTTP-Method-Override and
	// friends; so does the guard, which also strips them when forwarding.
	if !routes.knownMethod(r.Method) {
		return nil, deny(http.StatusForbidden, reasonMethod, "method %q is not an Engine API method (methods are case-sensitive)", r.Method)
	}
	if r.URL == nil || r.URL.Opaque != "" || r.RequestURI == "*" {
		return nil, deny(http.StatusForbidden, reasonPath, "request target %q is not a path", r.RequestURI)
	}
	// The router matches the decoded path (absolute-form targets included:
	// their host is ignored) and answers an unclean one (dot segments,
	// doubled or encoded slashes that decode to them) with a redirect. The
	// guard forwards only paths already in the form the router executes.
	p := r.URL.Path
	if clean := cleanPath(p); clean != p {
		return nil, deny(http.StatusForbidden, reasonPath, "path %q is not canonical (the engine would redirect it to %q)", p, clean)
	}
	version, rest := splitVersion(p)
	rt, vars := routes.match(r.Method, rest)
	if rt == nil {
		return nil, deny(http.StatusForbidden, reasonRoute, "%s %s is not an Engine API route", r.Method, p)
	}
	t := &target{route: rt, vars: vars, version: version, path: rest}
	if version != "" && compareVersions(version, minAPIVersion) < 0 {
		return t, deny(http.StatusForbidden, reasonVersion, "API version %s is older than %s, whose handlers take request shapes the guard does not judge", version, minAPIVersion)
	}
	// Go's query parser changed over the engine's lifetime (";" was a
	// separator before Go 1.17): a query that does not parse cleanly today
	// may parse differently inside the engine, so it is refused, and the
	// engine receives the parsed values re-encoded.
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return t, deny(http.StatusForbidden, reasonQuery, "query string does not parse unambiguously: %v", err)
	}
	t.query = query
	if d := checkContentType(r); d != nil {
		return t, d
	}
	return t, nil
}

// checkContentType refuses form bodies: the engine's handlers call
// Request.ParseForm, which merges an urlencoded body into the parameters
// (ahead of the query string), and FormValue would read a multipart one;
// either lets a body override a query parameter the guard judged. No Docker
// client sends them.
func checkContentType(r *http.Request) *denial {
	cts := r.Header.Values("Content-Type")
	if len(cts) == 0 {
		return nil
	}
	if len(cts) > 1 {
		return deny(http.StatusForbidden, reasonContentType, "more than one Content-Type header")
	}
	lower := strings.ToLower(cts[0])
	if strings.Contains(lower, "form-urlencoded") || strings.Contains(lower, "multipart/") {
		return deny(http.StatusForbidden, reasonContentType, "form content type %q: the engine would read parameters from the body", cts[0])
	}
	if _, _, err := mime.ParseMediaType(cts[0]); err != nil {
		return deny(http.StatusForbidden, reasonContentType, "content type %q does not parse: %v", cts[0], err)
	}
	return nil
}

// isJSON reports whether a request declares a JSON body, parameters (such as
// charset) allowed, as the engine's CheckForJSON does.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// cleanPath is gorilla/mux's: path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// splitVersion splits "/v1.41/containers/json" into "1.41" and
// "/containers/json", as the engine's "/v{version:[0-9.]+}" prefix does. No
// unversioned route starts with /v followed by a digit or a dot, so a path
// that has the prefix can only match a versioned registration.
func splitVersion(p string) (version, rest string) {
	if !strings.HasPrefix(p, "/v") {
		return "", p
	}
	i := strings.IndexByte(p[2:], '/')
	if i <= 0 {
		return "", p
	}
	v := p[2 : 2+i]
	for _, c := range v {
		if (c < '0' || c > '9') && c != '.' {
			return "", p
		}
	}
	return v, p[2+i:]
}

// compareVersions compares API versions exactly as the engine does
// (api/types/versions): dot-separated fields compared as integers, a field
// that is missing or not a number counting as 0. So "1.041" equals "1.41",
// and "1..41" is 1.0.41.
func compareVersions(a, b string) int {
	if a == b {
		return 0
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	n := max(len(as), len(bs))
	for i := 0; i < n; i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		switch {
		case x > y:
			return 1
		case x < y:
			return -1
		}
	}
	return 0
}

// queryValues returns every value of a query parameter, matching the key
// case-insensitively. The engine reads the first value of the exact key;
// judging all values of all spellings never judges less than it executes.
func queryValues(q url.Values, key string) []string {
	var out []string
	for k, vs := range q {
		if strings.EqualFold(k, key) {
			out = append(out, vs...)
		}
	}
	return out
}

// describe renders a target for logs.
func (t *target) String() string {
	return fmt.Sprintf("%s %s", t.route.Method, t.forwardPath())
}
