package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func runIn(t *testing.T, dir string, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"-dir", dir}, args...), envFunc(env), &out, &errb)
	return out.String(), errb.String(), code
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var allFiles = []string{
	"grafana_admin_password", "grafana_secret_key",
	"traefik_dashboard_password", "traefik_dashboard_users",
	"tls.crt", "tls.key", "alertmanager_slack_webhook",
}

func TestCreatesEverySecretWithSafeModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	out, errOut, code := runIn(t, dir, map[string]string{"HYHOME_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/abc"}, "-domain", "home.example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode %o, want 700", got)
	}
	for _, name := range allFiles {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := st.Mode().Perm(); got != 0o444 {
			t.Errorf("%s mode %o, want 444", name, got)
		}
	}
	if !strings.Contains(out, "created from HYHOME_SLACK_WEBHOOK_URL") {
		t.Errorf("report does not say where the webhook came from:\n%s", out)
	}
	if got := strings.TrimSpace(read(t, filepath.Join(dir, "alertmanager_slack_webhook"))); got != "https://hooks.slack.com/services/T0/B0/abc" {
		t.Errorf("webhook file = %q", got)
	}

	// Random tokens: 256 bits, distinct.
	a := strings.TrimSpace(read(t, filepath.Join(dir, "grafana_admin_password")))
	b := strings.TrimSpace(read(t, filepath.Join(dir, "grafana_secret_key")))
	if len(a) != 43 || len(b) != 43 || a == b {
		t.Errorf("tokens %q, %q: want two distinct 43-character base64url strings", a, b)
	}

	// The htpasswd line verifies the operator's password with bcrypt.
	pw := strings.TrimSpace(read(t, filepath.Join(dir, "traefik_dashboard_password")))
	user, hash, ok := strings.Cut(strings.TrimSpace(read(t, filepath.Join(dir, "traefik_dashboard_users"))), ":")
	if !ok || user != "admin" {
		t.Fatalf("users file: user %q", user)
	}
	if !strings.HasPrefix(hash, "$2") {
		t.Errorf("hash %q is not bcrypt", hash)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil {
		t.Errorf("bcrypt hash does not match the password file: %v", err)
	}

	// The certificate covers the domain and its subdomains and matches the key.
	block, _ := pem.Decode([]byte(read(t, filepath.Join(dir, "tls.crt"))))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("grafana.home.example"); err != nil {
		t.Error(err)
	}
	if err := cert.VerifyHostname("home.example"); err != nil {
		t.Error(err)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d > 398*24*time.Hour {
		t.Errorf("validity %v exceeds what browsers accept", d)
	}
	kb, _ := pem.Decode([]byte(read(t, filepath.Join(dir, "tls.key"))))
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		t.Error("tls.key does not match tls.crt")
	}
}

func TestNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := runIn(t, dir, nil); code != 0 {
		t.Fatal(e)
	}
	before := map[string]string{}
	for _, name := range allFiles {
		before[name] = read(t, filepath.Join(dir, name))
	}
	out, e, code := runIn(t, dir, map[string]string{"HYHOME_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/new"})
	if code != 0 {
		t.Fatal(e)
	}
	for _, name := range allFiles {
		if got := read(t, filepath.Join(dir, name)); got != before[name] {
			t.Errorf("%s was rewritten", name)
		}
	}
	if !strings.Contains(out, "PLACEHOLDER") {
		t.Errorf("a kept placeholder webhook must still be reported:\n%s", out)
	}
}

func TestPlaceholderWebhookWhenUnset(t *testing.T) {
	dir := t.TempDir()
	out, e, code := runIn(t, dir, nil)
	if code != 0 {
		t.Fatal(e)
	}
	if got := strings.TrimSpace(read(t, filepath.Join(dir, "alertmanager_slack_webhook"))); got != PlaceholderWebhook {
		t.Errorf("webhook = %q, want the placeholder", got)
	}
	if !strings.Contains(out, "alerts are not delivered") {
		t.Errorf("missing warning:\n%s", out)
	}
}

func TestExistingUsersFileIsTheTruth(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "traefik_dashboard_users"), []byte("ops:$2y$12$abcdefghijklmnopqrstuv\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if _, e, code := runIn(t, dir, nil); code != 0 {
		t.Fatal(e)
	}
	if _, err := os.Stat(filepath.Join(dir, "traefik_dashboard_password")); err == nil {
		t.Error("a password that matches no entry of the kept users file was invented")
	}
}

func TestRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"plain-http webhook": {map[string]string{"HYHOME_SLACK_WEBHOOK_URL": "http://hooks.slack.com/x"}, nil, "must be an https:// URL"},
		"wildcard domain":    {nil, []string{"-domain", "*.example"}, "invalid domain"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, errOut, code := runIn(t, dir, tc.env, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want failure with %q", code, errOut, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("wrote %d files before rejecting the input", len(entries))
			}
		})
	}

	// Half a key pair is an operator mistake to fix, not to paper over.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("x"), 0o444); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runIn(t, dir, nil); code == 0 || !strings.Contains(errOut, "only one of") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
