package guard

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
)

// The guard talks HTTP/1.1 to the engine over its own small pool of kept-
// alive connections instead of net/http's Transport: the request is written
// and the response read in the handler's goroutine, which saves the two
// goroutine hand-offs per request the Transport's read and write loops cost
// (on a two-core host they showed up as most of the guard's CPU per
// request, taken from the engine and its clients).

// maxIdleConns bounds the kept-alive connections to the engine.
const maxIdleConns = 64

// Buffer sizes per connection to the engine: a list answer of a few dozen
// containers fits the reader in one or two reads; requests are small, and
// archives are copied through in chunks of the writer's size. Kept modest
// because idle memory is a target (NFR-RES-01).
const (
	connReadBuf   = 16 << 10
	connWriteBuf  = 4 << 10
	streamBodyBuf = 16 << 10
)

type upConn struct {
	net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

type connPool struct {
	mu   sync.Mutex
	idle []*upConn
	dial func(context.Context) (net.Conn, error)
}

func (p *connPool) get(ctx context.Context) (*upConn, bool, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return &upConn{Conn: nc, br: bufio.NewReaderSize(nc, connReadBuf), bw: bufio.NewWriterSize(nc, connWriteBuf)}, false, nil
}

func (p *connPool) put(c *upConn) {
	p.mu.Lock()
	if len(p.idle) < maxIdleConns {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// closeIdle closes every idle connection.
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// roundTrip sends a request on a pooled connection and returns the
// response, whose body hands the connection back to the pool once it has
// been read to the end (and closes it otherwise). body makes a fresh body
// for each attempt; it is nil when req carries a body that cannot be sent
// twice (a client's archive stream).
//
// A kept-alive connection the engine has closed (it restarted) fails on
// first use; the request is then sent again on a new connection, but only
// when that cannot run it twice: nothing was sent, or it is a GET or HEAD.
func (p *connPool) roundTrip(ctx context.Context, req *http.Request, body func() io.ReadCloser) (*http.Response, error) {
	if body == nil && req.Body != nil && req.Body != http.NoBody {
		return p.roundTripStream(ctx, req)
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Body = body()
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		wrote := false
		err = req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
			wrote = err == nil
		}
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(c.br, req)
		}
		if err != nil {
			stop()
			c.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead
			if attempt == 0 && reused && (!wrote || idempotent) {
				continue
			}
			return nil, err
		}
		resp.Body = &pooledBody{src: resp.Body, c: c, pool: p, stop: stop, keep: !resp.Close && !req.Close}
		return resp, nil
	}
}

// roundTripStream sends a request whose body is the client's stream on a
// new connection, writing the body while the response is read: the engine
// answers an image import or load with progress while it is still reading
// the archive, and would stop reading it if nobody read the progress. The
// connection is not kept: the body may not have been sent to the end.
func (p *connPool) roundTripStream(ctx context.Context, req *http.Request) (*http.Response, error) {
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &upConn{Conn: nc, br: bufio.NewReaderSize(nc, connReadBuf), bw: bufio.NewWriterSize(nc, streamBodyBuf)}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	wrote := make(chan error, 1)
	go func() {
		err := req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
		}
		wrote <- err
	}()
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		stop()
		c.Close()
		if werr := <-wrote; werr != nil && ctx.Err() == nil {
			return nil, werr
		}
		return nil, err
	}
	resp.Body = &pooledBody{src: resp.Body, c: c, pool: p, stop: stop, keep: false}
	return resp, nil
}

// pooledBody returns its connection to the pool when read to the end.
// Closing it early closes the connection: draining an event stream to keep
// a connection would never end.
type pooledBody struct {
	src  io.ReadCloser
	c    *upConn
	pool *connPool
	stop func() bool
	keep bool
	done bool
}

func (b *pooledBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *pooledBody) Close() error {
	b.finish(false)
	return nil
}

func (b *pooledBody) finish(eof bool) {
	if b.done {
		return
	}
	b.done = true
	// stop reports false when the context already closed the connection.
	if b.stop() && eof && b.keep {
		b.pool.put(b.c)
		return
	}
	b.c.Close()
}
