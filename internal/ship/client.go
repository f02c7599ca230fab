package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Encodings of push requests.
const (
	EncodingProtobuf = "protobuf" // snappy-compressed logproto.PushRequest (Loki's native format)
	EncodingJSON     = "json"     // JSON, gzip-compressed
)

// pushEntry is one entry in a push request.
type pushEntry struct {
	labels   Labels
	key      string // labels.String()
	ts       int64
	line     string
	metadata Labels
	source   string
}

// pushError is a push that Loki (or the network) did not accept.
type pushError struct {
	status     int    // 0: no HTTP response
	body       string // Loki's answer, truncated
	retryAfter time.Duration
	err        error
}

func (e *pushError) Error() string {
	if e.status == 0 {
		return fmt.Sprintf("pushing to Loki: %v", e.err)
	}
	return fmt.Sprintf("pushing to Loki: HTTP %d: %s", e.status, e.body)
}

func (e *pushError) Unwrap() error { return e.err }

// retryable: 429, 5xx and network errors are worth retrying; any other
// 4xx would be refused again.
func (e *pushError) retryable() bool {
	return e.status == 0 || e.status == http.StatusTooManyRequests || e.status >= 500
}

// lokiClient pushes batches to Loki's /loki/api/v1/push.
type lokiClient struct {
	url      string
	encoding string
	http     *http.Client
	auth     *credentials
	agent    string
}

// credentials are read from files so that Docker secrets (/run/secrets/...)
// work, and re-read after a 401 or 403 in case they were rotated.
type credentials struct {
	tenantFile, userName, passwordFile, tokenFile string

	tenant, password, token string
}

func (c *credentials) load() error {
	read := func(path, what string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading %s file: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s file %s is empty", what, path)
		}
		return v, nil
	}
	var err error
	if c.tenant, err = read(c.tenantFile, "tenant"); err != nil {
		return err
	}
	if c.password, err = read(c.passwordFile, "basic auth password"); err != nil {
		return err
	}
	if c.token, err = read(c.tokenFile, "bearer token"); err != nil {
		return err
	}
	if strings.ContainsAny(c.tenant, "\r\n") || strings.ContainsAny(c.token, "\r\n") {
		return errors.New("tenant and bearer token files must hold a single line")
	}
	return nil
}

func (c *credentials) apply(req *http.Request) {
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	if c.userName != "" {
		req.SetBasicAuth(c.userName, c.password)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

func newLokiClient(cfg *Config) (*lokiClient, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	tr.ResponseHeaderTimeout = cfg.PushTimeout
	if cfg.CAFile != "" || cfg.InsecureSkipVerify {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in flag, documented as for tests only
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	c := &lokiClient{
		url:      cfg.LokiURL,
		encoding: cfg.Encoding,
		http:     &http.Client{Transport: tr},
		auth: &credentials{
			tenantFile: cfg.TenantFile, userName: cfg.BasicAuthUser,
			passwordFile: cfg.BasicAuthPasswordFile, tokenFile: cfg.BearerTokenFile,
		},
		agent: "hyhome-ship/" + cfg.Version,
	}
	if err := c.auth.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// push sends entries in one request. A nil error means Loki accepted all
// of them.
func (c *lokiClient) push(ctx context.Context, entries []pushEntry) error {
	var body []byte
	var err error
	if c.encoding == EncodingJSON {
		body, err = encodeJSON(entries)
	} else {
		body = encodeProtobuf(entries)
	}
	if err != nil {
		return &pushError{err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return &pushError{err: err}
	}
	if c.encoding == EncodingJSON {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	req.Header.Set("User-Agent", c.agent)
	c.auth.apply(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return &pushError{err: err}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	if resp.StatusCode/100 == 2 {
		return nil
	}
	pe := &pushError{status: resp.StatusCode, body: strings.TrimSpace(string(msg))}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs > 0 {
			pe.retryAfter = time.Duration(secs) * time.Second
		}
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		// Secrets may have been rotated under us; the next attempt uses
		// the files' current content.
		_ = c.auth.load()
	}
	return pe
}

// group orders entries into streams, keeping first-seen stream order.
func group(entries []pushEntry) ([]string, map[string][]*pushEntry) {
	var order []string
	by := map[string][]*pushEntry{}
	for i := range entries {
		e := &entries[i]
		if _, ok := by[e.key]; !ok {
			order = append(order, e.key)
		}
		by[e.key] = append(by[e.key], e)
	}
	return order, by
}

// encodeProtobuf writes a logproto.PushRequest (Loki's pkg/push/push.proto)
// with the protobuf wire encoding and compresses it with snappy, as Loki's
// own clients do. The message is small and fixed, so it is appended field by
// field with protowire rather than through Loki's generated gogo/protobuf
// types, which would link gRPC and two protobuf runtimes into the binary
// (and their package initialisation into every hyhome process, the guard's
// idle memory included). A test holds the bytes equal to those types'
// Marshal.
//
//	PushRequest      { repeated StreamAdapter streams = 1; }
//	StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; }
//	EntryAdapter     { Timestamp timestamp = 1; string line = 2;
//	                   repeated LabelPairAdapter structuredMetadata = 3; }
//	LabelPairAdapter { string name = 1; string value = 2; }
//	Timestamp        { int64 seconds = 1; int32 nanos = 2; }
func encodeProtobuf(entries []pushEntry) []byte {
	order, by := group(entries)
	var req, st, ent, sub []byte
	for _, k := range order {
		st = st[:0]
		if k != "" {
			st = protowire.AppendTag(st, 1, protowire.BytesType)
			st = protowire.AppendString(st, k)
		}
		for _, e := range by[k] {
			ent = ent[:0]
			// The timestamp is not nullable: it is always written, even
			// when it is the zero instant (an empty message).
			sub = appendTimestamp(sub[:0], e.ts)
			ent = protowire.AppendTag(ent, 1, protowire.BytesType)
			ent = protowire.AppendBytes(ent, sub)
			if e.line != "" {
				ent = protowire.AppendTag(ent, 2, protowire.BytesType)
				ent = protowire.AppendString(ent, e.line)
			}
			for _, m := range e.metadata {
				sub = sub[:0]
				if m.Name != "" {
					sub = protowire.AppendTag(sub, 1, protowire.BytesType)
					sub = protowire.AppendString(sub, m.Name)
				}
				if m.Value != "" {
					sub = protowire.AppendTag(sub, 2, protowire.BytesType)
					sub = protowire.AppendString(sub, m.Value)
				}
				ent = protowire.AppendTag(ent, 3, protowire.BytesType)
				ent = protowire.AppendBytes(ent, sub)
			}
			st = protowire.AppendTag(st, 2, protowire.BytesType)
			st = protowire.AppendBytes(st, ent)
		}
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, st)
	}
	return snappy.Encode(nil, req)
}

// appendTimestamp appends a google.protobuf.Timestamp's fields for a Unix
// time in nanoseconds: seconds, and nanoseconds in [0, 1e9).
func appendTimestamp(b []byte, unixNano int64) []byte {
	sec, nsec := unixNano/1e9, unixNano%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	if sec != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(sec))
	}
	if nsec != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(nsec))
	}
	return b
}

func encodeJSON(entries []pushEntry) ([]byte, error) {
	order, by := group(entries)
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	req := struct {
		Streams []stream `json:"streams"`
	}{Streams: make([]stream, 0, len(order))}
	for _, k := range order {
		es := by[k]
		st := stream{Stream: map[string]string{}, Values: make([][]any, 0, len(es))}
		for _, l := range es[0].labels {
			st.Stream[l.Name] = l.Value
		}
		for _, e := range es {
			v := []any{strconv.FormatInt(e.ts, 10), e.line}
			if len(e.metadata) > 0 {
				m := make(map[string]string, len(e.metadata))
				for _, l := range e.metadata {
					m[l.Name] = l.Value
				}
				v = append(v, m)
			}
			st.Values = append(st.Values, v)
		}
		req.Streams = append(req.Streams, st)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(req); err != nil {
		return nil, fmt.Errorf("encoding JSON push request: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing JSON push request: %w", err)
	}
	return buf.Bytes(), nil
}
