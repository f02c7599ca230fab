package docker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// cliEnv isolates a test from the machine's docker CLI settings: an empty
// config directory and none of the variables set.
func cliEnv(t *testing.T) string {
	t.Helper()
	cfg := t.TempDir()
	for _, k := range []string{"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_API_VERSION"} {
		t.Setenv(k, "")
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	t.Setenv("HOME", t.TempDir())
	return cfg
}

// writeContext stores a CLI context the way `docker context create` does.
func writeContext(t *testing.T, cfg, name, meta string) {
	t.Helper()
	sum := sha256.Sum256([]byte(name))
	dir := filepath.Join(cfg, "contexts", "meta", hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
}

func contextMeta(host string) string {
	return `{"Name":"x","Metadata":{},"Endpoints":{"docker":{"Host":"` + host + `","SkipTLSVerify":false}}}`
}

// TestResolveOrder: the flag, then DOCKER_HOST, then DOCKER_CONTEXT, then
// the CLI's current context, then the platform default; each answer says
// where it came from.
func TestResolveOrder(t *testing.T) {
	cfg := cliEnv(t)
	writeContext(t, cfg, "remote", contextMeta("tcp://10.0.0.9:2376"))
	writeContext(t, cfg, "current", contextMeta("ssh://me@host"))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"currentContext":"current"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(flag string, want Endpoint) {
		t.Helper()
		got, err := Resolve(flag)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v", flag, got, err, want)
		}
	}
	t.Setenv("DOCKER_HOST", "unix:///env.sock")
	t.Setenv("DOCKER_CONTEXT", "remote")
	check("unix:///flag.sock", Endpoint{Host: "unix:///flag.sock", From: "flag"})
	check("", Endpoint{Host: "unix:///env.sock", From: "DOCKER_HOST"})
	t.Setenv("DOCKER_HOST", "")
	check("", Endpoint{Host: "tcp://10.0.0.9:2376", From: "context remote"})
	t.Setenv("DOCKER_CONTEXT", "")
	check("", Endpoint{Host: "ssh://me@host", From: "context current"})
	t.Setenv("DOCKER_CONTEXT", "default") // the CLI's name for the built-in context
	check("", Endpoint{Host: client.DefaultDockerHost, From: "default"})
	if err := os.Remove(filepath.Join(cfg, "config.json")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONTEXT", "")
	check("", Endpoint{Host: client.DefaultDockerHost, From: "default"})
}

// TestResolveErrors: a broken CLI configuration is an error that names the
// file or the context, never a silent fallback to another engine.
func TestResolveErrors(t *testing.T) {
	cfg := cliEnv(t)
	writeContext(t, cfg, "nodocker", `{"Name":"nodocker","Endpoints":{"kubernetes":{"Host":"https://k"}}}`)
	writeContext(t, cfg, "garbled", `{"Endpoints":`)
	for _, tc := range []struct {
		context, config string
		want            []string
	}{
		{"missing", "", []string{`docker context "missing" not found`, "meta.json"}},
		{"nodocker", "", []string{`docker context "nodocker" has no docker endpoint host`}},
		{"garbled", "", []string{`reading docker context "garbled"`, "meta.json"}},
		{"", `{"currentContext":`, []string{"reading docker CLI config", filepath.Join(cfg, "config.json")}},
	} {
		t.Setenv("DOCKER_CONTEXT", tc.context)
		_ = os.Remove(filepath.Join(cfg, "config.json"))
		if tc.config != "" {
			if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ep, err := Resolve("")
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("context %q, config %q: Resolve = %+v, %v; want an error containing %q", tc.context, tc.config, ep, err, w)
			}
		}
	}
}

// fakeDaemon answers /_ping as the engine does, with its API version.
func fakeDaemon(apiVersion string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", apiVersion)
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			_, _ = w.Write([]byte("OK"))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
}

// TestConnectUnixSocket: a daemon on a unix socket named by DOCKER_HOST is
// pinged and its older API version negotiated; a socket nobody serves is an
// error naming the host and where it came from.
func TestConnectUnixSocket(t *testing.T) {
	cliEnv(t)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fakeDaemon("1.41"), ReadHeaderTimeout: time.Minute}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, ep, err := Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ep.From != "DOCKER_HOST" || c.ClientVersion() != "1.41" {
		t.Errorf("endpoint %+v, negotiated version %s; want DOCKER_HOST and 1.41", ep, c.ClientVersion())
	}

	gone := filepath.Join(t.TempDir(), "none.sock")
	_, _, err = Connect(ctx, "unix://"+gone)
	if err == nil || !strings.Contains(err.Error(), "docker engine at unix://"+gone+" (flag) is not reachable") {
		t.Errorf("unserved socket: %v", err)
	}
}

// testPKI writes a CA, and a server and a client certificate it signed, in
// the file names the docker CLI reads from DOCKER_CERT_PATH.
func testPKI(t *testing.T) (certDir string, serverTLS *tls.Config) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hyhome test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "hyhome test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	pemFile := func(path, kind string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certDir = t.TempDir()
	cliDER, cliKey := issue(2, x509.ExtKeyUsageClientAuth)
	kb, _ := x509.MarshalECPrivateKey(cliKey)
	pemFile(filepath.Join(certDir, "ca.pem"), "CERTIFICATE", caDER)
	pemFile(filepath.Join(certDir, "cert.pem"), "CERTIFICATE", cliDER)
	pemFile(filepath.Join(certDir, "key.pem"), "EC PRIVATE KEY", kb)

	srvDER, srvKey := issue(3, x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverTLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
	return certDir, serverTLS
}

// TestConnectTLS: DOCKER_CERT_PATH and DOCKER_TLS_VERIFY as the docker CLI
// reads them: the client presents its certificate (the daemon requires
// one) and verifies the daemon's against ca.pem; a client of another PKI
// is refused; without DOCKER_CERT_PATH the client speaks plain HTTP, which
// a TLS daemon refuses; a certificate
// directory without the files is an error naming DOCKER_CERT_PATH.
func TestConnectTLS(t *testing.T) {
	cliEnv(t)
	certDir, serverTLS := testPKI(t)
	srv := httptest.NewUnstartedServer(fakeDaemon("1.45"))
	srv.TLS = serverTLS
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := "tcp://" + srv.Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Setenv("DOCKER_CERT_PATH", certDir)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	c, _, err := Connect(ctx, host)
	if err != nil {
		t.Fatalf("mutual TLS with DOCKER_CERT_PATH: %v", err)
	}
	c.Close()

	t.Setenv("DOCKER_CERT_PATH", "")
	if _, _, err := Connect(ctx, host); err == nil {
		t.Error("connected to a TLS daemon that requires a client certificate without presenting one")
	}

	otherDir, _ := testPKI(t) // a client certificate and CA of another PKI
	t.Setenv("DOCKER_CERT_PATH", otherDir)
	if _, _, err := Connect(ctx, host); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("a client of another PKI (its CA and its certificate) got through: %v", err)
	}

	t.Setenv("DOCKER_CERT_PATH", t.TempDir())
	if _, _, err := New(host); err == nil || !strings.Contains(err.Error(), "DOCKER_CERT_PATH") {
		t.Errorf("empty certificate directory: %v", err)
	}
}
