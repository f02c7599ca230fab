package traefik

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hy-home/hyhome/internal/workload"
)

func TestIsTraefik(t *testing.T) {
	for img, want := range map[string]bool{
		"traefik:v3.1.2": true, "docker.io/library/traefik:v3": true, "traefik@sha256:abc": true, "traefik": true,
		"example/traefik-plugin:1": false, "nginx:1.27": false,
	} {
		if got := IsTraefik(&workload.Workload{Image: img}); got != want {
			t.Errorf("IsTraefik(%q) = %v", img, got)
		}
	}
	if !IsTraefik(&workload.Workload{Image: "custom/gw:1", Command: []string{"/usr/local/bin/traefik", "--ping"}}) {
		t.Error("a traefik binary as the command is Traefik")
	}
}

func TestFlags(t *testing.T) {
	st := parseFlags([]string{
		"--entryPoints.web.address=:80", "--entrypoints.web.http.redirections.entryPoint.to=websecure",
		"--entrypoints.websecure.address", ":443", "--entrypoints.websecure.http.tls.certResolver=le",
		"--providers.file.directory=/etc/traefik/dynamic", "--configFile=/etc/traefik/static.yml",
	})
	if st.entryPoints["web"].RedirectTo != "websecure" || st.entryPoints["web"].TLS {
		t.Errorf("web = %+v", st.entryPoints["web"])
	}
	if ws := st.entryPoints["websecure"]; !ws.TLS || ws.Address != ":443" {
		t.Errorf("websecure = %+v (tls.* options imply TLS)", ws)
	}
	if st.configFile != "/etc/traefik/static.yml" || len(st.fileProvider) != 1 {
		t.Errorf("static = %+v", st)
	}
}

// TestReadGatewayFromMounts reads a static file and a dynamic directory
// through the gateway's bind mounts, with line numbers.
func TestReadGatewayFromMounts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "traefik.yml"), []byte(`entryPoints:
  websecure:
    address: ":8443"
    http:
      tls: {}
providers:
  file:
    directory: /dynamic
`), 0o644)
	dyn := filepath.Join(dir, "dynamic")
	os.Mkdir(dyn, 0o755)
	os.WriteFile(filepath.Join(dyn, "tls.toml"), []byte("[tls.options.default]\n  minVersion = \"VersionTLS12\"\n"), 0o644)
	os.WriteFile(filepath.Join(dyn, "routers.yaml"), []byte("http:\n  routers:\n    api:\n      tls: {}\n      entryPoints: [websecure]\n"), 0o644)
	w := &workload.Workload{Image: "traefik:v3.1", Mounts: []workload.Mount{
		{Type: "bind", Source: filepath.Join(dir, "traefik.yml"), Target: "/etc/traefik/traefik.yml"},
		{Type: "bind", Source: dyn, Target: "/dynamic"},
	}}
	g, err := ReadGateway(w)
	if err != nil {
		t.Fatal(err)
	}
	if !g.EntryPoints["websecure"].TLS {
		t.Errorf("entry points = %+v", g.EntryPoints)
	}
	o := g.TLSOptions["default"]
	if o.MinVersion != "VersionTLS12" || o.Pos.Line != 2 || filepath.Base(o.Pos.File) != "tls.toml" {
		t.Errorf("default options = %+v", o)
	}
	if len(g.Routers) != 1 || !g.Routers[0].TLS || g.Routers[0].Pos.Line != 3 {
		t.Errorf("routers = %+v", g.Routers)
	}
}

func TestReadGatewayRejectsBrokenStaticFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "traefik.yml"), []byte("entryPoints: [unclosed\n"), 0o644)
	w := &workload.Workload{Image: "traefik:v3.1", Mounts: []workload.Mount{{Type: "bind", Source: dir, Target: "/etc/traefik"}}}
	if _, err := ReadGateway(w); err == nil {
		t.Error("a malformed static configuration was accepted")
	}
}

func TestRoutersFromLabels(t *testing.T) {
	w := &workload.Workload{Name: "app", Labels: map[string]string{
		"traefik.enable":                                   "true",
		"traefik.http.routers.a.rule":                      "Host(`a`)",
		"traefik.http.routers.a.tls.certresolver":          "le",
		"traefik.http.routers.b.entrypoints":               "web, websecure",
		"traefik.tcp.routers.db.tls":                       "true",
		"traefik.http.routers.c.tls":                       "false",
		"traefik.http.routers.c.tls.options":               "modern@file",
		"traefik.http.services.a.loadbalancer.server.port": "80",
	}}
	got := map[string]workload.Router{}
	for _, r := range RoutersFromLabels(w) {
		got[r.Protocol+"/"+r.Name] = r
	}
	if len(got) != 4 || !got["http/a"].TLS || got["http/b"].TLS || !got["tcp/db"].TLS {
		t.Errorf("routers = %+v", got)
	}
	if b := got["http/b"]; len(b.EntryPoints) != 2 || b.EntryPoints[1] != "websecure" {
		t.Errorf("b entry points = %v", b.EntryPoints)
	}
	if c := got["http/c"]; c.TLSOptions != "modern" {
		t.Errorf("c options = %q, want the provider suffix dropped", c.TLSOptions)
	}
	implicit := RoutersFromLabels(&workload.Workload{Name: "web", Labels: map[string]string{"traefik.enable": "true"}})
	if len(implicit) != 1 || implicit[0].Name != "web" {
		t.Errorf("traefik.enable alone gives Traefik's implicit router: %+v", implicit)
	}
}
