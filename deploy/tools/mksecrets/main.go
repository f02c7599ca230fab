// Command mksecrets creates the Docker secrets the hy-home stack needs and
// that do not exist yet, under deploy/secrets/ (git-ignored). It never
// overwrites a file: rotating a secret means deleting it and running
// `make up` (or this command) again.
//
//	go run ./deploy/tools/mksecrets -dir deploy/secrets -domain home.example
//
// What it writes, and why:
//   - grafana_admin_password, grafana_secret_key: 32 random bytes each,
//     base64url, read by Grafana through *_FILE variables.
//   - traefik_dashboard_password (for the operator, never mounted) and
//     traefik_dashboard_users, the bcrypt htpasswd line Traefik's basicAuth
//     middleware reads (Traefik accepts bcrypt, MD5 and SHA-1 only; bcrypt
//     is the one worth having).
//   - tls.crt / tls.key: a self-signed ECDSA P-256 certificate for DOMAIN
//     and *.DOMAIN, Traefik's default certificate until ACME (or your own
//     certificate) replaces it.
//   - alertmanager_slack_webhook: HYHOME_SLACK_WEBHOOK_URL if set, else a
//     placeholder and a warning (alerts are not delivered until it is set).
//
// Modes: the directory is 0700 so no other host user can reach the files;
// the files are 0444 because compose bind-mounts them with their host mode
// and each service reads its secret under its own, different UID.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/hy-home/hyhome/internal/atomicfile"
)

// PlaceholderWebhook is written when no Slack webhook is configured. It is a
// syntactically valid URL that Slack will reject, so Alertmanager's
// notification failures make the missing configuration visible.
const PlaceholderWebhook = "https://hooks.slack.com/services/REPLACE/WITH/YOUR-WEBHOOK"

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o444
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

// config is what one run needs; time and randomness come from outside so
// tests can pin them.
type config struct {
	dir     string
	domain  string
	user    string
	webhook string
	now     time.Time
	rand    io.Reader
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("mksecrets", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", "deploy/secrets", "directory for the secret files")
	domain := fl.String("domain", envOr(getenv, "HYHOME_DOMAIN", "hyhome.localhost"), "domain of the self-signed certificate (also *.domain)")
	user := fl.String("dashboard-user", "admin", "user name for Traefik's basic auth")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	cfg := config{
		dir:     *dir,
		domain:  *domain,
		user:    *user,
		webhook: strings.TrimSpace(getenv("HYHOME_SLACK_WEBHOOK_URL")),
		now:     time.Now(),
		rand:    rand.Reader,
	}
	report, err := generate(cfg)
	for _, line := range report {
		fmt.Fprintln(stdout, line)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mksecrets: "+err.Error())
		return 1
	}
	return 0
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// generate creates every missing secret in cfg.dir and returns one report
// line per file.
func generate(cfg config) ([]string, error) {
	if cfg.domain == "" || strings.ContainsAny(cfg.domain, " /*") {
		return nil, fmt.Errorf("invalid domain %q", cfg.domain)
	}
	if cfg.webhook != "" {
		if err := checkWebhook(cfg.webhook); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.dir, dirMode); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; tighten it.
	if err := os.Chmod(cfg.dir, dirMode); err != nil {
		return nil, fmt.Errorf("restricting %s: %w", cfg.dir, err)
	}

	var report []string
	note := func(name, what string) { report = append(report, fmt.Sprintf("%-28s %s", name, what)) }

	for _, name := range []string{"grafana_admin_password", "grafana_secret_key"} {
		created, err := ensure(cfg.dir, name, func() ([]byte, error) { return randomToken(cfg.rand) })
		if err != nil {
			return report, err
		}
		note(name, state(created))
	}

	// The htpasswd line is derived from the operator's password. An existing
	// users file is the truth (it may hold users added by hand): then no new
	// password is invented that would not match it.
	if exists(filepath.Join(cfg.dir, "traefik_dashboard_users")) {
		note("traefik_dashboard_users", "kept")
	} else {
		created, err := ensure(cfg.dir, "traefik_dashboard_password", func() ([]byte, error) { return randomToken(cfg.rand) })
		if err != nil {
			return report, err
		}
		note("traefik_dashboard_password", state(created)+" (user "+cfg.user+"; for you, not mounted)")
		if _, err := ensure(cfg.dir, "traefik_dashboard_users", func() ([]byte, error) {
			pw, err := os.ReadFile(filepath.Join(cfg.dir, "traefik_dashboard_password"))
			if err != nil {
				return nil, err
			}
			return htpasswdLine(cfg.user, strings.TrimSpace(string(pw)))
		}); err != nil {
			return report, err
		}
		note("traefik_dashboard_users", "created")
	}

	crt, key := filepath.Join(cfg.dir, "tls.crt"), filepath.Join(cfg.dir, "tls.key")
	switch haveCrt, haveKey := exists(crt), exists(key); {
	case haveCrt && haveKey:
		note("tls.crt, tls.key", "kept")
	case haveCrt != haveKey:
		return report, fmt.Errorf("only one of %s and %s exists: remove it or add the other", crt, key)
	default:
		certPEM, keyPEM, err := selfSigned(cfg.domain, cfg.now, cfg.rand)
		if err != nil {
			return report, err
		}
		if err := writeNew(key, keyPEM); err != nil {
			return report, err
		}
		if err := writeNew(crt, certPEM); err != nil {
			return report, err
		}
		note("tls.crt, tls.key", "created (self-signed for "+cfg.domain+" and *."+cfg.domain+")")
	}

	hook := filepath.Join(cfg.dir, "alertmanager_slack_webhook")
	switch {
	case exists(hook):
		current, err := os.ReadFile(hook)
		if err != nil {
			return report, err
		}
		what := "kept"
		if strings.TrimSpace(string(current)) == PlaceholderWebhook {
			what = "kept: PLACEHOLDER, alerts are not delivered (delete it and set HYHOME_SLACK_WEBHOOK_URL)"
		} else if cfg.webhook != "" && strings.TrimSpace(string(current)) != cfg.webhook {
			what = "kept: differs from HYHOME_SLACK_WEBHOOK_URL (delete the file to replace it)"
		}
		note("alertmanager_slack_webhook", what)
	case cfg.webhook != "":
		if err := writeNew(hook, []byte(cfg.webhook+"\n")); err != nil {
			return report, err
		}
		note("alertmanager_slack_webhook", "created from HYHOME_SLACK_WEBHOOK_URL")
	default:
		if err := writeNew(hook, []byte(PlaceholderWebhook+"\n")); err != nil {
			return report, err
		}
		note("alertmanager_slack_webhook", "created: PLACEHOLDER, alerts are not delivered until you set HYHOME_SLACK_WEBHOOK_URL and recreate it")
	}
	return report, nil
}

func state(created bool) string {
	if created {
		return "created"
	}
	return "kept"
}

// checkWebhook accepts only https URLs: the webhook carries alert contents
// and is itself a credential.
func checkWebhook(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return errors.New("HYHOME_SLACK_WEBHOOK_URL must be an https:// URL")
	}
	return nil
}

// ensure writes name in dir with gen() unless it already exists (and is
// not empty). It reports whether it created the file.
func ensure(dir, name string, gen func() ([]byte, error)) (bool, error) {
	path := filepath.Join(dir, name)
	if exists(path) {
		return false, nil
	}
	data, err := gen()
	if err != nil {
		return false, fmt.Errorf("generating %s: %w", name, err)
	}
	return true, writeNew(path, data)
}

func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() > 0
}

// writeNew writes data to path through a temporary file and a rename, so a
// crash never leaves a truncated secret behind.
func writeNew(path string, data []byte) error {
	return atomicfile.WriteBytes(path, fileMode, data)
}

// randomToken is 32 bytes (256 bits) of randomness, base64url without
// padding: safe in files, URLs and htpasswd lines.
func randomToken(r io.Reader) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b) + "\n"), nil
}

func htpasswdLine(user, password string) ([]byte, error) {
	if user == "" || strings.ContainsAny(user, ":\n") {
		return nil, fmt.Errorf("invalid user name %q", user)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 12)
	if err != nil {
		return nil, err
	}
	return []byte(user + ":" + string(hash) + "\n"), nil
}

// selfSigned returns a PEM certificate and PKCS#8 key for domain and
// *.domain, valid from an hour ago (clock skew) for 397 days, the longest
// validity browsers accept.
func selfSigned(domain string, now time.Time, r io.Reader) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"hy-home (self-signed)"}},
		DNSNames:              []string{domain, "*." + domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(397 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(r, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}
