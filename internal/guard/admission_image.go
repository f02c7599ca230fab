package guard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/reference"

	"github.com/hy-home/hyhome/internal/engine"
	"github.com/hy-home/hyhome/internal/workload"
)

// infraTiers are the hy-home.tier values of the stack's infrastructure: the
// services whose images carry ADR exemptions (the guard holds the socket)
// and whose names other services resolve (loki, prometheus, traefik).
var infraTiers = map[string]bool{"infra": true, "gateway": true}

// imageTag judges the requests that give an image a reference chosen by the
// client: POST /images/{name}/tag (repo, tag), POST /commit (repo, tag) and
// an import, POST /images/create with fromSrc (repo, tag). A reference that
// an infrastructure container was created from is refused unless the
// profile permits retag-in-use: the next time that container is recreated
// it runs whatever image now has the name, with the exemptions it was
// deployed with. A pull (fromImage) is not judged: it names the registry's
// content, not the client's.
func (a *admission) imageTag(ctx context.Context, p *Profile, t *target) verdict {
	if t.route.Template == "/images/create" && !importRequest(t.query) {
		return verdict{}
	}
	targets, err := tagTargets(t.query)
	if err != nil {
		return refused(deny(http.StatusForbidden, reasonQuery, "%s: %v", t.route.Name, err))
	}
	if len(targets) == 0 || p.Permits(PermitRetagInUse) {
		return verdict{}
	}
	infra, err := a.engine.infraContainers(ctx)
	if err != nil {
		return refused(lookupDenial("containers", "of the infrastructure tiers", err, ""))
	}
	inUse := map[string]string{} // normalised reference → a container that runs it
	for _, c := range infra {
		if ref, ok := normalisedImageRef(c.Image); ok {
			inUse[ref] = containerName(c.Names, c.ID)
		}
	}
	for _, ref := range targets {
		if who, taken := inUse[ref]; taken {
			return refused(deny(http.StatusForbidden, reasonPermit,
				"%s: %s is the image of infrastructure container %s; retagging it would replace what that container runs when it is recreated (profile %s does not permit %s)",
				t.route.Name, reference.FamiliarString(mustParse(ref)), who, p.Name, PermitRetagInUse))
		}
	}
	return verdict{}
}

func mustParse(ref string) reference.Named {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		panic("guard: a normalised reference does not parse: " + ref)
	}
	return n
}

// importRequest reports whether POST /images/create may import (fromSrc)
// rather than pull: the engine pulls only when its first fromImage value is
// not empty, so any other spelling or an empty value is judged as an
// import.
func importRequest(q url.Values) bool {
	from := q["fromImage"]
	if len(from) == 0 || from[0] == "" {
		return true
	}
	for _, v := range queryValues(q, "fromImage") {
		if v == "" {
			return true
		}
	}
	return false
}

// maxTagValues bounds the repo and the tag parameters of one request.
const maxTagValues = 8

// tagTargets lists, normalised, every reference a tag, commit or import
// may write: each repo value with each tag value, in every spelling of the
// parameters, read as the engine reads them (a tag parameter replaces a tag
// in repo; none means "latest"). A reference that does not parse is an
// error: the guard does not guess what the engine would make of it.
func tagTargets(q url.Values) ([]string, error) {
	repos := queryValues(q, "repo")
	tags := queryValues(q, "tag")
	// The engine reads one of each; every pairing is judged here, so the
	// pairs are bounded (thousands of each fit in a query string).
	for _, p := range []struct {
		name string
		n    int
	}{{"repo", len(repos)}, {"tag", len(tags)}} {
		if p.n > maxTagValues {
			return nil, fmt.Errorf("%d %s parameters: the engine reads one, and the guard judges at most %d", p.n, p.name, maxTagValues)
		}
	}
	if len(tags) == 0 {
		tags = []string{""}
	}
	var out []string
	for _, r := range repos {
		if r == "" {
			continue
		}
		named, err := reference.ParseNormalizedNamed(r)
		if err != nil {
			return nil, fmt.Errorf("repository %q: %v", r, err)
		}
		for _, tg := range tags {
			ref := named
			if tg != "" {
				if ref, err = reference.WithTag(reference.TrimNamed(named), tg); err != nil {
					return nil, fmt.Errorf("tag %q: %v", tg, err)
				}
			}
			if _, ok := ref.(reference.Canonical); ok {
				return nil, fmt.Errorf("%q: an image cannot be tagged with a digest", r)
			}
			out = append(out, reference.TagNameOnly(ref).String())
		}
	}
	return out, nil
}

// normalisedImageRef is a reference as the engine stores it (docker.io/
// library/name:latest); image IDs and digests are not references a client
// can retag over.
func normalisedImageRef(s string) (string, bool) {
	if s == "" || strings.HasPrefix(s, "sha256:") {
		return "", false
	}
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", false
	}
	if _, ok := ref.(reference.Canonical); ok {
		return "", false
	}
	return reference.TagNameOnly(ref).String(), true
}

func containerName(names []string, id string) string {
	if len(names) > 0 {
		return strings.TrimPrefix(names[0], "/")
	}
	return engine.ShortID(id)
}

// isInfra reports whether a container's labels put it in an infrastructure
// tier.
func isInfra(labels map[string]string) bool { return infraTiers[labels[workload.LabelTier]] }
