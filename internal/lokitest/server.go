// Package lokitest is a Loki test server: an in-memory, single-process
// implementation of the parts of Loki's documented HTTP API that hyhome
// talks to, for tests and benchmarks on machines where no Loki binary can be
// had. It is not Loki and must never be deployed as one.
//
// It owns faithfulness to Loki's observable behaviour, measured against a
// real Loki 3.7.6 (see DESIGN.md): push in JSON (optionally gzip) and
// snappy-compressed protobuf answering 204 with an empty body; 400 for
// numeric or date-string timestamps, empty bodies and malformed JSON; 422
// for a request without streams; partial acceptance with 400 when some
// entries are too old, too new, too far behind the stream's newest entry or
// too long; exact duplicates stored once; service_name and detected_level
// added as Loki 3 does; pushed lines queryable on the very next request
// through query_range and query with LogQL stream selectors, line filters and
// label filters. Labels, label values, series and /ready are served too.
//
// Tests can make it slow (SetDelay), fail with a status (FailNext,
// SetFailing), or go down and come back on the same address (Down, Up), and
// can read what it accepted directly (Query, Stats, Config.OnAccept).
//
// It must not grow features Loki lacks, and where it knowingly simplifies
// (detected_level keywords, no metric queries, no parsers), it says so.
package lokitest

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config holds the server's limits; zero values take Loki's defaults.
type Config struct {
	// Addr to listen on; default 127.0.0.1:0 (a free loopback port).
	Addr string
	// Now is the server's clock (default time.Now); validation windows use it.
	Now func() time.Time

	// RejectOldSamplesMaxAge: entries older than now minus this are refused
	// with "timestamp too old" (limits_config.reject_old_samples_max_age, 168h).
	RejectOldSamplesMaxAge time.Duration
	// CreationGracePeriod: entries newer than now plus this are refused with
	// "timestamp too new" (limits_config.creation_grace_period, 10m).
	CreationGracePeriod time.Duration
	// OutOfOrderWindow: entries older than the stream's newest entry minus
	// this are refused with "entry too far behind" (max_chunk_age/2, 1h).
	OutOfOrderWindow time.Duration
	// MaxLineSize in bytes (limits_config.max_line_size, 256KB).
	MaxLineSize int
	// MaxBodyBytes of a decompressed push request (default 64 MiB).
	MaxBodyBytes int64
	// MaxLabelNamesPerSeries (limits_config.max_label_names_per_series, 15).
	MaxLabelNamesPerSeries int
	// DiscoverServiceName lists the labels service_name is copied from, first
	// present wins (limits_config.discover_service_name default).
	DiscoverServiceName []string
	// DisableLevelDetection turns off detected_level (discover_log_levels).
	DisableLevelDetection bool
	// DisallowStructuredMetadata refuses entries carrying structured metadata
	// (allow_structured_metadata: false).
	DisallowStructuredMetadata bool

	// MultiTenant mirrors auth_enabled: true: X-Scope-OrgID is required and
	// tenants are kept apart. Otherwise every request is tenant "fake".
	MultiTenant bool
	// BasicAuthUser and BasicAuthPassword, when set, are required on every
	// /loki/ request, as a reverse proxy in front of Loki would demand.
	BasicAuthUser, BasicAuthPassword string
	// BearerToken, when set, is required as "Authorization: Bearer <token>".
	BearerToken string
	// TLS serves HTTPS with a freshly generated self-signed certificate for
	// 127.0.0.1 and localhost; CACertPEM returns it for clients to trust.
	TLS bool

	// OnAccept, when set, is called for every stored entry (not for
	// duplicates), under the store lock: keep it fast.
	OnAccept func(tenant string, stream Labels, e Entry)
	// OnDuplicate, when set, is called for every entry dropped as an exact
	// duplicate of a stored one, under the store lock.
	OnDuplicate func(tenant string, stream Labels, e Entry)
}

// Entry is one stored log entry.
type Entry struct {
	Timestamp time.Time
	Line      string
	// Metadata is the entry's structured metadata, including detected_level.
	Metadata Labels
	// Received is when the server accepted the entry (its clock).
	Received time.Time
}

// Stream is a label set and its entries.
type Stream struct {
	Labels  Labels
	Entries []Entry
}

// Stats counts what the server saw since it started.
type Stats struct {
	Requests   int // push requests received, failed on purpose ones included
	Accepted   int // entries stored
	Duplicates int // entries that were exact duplicates of stored ones
	Rejected   int // entries refused by validation
	// ByStatus counts push responses by HTTP status.
	ByStatus map[int]int
	// Tenants seen on accepted pushes.
	Tenants map[string]int
}

// defaultServiceNameLabels is Loki 3's discover_service_name default.
var defaultServiceNameLabels = []string{"service", "app", "application", "app_name", "name", "app_kubernetes_io_name", "container", "container_name", "k8s_container_name", "component", "workload", "job", "k8s_job_name"}

// Server is a running Loki test server.
type Server struct {
	cfg   Config
	addr  string // fixed after the first listen so Up comes back on it
	tlsCf *tls.Config
	caPEM []byte

	mu        sync.Mutex
	srv       *http.Server
	down      bool
	delay     time.Duration
	failLeft  int // >0: fail this many more pushes; <0: fail until cleared
	failCode  int
	tenants   map[string]*tenantStore
	stats     Stats
	lastError string
}

type tenantStore struct {
	streams map[string]*stream // by Labels.String()
}

type stream struct {
	labels Labels
	// entries are in arrival order until a reader needs them sorted by
	// timestamp (ties keep arrival order): many senders pushing into one
	// stream out of order must not cost a memmove per entry.
	entries  []Entry
	unsorted bool
	newest   time.Time
	seen     map[dedupeKey]struct{}
}

type dedupeKey struct {
	ts   int64
	line string
}

// Start listens and serves. Close it when done (tests: t.Cleanup(s.Close)).
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.RejectOldSamplesMaxAge = cmp.Or(cfg.RejectOldSamplesMaxAge, 168*time.Hour)
	cfg.CreationGracePeriod = cmp.Or(cfg.CreationGracePeriod, 10*time.Minute)
	cfg.OutOfOrderWindow = cmp.Or(cfg.OutOfOrderWindow, time.Hour)
	cfg.MaxLineSize = cmp.Or(cfg.MaxLineSize, 256*1024)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 64<<20)
	cfg.MaxLabelNamesPerSeries = cmp.Or(cfg.MaxLabelNamesPerSeries, 15)
	if cfg.DiscoverServiceName == nil {
		cfg.DiscoverServiceName = defaultServiceNameLabels
	}
	s := &Server{
		cfg:     cfg,
		tenants: map[string]*tenantStore{},
		stats:   Stats{ByStatus: map[int]int{}, Tenants: map[string]int{}},
	}
	if cfg.TLS {
		if err := s.makeCert(); err != nil {
			return nil, err
		}
	}
	if err := s.listen(cfg.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("lokitest: listening on %s: %w", addr, err)
	}
	s.addr = ln.Addr().String()
	if s.tlsCf != nil {
		ln = tls.NewListener(ln, s.tlsCf)
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	s.down = false
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is the server's base URL, e.g. http://127.0.0.1:38211.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme := "http"
	if s.tlsCf != nil {
		scheme = "https"
	}
	return scheme + "://" + s.addr
}

// PushURL is URL()+"/loki/api/v1/push".
func (s *Server) PushURL() string { return s.URL() + "/loki/api/v1/push" }

// CACertPEM is the PEM certificate clients must trust when Config.TLS is set.
func (s *Server) CACertPEM() []byte { return s.caPEM }

// Close stops the server for good.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	return err
}

// Down closes the listener and every open connection, as a crashed or
// restarting Loki would: clients see connection refused until Up.
func (s *Server) Down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	s.down = true
	return err
}

// Up listens again on the address the server had, keeping what it stored.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	// The port was ours a moment ago; retry briefly in case the kernel has
	// not released it yet.
	var err error
	for range 50 {
		if err = s.listen(s.addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// SetDelay makes every push wait d before it is processed (0: no delay).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// FailNext makes the next n pushes answer status without storing anything.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	s.failLeft, s.failCode = n, status
	s.mu.Unlock()
}

// SetFailing makes every push answer status until ClearFailing.
func (s *Server) SetFailing(status int) { s.FailNext(-1, status) }

// ClearFailing ends SetFailing or FailNext.
func (s *Server) ClearFailing() { s.FailNext(0, 0) }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = map[int]int{}
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	st.Tenants = map[string]int{}
	for k, v := range s.stats.Tenants {
		st.Tenants[k] = v
	}
	return st
}

// LastError is the body of the most recent 4xx push answer (for tests).
func (s *Server) LastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastError
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	mux.HandleFunc("/loki/api/v1/push", s.auth(s.handlePush))
	mux.HandleFunc("/loki/api/v1/query_range", s.auth(s.handleQueryRange))
	mux.HandleFunc("/loki/api/v1/query", s.auth(s.handleQuery))
	mux.HandleFunc("/loki/api/v1/labels", s.auth(s.handleLabels))
	mux.HandleFunc("/loki/api/v1/label/{name}/values", s.auth(s.handleLabelValues))
	mux.HandleFunc("/loki/api/v1/series", s.auth(s.handleSeries))
	return mux
}

// auth applies the configured proxy credentials and resolves the tenant.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.BasicAuthUser != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.BasicAuthUser)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.BasicAuthPassword)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="loki"`)
				http.Error(w, "invalid basic auth credentials", http.StatusUnauthorized)
				return
			}
		}
		if s.cfg.BearerToken != "" {
			want := "Bearer " + s.cfg.BearerToken
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
				http.Error(w, "invalid bearer token", http.StatusUnauthorized)
				return
			}
		}
		tenant := "fake"
		if s.cfg.MultiTenant {
			tenant = r.Header.Get("X-Scope-OrgID")
			if tenant == "" {
				http.Error(w, "no org id", http.StatusUnauthorized)
				return
			}
			if err := validTenant(tenant); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		h(w, r, tenant)
	}
}

// validTenant applies Loki's tenant ID rules (dskit tenant.ValidTenantID).
func validTenant(t string) error {
	if len(t) > 150 {
		return fmt.Errorf("tenant ID is too long: max 150 characters")
	}
	if t == "." || t == ".." {
		return fmt.Errorf("tenant ID is '.' or '..'")
	}
	for _, r := range t {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!-_.*'()", r):
		default:
			return fmt.Errorf("tenant ID %q contains unsupported character %q", t, r)
		}
	}
	return nil
}

func (s *Server) handlePush(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed: push takes POST", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.stats.Requests++
	delay := s.delay
	failCode := 0
	if s.failLeft != 0 {
		failCode = s.failCode
		if s.failLeft > 0 {
			s.failLeft--
		}
	}
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if failCode != 0 {
		_, _ = io.Copy(io.Discard, r.Body)
		s.answer(w, failCode, fmt.Sprintf("lokitest: failing on purpose with %d", failCode))
		return
	}
	streams, herr := decodePush(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), r.Body, s.cfg.MaxBodyBytes)
	if herr != nil {
		s.answer(w, herr.status, herr.msg)
		return
	}
	if len(streams) == 0 {
		s.answer(w, http.StatusUnprocessableEntity, errNoStreams.Error())
		return
	}
	if errs := s.ingest(tenant, streams); len(errs) > 0 {
		s.answer(w, http.StatusBadRequest, strings.Join(errs, "\n"))
		return
	}
	s.answer(w, http.StatusNoContent, "")
}

func (s *Server) answer(w http.ResponseWriter, status int, msg string) {
	s.mu.Lock()
	s.stats.ByStatus[status]++
	if status >= 400 && status < 500 {
		s.lastError = msg
	}
	s.mu.Unlock()
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	http.Error(w, msg, status)
}

// ingest validates and stores streams the way Loki's distributor and
// ingester do: label errors refuse the stream, entry errors refuse the
// entry, and everything valid is stored even when the answer is 400.
func (s *Server) ingest(tenant string, streams []pushStream) []string {
	now := s.cfg.Now()
	var errs []string
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tenants[tenant]
	if ts == nil {
		ts = &tenantStore{streams: map[string]*stream{}}
		s.tenants[tenant] = ts
	}
	for _, ps := range streams {
		ls, err := s.validateLabels(ps)
		if err != nil {
			errs = append(errs, err.Error())
			s.stats.Rejected += len(ps.entries)
			continue
		}
		key := ls.String()
		st := ts.streams[key]
		var ignored []string
		for _, e := range ps.entries {
			if msg := s.validateEntry(key, e, now); msg != "" {
				errs = append(errs, msg)
				s.stats.Rejected++
				continue
			}
			if st != nil && !st.newest.IsZero() && e.ts.Before(st.newest.Add(-s.cfg.OutOfOrderWindow)) {
				cutoff := st.newest.Add(-s.cfg.OutOfOrderWindow)
				ignored = append(ignored, fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry too far behind, entry timestamp is: %s, oldest acceptable timestamp is: %s',",
					e.ts.UTC(), e.ts.UTC().Format(time.RFC3339), cutoff.UTC().Format(time.RFC3339)))
				s.stats.Rejected++
				continue
			}
			if st == nil {
				st = &stream{labels: ls, seen: map[dedupeKey]struct{}{}}
				ts.streams[key] = st
			}
			dk := dedupeKey{e.ts.UnixNano(), e.line}
			if _, dup := st.seen[dk]; dup {
				s.stats.Duplicates++
				if s.cfg.OnDuplicate != nil {
					s.cfg.OnDuplicate(tenant, ls, Entry{Timestamp: e.ts, Line: e.line, Metadata: e.meta, Received: now})
				}
				continue
			}
			st.seen[dk] = struct{}{}
			meta := e.meta
			if !s.cfg.DisableLevelDetection && !meta.Has("detected_level") {
				meta = meta.merge(Labels{{Name: "detected_level", Value: detectLevel(e.line, ls, e.meta)}})
			}
			ent := Entry{Timestamp: e.ts, Line: e.line, Metadata: meta, Received: now}
			st.insert(ent)
			s.stats.Accepted++
			s.stats.Tenants[tenant]++
			if s.cfg.OnAccept != nil {
				s.cfg.OnAccept(tenant, ls, ent)
			}
		}
		if len(ignored) > 0 {
			errs = append(errs, strings.Join(ignored, "\n")+fmt.Sprintf("\ntotal ignored: %d out of %d for stream: %s", len(ignored), len(ps.entries), key))
		}
	}
	return errs
}

func (st *stream) insert(e Entry) {
	if n := len(st.entries); n > 0 && e.Timestamp.Before(st.entries[n-1].Timestamp) {
		st.unsorted = true
	}
	st.entries = append(st.entries, e)
	if e.Timestamp.After(st.newest) {
		st.newest = e.Timestamp
	}
}

// sorted returns the entries in timestamp order. Callers hold s.mu.
func (st *stream) sorted() []Entry {
	if st.unsorted {
		slices.SortStableFunc(st.entries, func(a, b Entry) int { return a.Timestamp.Compare(b.Timestamp) })
		st.unsorted = false
	}
	return st.entries
}

// validateLabels applies Loki's label rules and adds service_name.
func (s *Server) validateLabels(ps pushStream) (Labels, error) {
	ls := make(Labels, 0, len(ps.labels)+1)
	for _, l := range ps.labels {
		if !ValidLabelName(l.Name) {
			return nil, fmt.Errorf("Error parsing labels '%s' with error: invalid label name %q", ps.raw, l.Name)
		}
		if l.Value == "" { // an empty value is the same as an absent label
			continue
		}
		ls = append(ls, l)
	}
	ls.sort()
	for i := 1; i < len(ls); i++ {
		if ls[i].Name == ls[i-1].Name {
			return nil, fmt.Errorf("stream '%s' has duplicate label name: '%s'", ps.raw, ls[i].Name)
		}
	}
	if !ls.Has("service_name") {
		svc := "unknown_service"
		for _, n := range s.cfg.DiscoverServiceName {
			if v := ls.Get(n); v != "" {
				svc = v
				break
			}
		}
		ls = ls.merge(Labels{{Name: "service_name", Value: svc}})
	}
	if len(ls) > s.cfg.MaxLabelNamesPerSeries {
		return nil, fmt.Errorf("entry for stream '%s' has %d label names; limit %d", ls, len(ls), s.cfg.MaxLabelNamesPerSeries)
	}
	for _, l := range ls {
		if len(l.Name) > 1024 {
			return nil, fmt.Errorf("stream '%s' has label name too long: '%s'", ls, l.Name)
		}
		if len(l.Value) > 2048 {
			return nil, fmt.Errorf("stream '%s' has label value too long: '%s'", ls, l.Value)
		}
	}
	return ls, nil
}

func (s *Server) validateEntry(stream string, e pushEntry, now time.Time) string {
	if oldest := now.Add(-s.cfg.RejectOldSamplesMaxAge); e.ts.Before(oldest) {
		return fmt.Sprintf("entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s", stream, e.ts.UTC().Format(time.RFC3339), oldest.UTC().Format(time.RFC3339))
	}
	if e.ts.After(now.Add(s.cfg.CreationGracePeriod)) {
		return fmt.Sprintf("entry for stream '%s' has timestamp too new: %s", stream, e.ts.UTC().Format(time.RFC3339))
	}
	if len(e.line) > s.cfg.MaxLineSize {
		return fmt.Sprintf("Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes", s.cfg.MaxLineSize, stream, len(e.line))
	}
	if len(e.meta) > 0 && s.cfg.DisallowStructuredMetadata {
		return fmt.Sprintf("stream '%s' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it.", stream)
	}
	for _, m := range e.meta {
		if !ValidLabelName(m.Name) {
			return fmt.Sprintf("stream '%s' has invalid structured metadata name %q", stream, m.Name)
		}
	}
	return ""
}

// Query runs a LogQL log query over what tenant stored, entries with start
// <= ts < end, at most limit entries (0: no limit) in the given direction.
// Result streams are split by structured metadata as Loki 3 returns them.
func (s *Server) Query(tenant, query string, start, end time.Time, limit int, forward bool) ([]Stream, error) {
	q, err := ParseQuery(query)
	if err != nil {
		return nil, err
	}
	type hit struct {
		labels Labels
		e      Entry
	}
	var hits []hit
	s.mu.Lock()
	if ts := s.tenants[tenant]; ts != nil {
		for _, st := range ts.streams {
			if !matchAll(q.Selector, st.labels) {
				continue
			}
			entries := st.sorted()
			i, _ := slices.BinarySearchFunc(entries, start, func(x Entry, t time.Time) int {
				if x.Timestamp.Before(t) {
					return -1
				}
				return 1
			})
			for ; i < len(entries) && entries[i].Timestamp.Before(end); i++ {
				e := entries[i]
				if !passes(q.Stages, st.labels, e) {
					continue
				}
				hits = append(hits, hit{labels: st.labels.merge(e.Metadata), e: e})
			}
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(hits, func(a, b hit) int {
		c := a.e.Timestamp.Compare(b.e.Timestamp)
		if !forward {
			c = -c
		}
		return c
	})
	if limit > 0 && len(hits) > limit {
		hits = hits[:limit]
	}
	byKey := map[string]*Stream{}
	var out []Stream
	var order []string
	for _, h := range hits {
		k := h.labels.String()
		st := byKey[k]
		if st == nil {
			st = &Stream{Labels: h.labels}
			byKey[k] = st
			order = append(order, k)
		}
		st.Entries = append(st.Entries, h.e)
	}
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out, nil
}

func matchAll(ms []*Matcher, ls Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

func passes(stages []any, ls Labels, e Entry) bool {
	for _, st := range stages {
		switch f := st.(type) {
		case *LineFilter:
			if !f.Matches(e.Line) {
				return false
			}
		case *Matcher:
			v := e.Metadata.Get(f.Name)
			if v == "" {
				v = ls.Get(f.Name)
			}
			if !f.Matches(v) {
				return false
			}
		}
	}
	return true
}

// Streams returns every stream tenant stored, entries in timestamp order.
func (s *Server) Streams(tenant string) []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Stream
	if ts := s.tenants[tenant]; ts != nil {
		for _, st := range ts.streams {
			out = append(out, Stream{Labels: st.labels, Entries: slices.Clone(st.sorted())})
		}
	}
	slices.SortFunc(out, func(a, b Stream) int { return strings.Compare(a.Labels.String(), b.Labels.String()) })
	return out
}

func (s *Server) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("lokitest: generating TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lokitest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("lokitest: creating TLS certificate: %w", err)
	}
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s.tlsCf = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}
	return nil
}
