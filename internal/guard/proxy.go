package guard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hy-home/hyhome/internal/policy"
)

// handler serves one listener with its profile.
type handler struct {
	g         *Guard
	listener  string
	profile   *Profile
	admission *admission // the guard's, as the profile sets exemptions
	// The series every allowed request updates, resolved once.
	allowed       prometheus.Counter
	allowDuration prometheus.Observer
	// redact is what the profile rewrites in each route's answers.
	redact map[*Route]*redaction
}

func newHandler(g *Guard, listener string, p *Profile) *handler {
	h := &handler{
		g: g, listener: listener, profile: p, admission: g.admission.forProfile(p),
		allowed:       g.metrics.requests.WithLabelValues(p.Name, "allow"),
		allowDuration: g.metrics.duration.WithLabelValues(p.Name, "allow"),
		redact:        map[*Route]*redaction{},
	}
	for _, r := range routes.all {
		if red := redactorFor(p, r); red != nil && p.Allows(r) {
			h.redact[r] = red
		}
	}
	return h
}

// decision is an allowed request, ready to forward.
type decision struct {
	target   *target
	body     []byte    // the judged body; nil for streamed bodies
	stream   io.Reader // the client's body, for BodyStream routes
	findings []policy.Finding
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.g.inFlight.Add(1)
	h.g.active()
	defer func() {
		h.g.active()
		h.g.inFlight.Add(-1)
	}()
	body := &bodyReader{budget: h.g.buffered, timeout: h.g.cfg.BodyTimeout}
	defer body.release()
	var lookups time.Duration
	if h.g.cfg.ServerTiming {
		r = r.WithContext(context.WithValue(r.Context(), lookupTimeKey{}, &lookups))
	}
	d, t, den := h.decide(w, r, body)
	if den != nil {
		h.refuse(w, r, t, den, !body.done, start)
		return
	}
	h.allowLog(r, d)
	if h.g.cfg.ServerTiming && lookups > 0 {
		w.Header().Set("Server-Timing", fmt.Sprintf("lookup;dur=%.3f", float64(lookups.Microseconds())/1000))
	}
	h.forward(w, r, d, start)
}

// decide is the admission chain: canonical request, profile, body, judge.
// Each step either passes the request on or returns the denial; nothing
// after a denial runs, and a step that cannot decide denies.
func (h *handler) decide(w http.ResponseWriter, r *http.Request, br *bodyReader) (*decision, *target, *denial) {
	t, den := canonicalize(r)
	if den != nil {
		return nil, t, den
	}
	if !h.profile.Allows(t.route) {
		return nil, t, deny(http.StatusForbidden, reasonProfile, "%s is not allowed in profile %s", t.route.Name, h.profile.Name)
	}
	d := &decision{target: t}
	switch t.route.Body {
	case BodyStream:
		d.stream = r.Body
	case BodyNone:
		if r.ContentLength > noBodyMax {
			return nil, t, deny(http.StatusForbidden, reasonBody, "%s takes no request body", t.route.Name)
		}
		body, den := br.read(w, r, noBodyMax)
		if den != nil {
			if den.reason == reasonBodySize {
				den = deny(http.StatusForbidden, reasonBody, "%s takes no request body", t.route.Name)
			}
			return nil, t, den
		}
		if !emptyBody(body) {
			return nil, t, deny(http.StatusForbidden, reasonBody, "%s takes no request body", t.route.Name)
		}
		d.body = body
	default:
		body, den := br.read(w, r, h.g.maxBody)
		if den != nil {
			return nil, t, den
		}
		d.body = body
	}
	if t.route.judge != judgeNone {
		v := h.admission.judge(r.Context(), h.profile, t, r, d.body)
		d.findings = v.findings
		if v.deny != nil {
			return nil, t, v.deny
		}
		if v.body != nil {
			d.body = v.body
		}
		if v.vars != nil {
			t.vars = v.vars
		}
	}
	return d, t, nil
}

// refuse is the one deny path: it logs the denial, counts it and answers
// the client as the engine answers errors.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, t *target, d *denial, unread bool, start time.Time) {
	m := h.g.metrics
	m.requests.WithLabelValues(h.profile.Name, "deny").Inc()
	if len(d.rules) == 0 {
		m.denials.WithLabelValues(h.profile.Name, d.reason, "").Inc()
	}
	for _, rule := range d.rules {
		m.denials.WithLabelValues(h.profile.Name, d.reason, rule).Inc()
	}
	attrs := h.logAttrs(r, t)
	attrs = append(attrs,
		slog.String("verdict", "deny"),
		slog.String("reason", d.reason),
		slog.Any("rules", d.rules),
		slog.Int("status", d.status),
		slog.String("message", d.message),
	)
	h.g.log.LogAttrs(r.Context(), slog.LevelWarn, "guard verdict", attrs...)

	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	if unread && r.ContentLength != 0 {
		// The body, or what is left of it, is not wanted. Without this the
		// server would read up to 256 KiB of it, without a deadline, before
		// answering: a slow client would hold the connection.
		hdr.Set("Connection", "close")
	}
	w.WriteHeader(d.status)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(struct {
			Message string `json:"message"`
		}{"hyhome guard: " + d.message})
	}
	m.duration.WithLabelValues(h.profile.Name, "deny").Observe(time.Since(start).Seconds())
}

// allowLog writes the verdict line of an allowed request; findings that did
// not deny (warnings, exempted) are named so the log shows what passed.
func (h *handler) allowLog(r *http.Request, d *decision) {
	h.allowed.Inc()
	if !h.g.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := h.logAttrs(r, d.target)
	attrs = append(attrs, slog.String("verdict", "allow"))
	if len(d.findings) > 0 {
		var warn, exempt []string
		for _, f := range d.findings {
			if f.Exempted {
				exempt = append(exempt, f.Rule+" ("+f.ADR+")")
			} else {
				warn = append(warn, f.Rule)
			}
		}
		if len(warn) > 0 {
			attrs = append(attrs, slog.Any("warnings", warn))
		}
		if len(exempt) > 0 {
			attrs = append(attrs, slog.Any("exempted", exempt))
		}
	}
	h.g.log.LogAttrs(r.Context(), slog.LevelInfo, "guard verdict", attrs...)
}

func (h *handler) logAttrs(r *http.Request, t *target) []slog.Attr {
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("listener", h.listener),
		slog.String("profile", h.profile.Name),
		slog.String("method", r.Method),
	)
	if t != nil {
		attrs = append(attrs, slog.String("route", t.route.Name), slog.String("path", t.forwardPath()))
	} else {
		attrs = append(attrs, slog.String("target", r.RequestURI))
	}
	if r.RemoteAddr != "" && r.RemoteAddr != "@" {
		attrs = append(attrs, slog.String("remote", r.RemoteAddr))
	}
	return attrs
}

// dropHeader reports whether a header (by canonical name) is not the
// client's to send on: connection-scoped (RFC 9110 7.6.1) or the guard's to
// set, or one of the method overrides some frameworks read as the method.
// The engine reads none of them, and none is forwarded.
func dropHeader(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "Content-Length", "Host",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override":
		return true
	}
	return false
}

// connectionTokens lists, canonicalised, the headers a message's
// Connection header names as connection-scoped.
func connectionTokens(h http.Header) []string {
	var toks []string
	for _, f := range h["Connection"] {
		for tok := range strings.SplitSeq(f, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				toks = append(toks, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	return toks
}

// outboundHeader copies the client's end-to-end headers, in one pass.
func outboundHeader(in http.Header) http.Header {
	out := make(http.Header, len(in)+1)
	for k, vs := range in {
		if !dropHeader(k) {
			out[k] = slices.Clone(vs)
		}
	}
	// Deleted after the copy, one map delete per token: a client can name
	// many thousands in one header.
	for _, tok := range connectionTokens(in) {
		delete(out, tok)
	}
	if len(out["User-Agent"]) == 0 || out["User-Agent"][0] == "" {
		// Keep Go's transport from adding its own.
		out["User-Agent"] = []string{""}
	}
	return out
}

// wantsUpgrade reports whether the client asked to upgrade the connection
// (the docker CLI asks for "tcp" on attach and exec, "h2c" for a session).
func wantsUpgrade(h http.Header) (string, bool) {
	up := h.Get("Upgrade")
	if up == "" {
		return "", false
	}
	for _, f := range h.Values("Connection") {
		for _, tok := range strings.Split(f, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "upgrade") {
				return up, true
			}
		}
	}
	return "", false
}

// outbound builds the request the engine receives from what was judged:
// the canonical path with pinned variables, the parsed query re-encoded and
// the judged body.
func (h *handler) outbound(ctx context.Context, r *http.Request, d *decision) *http.Request {
	t := d.target
	out := &http.Request{
		Method:     r.Method,
		URL:        &url.URL{Scheme: "http", Host: upstreamHost, Path: t.forwardPath(), RawQuery: t.query.Encode()},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     outboundHeader(r.Header),
		Host:       upstreamHost,
	}
	switch {
	case d.stream != nil:
		out.Body = io.NopCloser(d.stream)
		out.ContentLength = r.ContentLength
		if out.ContentLength == 0 {
			out.Body = http.NoBody
		}
	case len(d.body) > 0:
		out.Body = io.NopCloser(bytes.NewReader(d.body))
		out.ContentLength = int64(len(d.body))
	default:
		out.Body = http.NoBody
	}
	return out.WithContext(ctx)
}

// forward sends an allowed request to the engine and relays its answer.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, d *decision, start time.Time) {
	ctx := r.Context()
	if d.target.route.Stream {
		// Streams (events, logs, attach) end when the guard stops, so that
		// graceful shutdown does not wait for clients that never leave.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(h.g.streams, cancel)
		defer stop()
	}
	out := h.outbound(ctx, r, d)
	if d.target.route.Hijack {
		h.forwardHijack(ctx, w, r, out, start)
		return
	}
	var body func() io.ReadCloser
	if d.stream != nil {
		// Progress comes back while the archive is still being sent
		// (image import and load); without full duplex the server would
		// end the client's body at the first byte of the answer.
		_ = http.NewResponseController(w).EnableFullDuplex()
	} else {
		// A buffered body can be sent again if a kept-alive connection
		// turns out to be closed; a streamed one cannot.
		body = func() io.ReadCloser {
			if len(d.body) == 0 {
				return http.NoBody
			}
			return io.NopCloser(bytes.NewReader(d.body))
		}
	}
	sent := time.Now()
	resp, err := h.g.upstream.pool.roundTrip(ctx, out, body)
	if err != nil {
		h.upstreamFailed(w, r, err, true)
		return
	}
	defer resp.Body.Close()
	if h.g.cfg.ServerTiming {
		w.Header().Add("Server-Timing", fmt.Sprintf("engine;dur=%.3f", float64(time.Since(sent).Microseconds())/1000))
	}
	if red := h.redact[d.target.route]; red != nil && resp.StatusCode/100 == 2 && r.Method != http.MethodHead {
		h.relayRedacted(w, r, resp, red, d.target.route.Stream, start)
		return
	}
	h.relay(w, r, resp, d.target.route.Stream, start)
}

// relayRedacted writes the engine's answer with the profile's redactions
// applied, streaming: the rewritten body's length is not known up front.
func (h *handler) relayRedacted(w http.ResponseWriter, r *http.Request, resp *http.Response, red *redaction, stream bool, start time.Time) {
	copyResponseHeader(w.Header(), resp.Header)
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	if stream {
		_ = rc.Flush() // the events' head, before the first event
	}
	h.allowDuration.Observe(time.Since(start).Seconds())
	err := red.copy(w, resp.Body, rc.Flush)
	if err != nil && r.Context().Err() == nil && h.g.streams.Err() == nil {
		// The head is sent: the client sees a truncated answer, and the
		// log says why.
		h.upstreamFailed(w, r, fmt.Errorf("redacting the engine's answer: %w", err), false)
	}
}

// relay writes the engine's answer to the client, flushing after every read
// so that event, log and progress streams are not held back.
func (h *handler) relay(w http.ResponseWriter, r *http.Request, resp *http.Response, stream bool, start time.Time) {
	copyResponseHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if resp.ContentLength < 0 || stream {
		// A stream's head must reach the client now: `docker run` waits
		// for the head of POST /containers/{id}/wait before it starts the
		// container, and the body comes only when the container exits.
		_ = http.NewResponseController(w).Flush()
	}
	h.allowDuration.Observe(time.Since(start).Seconds())
	if r.Method == http.MethodHead {
		return
	}
	if err := copyFlush(w, resp.Body); err != nil && r.Context().Err() == nil && h.g.streams.Err() == nil {
		h.upstreamFailed(w, r, err, false)
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func copyFlush(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				// The client went away; nothing to report to it.
				return nil
			}
			if ferr := rc.Flush(); ferr != nil {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// copyResponseHeader copies the engine's end-to-end response headers; the
// client's server sets the framing and connection ones itself.
func copyResponseHeader(dst, src http.Header) {
	for k, vs := range src {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		dst[k] = slices.Clone(vs)
	}
	for _, tok := range connectionTokens(src) {
		delete(dst, tok)
	}
}

// upstreamFailed reports an engine that could not be reached or broke off.
// Before the response head it answers 502; after, it can only log.
func (h *handler) upstreamFailed(w http.ResponseWriter, r *http.Request, err error, head bool) {
	if errors.Is(err, context.Canceled) && (r.Context().Err() != nil || h.g.streams.Err() != nil) {
		return // the client left, or the guard is stopping
	}
	h.g.metrics.upstreamErrors.WithLabelValues(h.profile.Name).Inc()
	h.g.log.LogAttrs(r.Context(), slog.LevelError, "guard upstream error",
		slog.String("listener", h.listener), slog.String("profile", h.profile.Name),
		slog.String("method", r.Method), slog.String("target", r.RequestURI),
		slog.String("upstream", h.g.upstream.String()), slog.String("error", err.Error()))
	if !head {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_ = json.NewEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{fmt.Sprintf("hyhome guard: the engine at %s did not answer: %v", h.g.upstream, err)})
}

// forwardHijack proxies a request the engine may answer by taking over the
// connection: 101 Switching Protocols when the client asked to upgrade, or
// (older clients) 200 followed by a raw stream until close. Either way the
// two connections are then spliced, both directions, with half-closes
// passed on so that the end of stdin reaches the process.
func (h *handler) forwardHijack(ctx context.Context, w http.ResponseWriter, r *http.Request, out *http.Request, start time.Time) {
	if up, ok := wantsUpgrade(r.Header); ok {
		out.Header.Set("Connection", "Upgrade")
		out.Header.Set("Upgrade", up)
	}
	conn, err := h.g.upstream.dial(ctx)
	if err != nil {
		h.upstreamFailed(w, r, err, true)
		return
	}
	// Until the connections are spliced, a client that leaves ends the
	// exchange.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := out.Write(conn); err != nil {
		conn.Close()
		h.upstreamFailed(w, r, err, true)
		return
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		conn.Close()
		h.upstreamFailed(w, r, err, true)
		return
	}
	raw := resp.StatusCode == http.StatusSwitchingProtocols ||
		resp.StatusCode == http.StatusOK && resp.ContentLength < 0 && len(resp.TransferEncoding) == 0
	if !raw {
		defer conn.Close()
		defer resp.Body.Close()
		h.relay(w, r, resp, true, start)
		return
	}
	rc := http.NewResponseController(w)
	client, cbuf, err := rc.Hijack()
	if err != nil {
		conn.Close()
		h.upstreamFailed(w, r, fmt.Errorf("taking over the client connection: %w", err), true)
		return
	}
	// From here the request's context is not the connection's: the
	// server cancels it when the client half-closes (end of stdin), and
	// the output must still flow. Stop (through track) ends the pair.
	if !stop() {
		client.Close()
		return
	}
	h.allowDuration.Observe(time.Since(start).Seconds())
	untrack := h.g.track(client, conn)
	defer untrack()
	gauge := h.g.metrics.hijacked.WithLabelValues(h.profile.Name)
	gauge.Inc()
	defer gauge.Dec()
	defer client.Close()
	defer conn.Close()

	if err := writeResponseHead(cbuf.Writer, resp); err != nil {
		return
	}
	// What the client sent after its request is in the server's buffer;
	// the rest is read from the connection itself, not through the
	// server's reader (whose errors cancel the request).
	early, err := cbuf.Reader.Peek(cbuf.Reader.Buffered())
	if err != nil {
		return
	}
	if _, err := conn.Write(early); err != nil {
		return
	}
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		// Client to engine, then a half-close so that the process sees
		// the end of its stdin.
		_, _ = io.Copy(conn, client)
		closeWrite(conn)
	}()
	// Engine to client until the engine ends the stream.
	_, _ = io.Copy(client, br)
	closeWrite(client)
	client.Close()
	conn.Close()
	<-inDone
}

func writeResponseHead(w *bufio.Writer, resp *http.Response) error {
	if _, err := fmt.Fprintf(w, "HTTP/1.1 %s\r\n", resp.Status); err != nil {
		return err
	}
	if err := resp.Header.Write(w); err != nil {
		return err
	}
	if _, err := w.WriteString("\r\n"); err != nil {
		return err
	}
	return w.Flush()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
