package lokitest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"

	"github.com/hy-home/hyhome/internal/human"
)

// pushStream is one decoded stream of a push request, before validation.
type pushStream struct {
	labels  []Label // as sent: unsorted, possibly with duplicates or bad names
	raw     string  // the label set as sent, for error messages
	entries []pushEntry
}

type pushEntry struct {
	ts   time.Time
	line string
	meta Labels
}

// httpError is an HTTP status with the plain-text body Loki would send.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodePush reads a push body the way Loki's distributor does: JSON when
// the Content-Type is application/json, otherwise snappy-compressed
// protobuf; either may additionally carry Content-Encoding gzip or deflate.
func decodePush(contentType, contentEncoding string, body io.Reader, maxBytes int64) ([]pushStream, *httpError) {
	var r io.Reader = body
	switch contentEncoding {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, badRequest("decoding gzip request body: %v", err)
		}
		defer zr.Close()
		r = zr
	case "deflate":
		fr := flate.NewReader(body)
		defer fr.Close()
		r = fr
	default:
		return nil, &httpError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("Content-Encoding %q not supported", contentEncoding)}
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, badRequest("reading request body: %v", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body too large: more than %d bytes", maxBytes)}
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" {
		return decodeJSON(data)
	}
	return decodeProto(data, maxBytes)
}

// decodeJSON parses {"streams":[{"stream":{...},"values":[["<ns>","line",{meta}]]}]}.
// Timestamps must be strings holding integer nanoseconds: Loki answers 400
// to JSON numbers and to date strings.
func decodeJSON(data []byte) ([]pushStream, *httpError) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, badRequest("unexpected end of JSON input: the request body is empty")
	}
	var req struct {
		Streams []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, badRequest("decoding JSON push request: %v", err)
	}
	out := make([]pushStream, 0, len(req.Streams))
	for si, s := range req.Streams {
		ps := pushStream{}
		for k, v := range s.Stream {
			ps.labels = append(ps.labels, Label{Name: k, Value: v})
		}
		ls := Labels(append([]Label(nil), ps.labels...))
		ls.sort()
		ps.raw = ls.String()
		for vi, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return nil, badRequest("streams[%d].values[%d]: want [\"<unix ns>\", \"<line>\"] or [\"<unix ns>\", \"<line>\", {metadata}], got %d elements", si, vi, len(v))
			}
			var tsStr string
			if err := json.Unmarshal(v[0], &tsStr); err != nil {
				return nil, badRequest("streams[%d].values[%d]: the timestamp must be a string of Unix nanoseconds, got %s", si, vi, human.Truncate(string(v[0]), 40))
			}
			ns, err := strconv.ParseInt(tsStr, 10, 64)
			if err != nil {
				return nil, badRequest("streams[%d].values[%d]: parsing timestamp %q as Unix nanoseconds: %v", si, vi, human.Truncate(tsStr, 40), err)
			}
			var line string
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, badRequest("streams[%d].values[%d]: the log line must be a string: %v", si, vi, err)
			}
			e := pushEntry{ts: time.Unix(0, ns), line: line}
			if len(v) == 3 {
				var meta map[string]string
				if err := json.Unmarshal(v[2], &meta); err != nil {
					return nil, badRequest("streams[%d].values[%d]: structured metadata must be an object of strings: %v", si, vi, err)
				}
				e.meta = FromMap(meta)
			}
			ps.entries = append(ps.entries, e)
		}
		out = append(out, ps)
	}
	return out, nil
}

// decodeProto parses a snappy block-compressed logproto.PushRequest. The
// block's header states its decoded length, and snappy.Decode allocates that
// much before it reads a byte of the rest (up to 4 GiB from a 5-byte body), so
// the header is checked against maxBytes first, as Loki's
// util.ParseProtoReader does.
func decodeProto(data []byte, maxBytes int64) ([]pushStream, *httpError) {
	if len(data) == 0 {
		return nil, badRequest("decoding protobuf push request: the request body is empty")
	}
	n, err := snappy.DecodedLen(data)
	if err != nil {
		return nil, badRequest("decompressing snappy push request: %v", err)
	}
	if int64(n) > maxBytes {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("received message larger than max (%d vs %d): the snappy block's header states its decompressed size", n, maxBytes)}
	}
	raw, err := snappy.Decode(nil, data)
	if err != nil {
		return nil, badRequest("decompressing snappy push request: %v", err)
	}
	var req push.PushRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, badRequest("decoding protobuf push request: %v", err)
	}
	out := make([]pushStream, 0, len(req.Streams))
	for _, s := range req.Streams {
		ls, err := ParseLabels(s.Labels)
		if err != nil {
			return nil, badRequest("Error parsing labels '%s' with error: %v", s.Labels, err)
		}
		ps := pushStream{labels: ls, raw: s.Labels}
		for _, e := range s.Entries {
			pe := pushEntry{ts: e.Timestamp, line: e.Line}
			for _, m := range e.StructuredMetadata {
				pe.meta = append(pe.meta, Label{Name: m.Name, Value: m.Value})
			}
			pe.meta.sort()
			ps.entries = append(ps.entries, pe)
		}
		out = append(out, ps)
	}
	return out, nil
}

var errNoStreams = errors.New("error at least one valid stream is required for ingestion")
