// Command testprog is the one program inside the project's FROM-scratch test
// images. Tests start it in containers to play a compliant service, a
// violating one, a chatty logger, a crashing canary or a metrics target,
// because no image can be pulled on the machines this project is tested on.
//
// Usage:
//
//	testprog sleep                       block until SIGTERM/SIGINT (default)
//	testprog log [flags]                 write lines, then exit or sleep
//	testprog serve -addr :9100           serve /metrics and /healthz
//	testprog probe -url URL              exit 0 when URL answers 2xx (for HEALTHCHECK)
//	testprog cat                         copy stdin to stdout until EOF (for attach/exec tests)
//	testprog alloc [flags]               allocate and touch memory until killed (hits a memory limit)
//	testprog check WHAT [args]           report one fact about the container (see check.go)
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	mode := "sleep"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	switch mode {
	case "sleep":
		waitSignal()
		return 0
	case "log":
		return logMode(args)
	case "serve":
		return serveMode(args)
	case "probe":
		return probeMode(args)
	case "alloc":
		return allocMode(args)
	case "check":
		return checkMode(args)
	case "cat":
		// Proves both directions of a hijacked attach or exec stream.
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "testprog:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "testprog: unknown mode %q\n", mode)
		return 2
	}
}

func waitSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}

// logMode writes -lines lines of the form "<prefix> <token> seq=<n> <pad>" to
// stdout (or alternately to stdout and stderr), at -rate lines per second
// (0: as fast as possible), then exits with -exit, or sleeps with -stay.
func logMode(args []string) int {
	fs := flag.NewFlagSet("log", flag.ContinueOnError)
	lines := fs.Int("lines", 10, "number of lines to write (-1: forever)")
	rate := fs.Float64("rate", 0, "lines per second, 0 for unthrottled")
	token := fs.String("token", "testprog", "token written on every line")
	prefix := fs.String("prefix", "line", "first word of every line")
	both := fs.Bool("both", false, "alternate between stdout and stderr")
	size := fs.Int("size", 0, "pad every line to at least this many bytes")
	exit := fs.Int("exit", 0, "exit status after the last line")
	stay := fs.Bool("stay", false, "sleep until signalled after the last line instead of exiting")
	delay := fs.Duration("delay", 0, "wait this long before the first line")
	partial := fs.Bool("partial", false, "leave the last line without its newline (a process dying mid-line)")
	at := fs.String("start-at", "", "wait until this RFC 3339 time before the first line (after -delay), so that many containers can start logging together")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	time.Sleep(*delay)
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testprog: -start-at:", err)
			return 2
		}
		time.Sleep(time.Until(t))
	}
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	errw := bufio.NewWriterSize(os.Stderr, 64<<10)
	// Pace by schedule rather than with a ticker per line: a ticker cannot
	// fire tens of thousands of times a second, a schedule can be met in
	// small bursts.
	start := time.Now()
	for i := 0; *lines < 0 || i < *lines; i++ {
		if *rate > 0 {
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				out.Flush()
				errw.Flush()
				time.Sleep(d)
			}
		}
		w := out
		if *both && i%2 == 1 {
			w = errw
		}
		line := fmt.Sprintf("%s %s seq=%d", *prefix, *token, i)
		if pad := *size - len(line) - 1; pad > 0 {
			line += " " + strings.Repeat("x", pad)
		}
		if *partial && (*lines < 0 || i == *lines-1) {
			fmt.Fprint(w, line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
	out.Flush()
	errw.Flush()
	if *stay {
		waitSignal()
	}
	return *exit
}

func serveMode(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", ":9100", "listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# HELP testprog_up Always 1 while testprog serves.\n# TYPE testprog_up gauge\ntestprog_up 1\n")
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		waitSignal()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "testprog:", err)
		return 1
	}
	return 0
}

func probeMode(args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9100/healthz", "URL to GET")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testprog:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

// allocMode allocates -step bytes every -every, after -delay, touching every
// page so the memory is really charged to the container's cgroup, until
// -max bytes (0: until the kernel kills it at its memory limit).
func allocMode(args []string) int {
	fs := flag.NewFlagSet("alloc", flag.ContinueOnError)
	step := fs.Int("step", 1<<20, "bytes per allocation")
	every := fs.Duration("every", 20*time.Millisecond, "interval between allocations")
	delay := fs.Duration("delay", 0, "wait this long before the first allocation")
	limit := fs.Int64("max", 0, "stop allocating at this many bytes and sleep (0: never stop)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	time.Sleep(*delay)
	var held [][]byte
	var total int64
	for *limit == 0 || total < *limit {
		b := make([]byte, *step)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		total += int64(*step)
		time.Sleep(*every)
	}
	fmt.Printf("allocated %d bytes in %d blocks\n", total, len(held))
	waitSignal()
	return 0
}
