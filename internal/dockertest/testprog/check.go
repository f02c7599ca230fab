package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// checkMode reports one fact about the container it runs in, for tests
// that show what a request really gives a container (the guard's
// differential tests): it prints one line and exits 0 when the fact holds
// (the file is there, the write went through, the socket answered), 1
// when it does not.
//
//	testprog check id                    uid, gid and groups
//	testprog check status                Seccomp, NoNewPrivs, CapEff, CapBnd
//	testprog check write PATH            create PATH, then remove it
//	testprog check write-keep PATH       create PATH and leave it
//	testprog check read PATH             read PATH, print its first line
//	testprog check ls PATH               list a directory
//	testprog check stat PATH             file type (block, char, socket, dir, file)
//	testprog check unix-get SOCKET PATH  HTTP GET over a unix socket, print the status
//	testprog check userns                start a child in a new user namespace
//	testprog check mountopt PATH         the options of the mount at PATH
//	testprog check mkfile PATH CONTENT   write a file, creating its directories (image builds)
func checkMode(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "testprog check: what to check?")
		return 2
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	fail := func(err error) int {
		fmt.Println("no:", err)
		return 1
	}
	switch args[0] {
	case "id":
		groups, _ := syscall.Getgroups()
		fmt.Printf("uid=%d gid=%d groups=%v\n", syscall.Getuid(), syscall.Getgid(), groups)
		return 0
	case "status":
		f, err := os.Open("/proc/self/status")
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		var out []string
		s := bufio.NewScanner(f)
		for s.Scan() {
			k, v, _ := strings.Cut(s.Text(), ":")
			switch k {
			case "Seccomp", "NoNewPrivs", "CapEff", "CapBnd":
				out = append(out, k+"="+strings.TrimSpace(v))
			}
		}
		fmt.Println(strings.Join(out, " "))
		return 0
	case "write", "write-keep":
		p := arg(1)
		if err := os.WriteFile(p, []byte("hyhome testprog\n"), 0o644); err != nil {
			return fail(err)
		}
		if args[0] == "write" {
			os.Remove(p)
		}
		fmt.Println("ok: wrote", p)
		return 0
	case "read":
		b, err := os.ReadFile(arg(1))
		if err != nil {
			return fail(err)
		}
		if len(b) == 0 {
			fmt.Println("no: empty")
			return 1
		}
		line, _, _ := strings.Cut(string(b), "\n")
		fmt.Printf("ok: %d bytes: %s\n", len(b), line)
		return 0
	case "ls":
		es, err := os.ReadDir(arg(1))
		if err != nil {
			return fail(err)
		}
		if len(es) == 0 {
			fmt.Println("no: empty")
			return 1
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		fmt.Println("ok:", strings.Join(names, " "))
		return 0
	case "stat":
		fi, err := os.Stat(arg(1))
		if err != nil {
			return fail(err)
		}
		m := fi.Mode()
		kind := "file"
		switch {
		case m&os.ModeDevice != 0 && m&os.ModeCharDevice != 0:
			kind = "char"
		case m&os.ModeDevice != 0:
			kind = "block"
		case m&os.ModeSocket != 0:
			kind = "socket"
		case m.IsDir():
			kind = "dir"
		}
		fmt.Println("ok:", kind)
		return 0
	case "unix-get":
		sock, p := arg(1), arg(2)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
		resp, err := c.Get("http://docker" + p)
		if err != nil {
			return fail(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println("ok: status", resp.StatusCode)
		if resp.StatusCode != http.StatusOK {
			return 1
		}
		return 0
	case "userns":
		// A Go program is multithreaded, and unshare(CLONE_NEWUSER) wants
		// one thread: start a child in a new user namespace (clone(2)).
		self, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		cmd := exec.Command(self, "check", "id")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fail(fmt.Errorf("%v: %s", err, out))
		}
		fmt.Println("ok: a child in a new user namespace:", strings.TrimSpace(string(out)))
		return 0
	case "mountopt":
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		opts := ""
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) > 5 && fields[4] == arg(1) {
				opts = fields[5] // the last mount at the path wins
			}
		}
		if opts == "" {
			fmt.Println("no: not a mount point")
			return 1
		}
		fmt.Println("ok:", opts)
		return 0
	case "mkfile":
		if err := os.MkdirAll(filepath.Dir(arg(1)), 0o755); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(arg(1), []byte(arg(2)), 0o644); err != nil {
			return fail(err)
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "testprog check: unknown check %q\n", args[0])
	return 2
}
