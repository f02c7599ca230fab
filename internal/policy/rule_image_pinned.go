package policy

import (
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// image-pinned: an image is pinned by a digest, or by a tag with a version
// number in it. A tag whose parts (split at `.`, `-`, `_`, `+`) never start
// with a digit or with `v` and a digit names a moving line, not a release:
// latest, latest-alpine, client-latest, main, master, dev, nightly, edge,
// stable, lts-alpine, alpine, bookworm. A `latest` part moves whatever else
// the tag says. A part of seven or more hex digits, one of them a digit, is
// a commit and pins too (sha-1a2b3c4).
var ruleImagePinned = &Rule{
	ID:           "image-pinned",
	Requirements: []string{"CIS-DOCKER"},
	Severity:     Warning,
	Description:  "Images should be pinned to a digest or a tag with a version number, not a moving tag.",
	Remediation:  "Use an explicit version tag (e.g. `traefik:v3.1.2`), ideally with its `@sha256:` digest.",
	Requests:     []Request{RequestCreate},
	Check:        checkImagePinned,
}

// imageTag returns the tag of an image reference ("" when none) and
// whether it has a digest. The grammar (distribution/reference) puts the
// tag after the last colon of the last path component, before any
// `@digest`, so a registry port (registry:5000/app) is never a tag. It is
// read by hand: the grammar's regular expression costs more than the rule.
func imageTag(ref string) (tag string, digest bool) {
	name, _, digest := strings.Cut(ref, "@")
	last := name[strings.LastIndex(name, "/")+1:]
	_, tag, _ = strings.Cut(last, ":")
	return tag, digest
}

// tagMoves reports whether a tag names a moving line rather than a release.
func tagMoves(tag string) bool {
	parts := strings.FieldsFunc(strings.ToLower(tag), func(r rune) bool { return r == '.' || r == '-' || r == '_' || r == '+' })
	versioned := false
	for _, p := range parts {
		switch {
		case p == "latest":
			return true
		case p[0] >= '0' && p[0] <= '9',
			len(p) > 1 && p[0] == 'v' && p[1] >= '0' && p[1] <= '9',
			isCommit(p):
			versioned = true
		}
	}
	return !versioned
}

func isCommit(p string) bool {
	if len(p) < 7 {
		return false
	}
	digit := false
	for _, r := range p {
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'a' && r <= 'f':
		default:
			return false
		}
	}
	return digit
}

func checkImagePinned(w *workload.Workload, _ *Env) []Violation {
	if w.Image == "" || strings.HasPrefix(w.Image, "sha256:") { // an image ID
		return nil
	}
	tag, digest := imageTag(w.Image)
	switch {
	case digest:
		return nil
	case tag == "":
		return one(fmt.Sprintf("image %s has no tag (means latest)", w.Image), w.At(w.ImagePos))
	case tagMoves(tag):
		return one(fmt.Sprintf("image %s is not pinned: tag %q has no version number, it moves", w.Image, tag), w.At(w.ImagePos))
	}
	return nil
}
