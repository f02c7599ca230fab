// Command pluginprog is a minimal Docker volume plugin for the guard's
// tests: it answers the plugin handshake on /run/docker/plugins/p.sock so
// that the engine enables it, tries the writes its arguments ask for (to
// show whether a plugin mount is writable), and then serves until stopped.
// Its first argument is a marker the tests find it by in /proc.
//
//	pluginprog MARKER [write:/path ...]
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	for _, a := range os.Args[1:] {
		if p, ok := strings.CutPrefix(a, "write:"); ok {
			if err := os.WriteFile(p, []byte("written by a plugin\n"), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "pluginprog:", err)
			}
		}
	}
	_ = os.MkdirAll("/run/docker/plugins", 0o755)
	ln, err := net.Listen("unix", "/run/docker/plugins/p.sock")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pluginprog:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
		_, _ = io.WriteString(w, `{"Implements":["VolumeDriver"]}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
		_, _ = io.WriteString(w, `{"Err":"pluginprog serves nothing"}`)
	})
	_ = http.Serve(ln, mux)
}
