package guard

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// A client chooses how large a body it announces and how slowly it sends
// it; the guard must stay within its memory whatever the choice. So a body
// is buffered as its bytes arrive (never sized from Content-Length), under a
// deadline, and every buffer's capacity is taken from one budget shared by
// all requests: 200 clients that announce 4 MiB and send nothing cost
// nothing, and clients that do send cannot together hold more than the
// budget.

// noBodyMax is what a route that takes no body may carry: white space, "{}"
// or "null" (some clients send them), never more.
const noBodyMax = 64

// firstBodyBuf is the first buffer a body is read into; it doubles as bytes
// arrive.
const firstBodyBuf = 512

// byteBudget counts bytes reserved for buffered request bodies against a
// limit.
type byteBudget struct {
	limit int64
	used  atomic.Int64
}

// take reserves n bytes, or reports false (reserving nothing) when that
// would go over the limit.
func (b *byteBudget) take(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *byteBudget) give(n int64) { b.used.Add(-n) }

// bodyReader reads one request body under the guard's limits.
type bodyReader struct {
	budget  *byteBudget
	timeout time.Duration // for the whole body, from the end of the header
	// held is the capacity reserved from budget, given back by release.
	held int64
	// done is set once the body has been read to its end: the connection
	// can then serve another request whatever the answer.
	done bool
}

// read reads the body whole, whatever its framing (Content-Length,
// chunked, none), up to max bytes. More is refused with 413 without
// forwarding any of it, a client slower than the deadline with 408, and a
// body the budget cannot hold with 503. The returned slice is valid until
// release.
func (br *bodyReader) read(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *denial) {
	if r.Body == nil || r.Body == http.NoBody {
		br.done = true
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, deny(http.StatusRequestEntityTooLarge, reasonBodySize, "request body of %d bytes is over the guard's limit of %d bytes", r.ContentLength, max)
	}
	rc := http.NewResponseController(w)
	// The server sets no deadline on bodies; without one a client that
	// announces a body and never sends it holds its connection for ever.
	if err := rc.SetReadDeadline(time.Now().Add(br.timeout)); err == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	size := int64(firstBodyBuf)
	if r.ContentLength > 0 {
		// Content-Length is a claim: it may lower the first buffer, never
		// raise it.
		size = min(size, r.ContentLength+1)
	}
	size = min(size, max+1)
	var buf []byte
	for {
		if int64(len(buf)) == int64(cap(buf)) {
			if int64(len(buf)) > max {
				return nil, deny(http.StatusRequestEntityTooLarge, reasonBodySize, "request body is over the guard's limit of %d bytes", max)
			}
			if len(buf) > 0 {
				size = min(2*int64(cap(buf)), max+1)
			}
			if !br.budget.take(size) {
				return nil, deny(http.StatusServiceUnavailable, reasonBusy, "the guard is buffering as many request bodies as it may (%d bytes); retry shortly", br.budget.limit)
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			br.budget.give(br.held)
			br.held, buf = size, grown
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, deny(http.StatusRequestTimeout, reasonBodyTimeout, "the request body did not arrive within %v", br.timeout)
			}
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, deny(http.StatusRequestEntityTooLarge, reasonBodySize, "request body is over the guard's limit of %d bytes", max)
			}
			return nil, deny(http.StatusBadRequest, reasonBody, "reading the request body: %v", err)
		}
	}
	br.done = true
	if int64(len(buf)) > max {
		return nil, deny(http.StatusRequestEntityTooLarge, reasonBodySize, "request body is over the guard's limit of %d bytes", max)
	}
	return buf, nil
}

// release gives the body's buffer back to the budget; the body must not be
// used after it.
func (br *bodyReader) release() {
	br.budget.give(br.held)
	br.held = 0
}

// emptyBody reports whether a body read for a route that takes none is one
// the engine reads as no body.
func emptyBody(b []byte) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "{}", "null":
		return true
	}
	return false
}
