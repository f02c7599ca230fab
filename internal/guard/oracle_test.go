package guard

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/mux"
)

// The oracle is the engine's router: gorilla/mux with every route the
// engine defines (testdata/engine-routes.txt, transcribed from moby's router
// sources, not from the guard's table) registered the way the engine's
// api/server registers it (the /v{version:[0-9.]+} form, then the plain one,
// route by route, in the engine's order), and the engine's catch-all for
// unknown versioned paths. Tests ask it where the engine would dispatch a
// request and compare with the guard's reading.

const (
	oracleRedirect = "redirect"
	oracleNone     = "none"
)

var oracle = func() *mux.Router {
	defs, err := loadEngineRoutes()
	if err != nil {
		panic(err) // TestRouteTableMatchesEngineDefinitions reports it too
	}
	m := mux.NewRouter()
	for _, r := range defs {
		name := routeName(r.Method, r.Template)
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Route", name) })
		m.Path("/v{version:[0-9.]+}" + r.Template).Methods(r.Method).Handler(h)
		m.Path(r.Template).Methods(r.Method).Handler(h)
	}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	m.HandleFunc("/v{version:[0-9.]+}/{path:.*}", notFound)
	m.NotFoundHandler = notFound
	m.MethodNotAllowedHandler = notFound
	return m
}()

// oracleRoute returns the route name the engine would run for a request as
// an HTTP server parses it, oracleRedirect when its router would redirect
// (unclean path), or oracleNone.
func oracleRoute(r *http.Request) string {
	rec := httptest.NewRecorder()
	oracle.ServeHTTP(rec, r)
	switch {
	case rec.Code == http.StatusMovedPermanently:
		return oracleRedirect
	case rec.Header().Get("X-Route") != "":
		return rec.Header().Get("X-Route")
	}
	return oracleNone
}

// parseRaw parses request bytes as the engine's (and the guard's) HTTP
// server does.
func parseRaw(raw string) (*http.Request, error) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	r.RemoteAddr = "@"
	return r, nil
}

// reparse serialises the request the guard would forward and parses it
// again, as the engine receives it.
func reparse(out *http.Request) (*http.Request, error) {
	var buf bytes.Buffer
	if err := out.Write(&buf); err != nil {
		return nil, err
	}
	return http.ReadRequest(bufio.NewReader(&buf))
}
