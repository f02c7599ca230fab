// Package docker connects to a Docker Engine the way the docker CLI does:
// an explicit host, then DOCKER_HOST, then DOCKER_CONTEXT or the CLI's
// current context, then the local socket. The API version is negotiated on
// the first request, because users' engines are often older than this client.
//
// It owns connection settings only; it must not interpret containers or
// services (that is the workload sources' job).
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/moby/client"
)

// Endpoint says where the engine is and how that was decided.
type Endpoint struct {
	Host string // e.g. unix:///var/run/docker.sock, tcp://127.0.0.1:2375
	From string // "flag", "DOCKER_HOST", "context <name>", "default"
}

// Resolve picks the engine endpoint: host (from a --host flag) wins, then
// DOCKER_HOST, then the docker CLI context named by DOCKER_CONTEXT or by
// currentContext in the CLI's config.json, then the platform default.
func Resolve(host string) (Endpoint, error) {
	if host != "" {
		return Endpoint{Host: host, From: "flag"}, nil
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return Endpoint{Host: h, From: "DOCKER_HOST"}, nil
	}
	name := os.Getenv("DOCKER_CONTEXT")
	cfgDir := os.Getenv("DOCKER_CONFIG")
	if cfgDir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfgDir = filepath.Join(home, ".docker")
		}
	}
	if name == "" && cfgDir != "" {
		var cfg struct {
			CurrentContext string `json:"currentContext"`
		}
		if b, err := os.ReadFile(filepath.Join(cfgDir, "config.json")); err == nil {
			if err := json.Unmarshal(b, &cfg); err != nil {
				return Endpoint{}, fmt.Errorf("reading docker CLI config %s: %w", filepath.Join(cfgDir, "config.json"), err)
			}
			name = cfg.CurrentContext
		}
	}
	if name != "" && name != "default" {
		h, err := contextHost(cfgDir, name)
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{Host: h, From: "context " + name}, nil
	}
	return Endpoint{Host: client.DefaultDockerHost, From: "default"}, nil
}

// contextHost reads the docker endpoint of a CLI context from
// <config>/contexts/meta/<sha256(name)>/meta.json, the CLI's context store.
func contextHost(cfgDir, name string) (string, error) {
	sum := sha256.Sum256([]byte(name))
	p := filepath.Join(cfgDir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("docker context %q not found (no %s)", name, p)
		}
		return "", fmt.Errorf("reading docker context %q: %w", name, err)
	}
	var meta struct {
		Endpoints map[string]struct {
			Host string `json:"Host"`
		} `json:"Endpoints"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", fmt.Errorf("reading docker context %q from %s: %w", name, p, err)
	}
	h := meta.Endpoints["docker"].Host
	if h == "" {
		return "", fmt.Errorf("docker context %q has no docker endpoint host (%s)", name, p)
	}
	return h, nil
}

// New returns an engine client for the resolved endpoint with API version
// negotiation (the client negotiates on its first request unless
// DOCKER_API_VERSION pins one) and TLS settings from
// DOCKER_CERT_PATH/DOCKER_TLS_VERIFY.
func New(host string) (*client.Client, Endpoint, error) {
	ep, err := Resolve(host)
	if err != nil {
		return nil, ep, err
	}
	c, err := client.New(
		client.WithTLSClientConfigFromEnv(),
		client.WithHost(ep.Host),
		client.WithAPIVersionFromEnv(),
	)
	if err != nil {
		return nil, ep, fmt.Errorf("docker engine at %s (%s): %w", ep.Host, ep.From, err)
	}
	return c, ep, nil
}

// Connect is New followed by a ping, so that an unreachable engine or a
// permission problem surfaces as one clear error before any work starts.
func Connect(ctx context.Context, host string) (*client.Client, Endpoint, error) {
	c, ep, err := New(host)
	if err != nil {
		return nil, ep, err
	}
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, ep, fmt.Errorf("docker engine at %s (%s) is not reachable: %w", ep.Host, ep.From, err)
	}
	return c, ep, nil
}
