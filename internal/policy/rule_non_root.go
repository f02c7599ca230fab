package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hy-home/hyhome/internal/workload"
)

// non-root: the process does not run as uid 0, by its own user or the image's.
var ruleNonRoot = &Rule{
	ID:           "non-root",
	Requirements: []string{"SEC-IDENTITY"},
	Severity:     Error,
	Description:  "Containers must run as a non-root user.",
	Remediation:  "Set `user:` to the image's documented non-root UID:GID (e.g. `user: \"65534:65534\"`).",
	Requests:     []Request{RequestCreate, RequestExec},
	Check:        checkNonRoot,
}

func checkNonRoot(w *workload.Workload, _ *Env) []Violation {
	user, fromImage, known := w.EffectiveUser()
	at := w.At(w.UserPos)
	if fromImage {
		at = w.Pos
	}
	if id := w.Identity; id != nil {
		from := ""
		if id.From != "" {
			from = " in " + id.From
		}
		switch {
		case id.Err != "":
			return one(fmt.Sprintf("user %q does not resolve%s as the engine resolves it (%s): the engine refuses to start it, or runs whoever the name means once the container's files change", user, from, id.Err), at)
		case id.UID != 0:
			return nil
		case fromImage && strings.TrimSpace(user) == "":
			return one(fmt.Sprintf("sets no user and image %s has no USER: runs as root", w.Image), at)
		case workload.RootUser(user):
			return one(fmt.Sprintf("runs as root (user: %q)", user), at)
		default:
			return one(fmt.Sprintf("runs as root: user %q is uid 0%s", user, from), at)
		}
	}
	switch {
	case !known:
		return one("sets no user: the image's default user applies, which is root unless the image says otherwise", w.Pos)
	case fromImage && strings.TrimSpace(user) == "":
		return one(fmt.Sprintf("sets no user and image %s has no USER: runs as root", w.Image), w.Pos)
	case fromImage && workload.RootUser(user):
		return one(fmt.Sprintf("sets no user and image %s defaults to %q: runs as root", w.Image, user), w.Pos)
	case !fromImage && workload.RootUser(user):
		return one(fmt.Sprintf("runs as root (user: %q)", user), w.At(w.UserPos))
	case !numericUserOnly(user, w.GroupAdd):
		// A name means whatever the image's /etc/passwd says at start,
		// which this source cannot read. The guard resolves names itself
		// (Identity) and refuses those it cannot.
		v := Violation{Message: fmt.Sprintf("user %q (group_add %v) names users or groups that only the image's /etc/passwd and /etc/group resolve, which this source cannot read: write numeric IDs (UID:GID)", user, w.GroupAdd), Pos: w.At(w.GroupAddPos)}
		if w.GroupAdd == nil {
			v.Message = fmt.Sprintf("user %q is a name that only the image's /etc/passwd resolves, which this source cannot read: write the numeric UID:GID", user)
			v.Pos = at
		}
		if w.Kind != workload.KindRequest {
			v.Severity = Warning
		}
		return []Violation{v}
	}
	return nil
}

// numericUserOnly reports whether a user spec and extra groups hold only
// IDs, so that nothing but the primary and supplementary groups depends on
// the image's files ("1000" takes its group from /etc/passwd, which can
// not make it root).
func numericUserOnly(spec string, groupAdd []string) bool {
	u, g, hasGroup := strings.Cut(spec, ":")
	if _, err := strconv.Atoi(u); err != nil {
		return false
	}
	if hasGroup {
		if _, err := strconv.Atoi(strings.Split(g, ":")[0]); err != nil {
			return false
		}
	}
	for _, a := range groupAdd {
		if _, err := strconv.Atoi(a); err != nil {
			return false
		}
	}
	return true
}
