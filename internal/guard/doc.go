// Package guard is hyhome's Docker Engine API socket proxy. Each listener is
// bound to a profile, a list of Engine API routes it may use; every request
// is canonicalised the way the engine's own router (gorilla/mux, with its
// /v{version} prefix) would route it, and judged against that profile. Writes
// that create or reach into workloads (container create/update/start/exec,
// service create/update, volume create, plugin install/enable, build) are
// admitted only when the project's policy rules pass, on a workload built by
// internal/engine from the request decoded with the engine's own API types.
//
// The request the engine receives is always rebuilt from what was judged:
// the canonical path (with resolved IDs pinned in place of names), the parsed
// query re-encoded, and the body bytes that were read and judged. Every
// error fails closed through one deny path that logs the reason.
//
// The package owns the proxy, its route table and profiles, and the mapping
// from requests to workloads; it must not hold rules of its own (internal/
// policy judges) or talk to the engine except to forward a request or to
// look up the objects a request refers to.
package guard
