// Command gencorpus writes a synthetic compose corpus for the lint
// benchmark: -files files of -services services each, in the shapes real
// stacks use (a baseline anchor merged into every service, long and short
// volume and port syntax, environment maps and lists, labels, deploy
// limits, secrets, interpolation) with a mix of compliant and violating
// services so that every rule has work to do.
//
// With -copy DIR it scales a real corpus instead (the lint scale benchmark,
// issue 16): whole copies of DIR, then single-file projects of DIR until
// the copy holds exactly -files compose files that lint reads.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "bench/out/generated", "output directory")
	files := flag.Int("files", 100, "number of compose files")
	services := flag.Int("services", 100, "services per file")
	copyFrom := flag.String("copy", "", "scale this corpus to -files compose files instead of generating one")
	flag.Parse()
	if *copyFrom != "" {
		if err := scale(*copyFrom, *out, *files); err != nil {
			fmt.Fprintln(os.Stderr, "gencorpus:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*out, *files, *services); err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(1)
	}
}

func run(out string, nfiles, nservices int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for f := 0; f < nfiles; f++ {
		dir := filepath.Join(out, fmt.Sprintf("stack-%04d", f))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, "compose.yaml"), f, nservices); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TAG=1.4.2\nAPP_UID=10001\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, f, n int) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(fh)
	fmt.Fprintf(w, `name: stack-%04d
x-security-baseline: &security-baseline
  security_opt: ["no-new-privileges:true"]
  cap_drop: [ALL]
  read_only: true
x-labels: &infra-labels
  hy-home.tier: infra
  hy-home.job: infra
services:
`, f)
	for s := 0; s < n; s++ {
		name := fmt.Sprintf("svc-%04d", s)
		switch s % 4 {
		case 0: // compliant, long syntax
			fmt.Fprintf(w, `  %s:
    <<: *security-baseline
    image: registry.example.com/team/%s:${TAG}
    user: "${APP_UID}:${APP_UID}"
    environment:
      LOG_LEVEL: info
      DB_PASSWORD_FILE: /run/secrets/db_password
    secrets: [db_password]
    volumes:
      - type: bind
        source: ./config/%s
        target: /etc/app
        read_only: true
      - data-%d:/var/lib/app
    networks: [infra_net]
    healthcheck:
      test: ["CMD", "/app", "probe"]
      interval: 30s
    deploy:
      replicas: 1
      resources:
        limits:
          memory: 64M
          pids: 256
    labels:
      <<: *infra-labels
      hy-home.metrics.port: "9100"
`, name, name, name, s)
		case 1: // violating, short syntax
			fmt.Fprintf(w, `  %s:
    image: example/%s:latest
    user: root
    privileged: true
    cap_add: [NET_ADMIN]
    environment:
      - POSTGRES_PASSWORD=changeme
      - API_TOKEN=${API_TOKEN:-dev}
    ports:
      - "%d:80"
    volumes:
      - ./data/%s:/data
      - /var/run/docker.sock:/var/run/docker.sock
`, name, name, 20000+s, name)
		case 2: // mixed: anchor merged, some gaps
			fmt.Fprintf(w, `  %s:
    <<: *security-baseline
    image: example/%s:2.1.0
    user: "1000"
    network_mode: service:svc-%04d
    mem_limit: 128m
    labels:
      - hy-home.tier=app
      - traefik.enable=true
      - traefik.http.routers.%s.rule=Host(%s)
      - traefik.http.routers.%s.tls=true
`, name, name, s-2, name, "`"+name+".example.com`", name)
		default: // host namespaces with an exemption label
			fmt.Fprintf(w, `  %s:
    <<: *security-baseline
    image: prom/node-exporter:v1.8.2
    user: "65534:65534"
    pid: host
    network_mode: host
    mem_limit: 32m
    labels:
      hy-home.tier: infra
      hy-home.adr: ADR-0001
      hy-home.exempt: host-namespaces
      hy-home.metrics.port: "9100"
`, name)
		}
	}
	fmt.Fprintf(w, "networks:\n  infra_net:\n    name: infra_net\nvolumes:\n")
	for s := 0; s < n; s += 4 {
		fmt.Fprintf(w, "  data-%d: {}\n", s)
	}
	fmt.Fprintf(w, "secrets:\n  db_password:\n    file: ./secrets/db_password.txt\n")
	if err := w.Flush(); err != nil {
		return err
	}
	return fh.Close()
}
