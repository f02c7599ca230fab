package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// attackResult is what the slow-body attack did to the guard.
type attackResult struct {
	peak, peakAnon         int64 // bytes of RSS, and of its private part
	conns                  int
	answers                map[int]int
	honestOK, honestFailed int
}

// slowBodies runs issue 11's attack against the guard for d per phase:
// 200 clients on admission and 50 on readonly announce a 4 MiB body and
// send nothing, then 200 clients on admission send theirs 4 KiB every
// 100 ms; each reconnects when the guard closes it. An honest client lists
// containers through readonly meanwhile. The guard's RSS is sampled every
// 50 ms.
func slowBodies(pid int, ro, adm string, d time.Duration) attackResult {
	var peak, peakAnon atomic.Int64
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			r := readRSS(pid)
			if r.total > peak.Load() {
				peak.Store(r.total)
			}
			if r.anon > peakAnon.Load() {
				peakAnon.Store(r.anon)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	var honestOK, honestFailed atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		hc := unixClient(ro)
		defer hc.CloseIdleConnections()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := get(hc, "/v1.41/containers/json"); err != nil {
				honestFailed.Add(1)
			} else {
				honestOK.Add(1)
			}
		}
	}()
	var mu sync.Mutex
	res := attackResult{answers: map[int]int{}}
	phase := func(n int, socket, head string, chunk int) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					conn, err := net.DialTimeout("unix", socket, 10*time.Second)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					stopConn := context.AfterFunc(ctx, func() { conn.Close() })
					if _, err := io.WriteString(conn, head); err == nil && chunk > 0 {
						go func() {
							buf := []byte(strings.Repeat(" ", chunk))
							for {
								time.Sleep(100 * time.Millisecond)
								if _, err := conn.Write(buf); err != nil {
									return
								}
							}
						}()
					}
					resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
					mu.Lock()
					res.conns++
					if err == nil {
						res.answers[resp.StatusCode]++
					}
					mu.Unlock()
					stopConn()
					conn.Close()
				}
			}()
		}
		wg.Wait()
	}
	createHead := "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n"
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); phase(200, adm, createHead, 0) }()
	go func() {
		defer both.Done()
		phase(50, ro, "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: 4194304\r\n\r\n", 0)
	}()
	both.Wait()
	phase(200, adm, createHead, 4<<10)
	close(stop)
	bg.Wait()
	res.peak, res.peakAnon = peak.Load(), peakAnon.Load()
	res.honestOK, res.honestFailed = int(honestOK.Load()), int(honestFailed.Load())
	return res
}
