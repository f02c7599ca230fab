package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
)

// serveHTTPFloor is the least an HTTP-reading proxy does: net/http's server
// parses the client's request, the request is written on a kept-alive
// connection to the engine, the engine's answer is parsed and copied back.
// No route, profile, check, log or metric: the cost of parsing both HTTP
// messages, which separates any proxy that judges requests from the byte
// relay.
func serveHTTPFloor(sock, engineSock string) int {
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	type upConn struct {
		net.Conn
		br *bufio.Reader
	}
	var mu sync.Mutex
	var idle []*upConn
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		var c *upConn
		if n := len(idle); n > 0 {
			c, idle = idle[n-1], idle[:n-1]
		}
		mu.Unlock()
		if c == nil {
			nc, err := net.Dial("unix", engineSock)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			c = &upConn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10)}
		}
		out := r.Clone(r.Context())
		out.RequestURI, out.Host = "", "docker"
		out.URL.Scheme, out.URL.Host = "http", "docker"
		if err := out.Write(c); err != nil {
			c.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp, err := http.ReadResponse(c.br, out)
		if err != nil {
			c.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, err = io.Copy(w, resp.Body)
		resp.Body.Close()
		if err != nil || resp.Close {
			c.Close()
			return
		}
		mu.Lock()
		idle = append(idle, c)
		mu.Unlock()
	})
	_ = http.Serve(l, h)
	return 0
}
