package workload

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
)

// Identity is what the engine runs a container's process as: the user and
// groups of daemon/oci_linux.go getUser, which resolves the user spec with
// moby/sys/user (formerly runc's libcontainer/user) against the
// container's own /etc/passwd and /etc/group.
type Identity struct {
	UID, GID uint32
	// Groups are the supplementary groups: the user's memberships in
	// /etc/group (when the spec names no group) and GroupAdd.
	Groups []uint32
	// Err is why the engine would refuse to start the process (a user or
	// group name the files do not have, an ID out of range); the IDs mean
	// nothing then.
	Err string
	// From says where names were resolved, for messages ("image
	// sha256:0123…").
	From string
}

// NeedsFiles reports whether resolving spec and groupAdd reads /etc/passwd
// or /etc/group. Only a numeric user with a numeric group and numeric extra
// groups does not: a bare numeric user takes its primary group and
// supplementary groups from the files.
func NeedsFiles(spec string, groupAdd []string) bool {
	u, g, hasGroup := strings.Cut(spec, ":")
	if !isNumericID(u) || !hasGroup || !isNumericID(strings.Split(g, ":")[0]) {
		return true
	}
	for _, a := range groupAdd {
		if !isNumericID(a) {
			return true
		}
	}
	return false
}

// isNumericID is moby/sys/user's test: what strconv.Atoi accepts ("+0" and
// "-0" included) is an ID, anything else a name.
func isNumericID(s string) bool {
	_, err := strconv.Atoi(s)
	return !errors.Is(err, strconv.ErrSyntax)
}

// ResolveIdentity resolves a user spec ("", "name", "uid", "name:group",
// "uid:gid") and GroupAdd as the engine does when it starts the process.
// passwd and group are the files' contents, nil when the container has no
// such file. The IDs are truncated to 32 bits as the engine converts them
// (uint32(execUser.Uid)): a passwd entry of 4294967296 is uid 0.
func ResolveIdentity(spec string, groupAdd []string, passwd, group []byte) Identity {
	reader := func(b []byte) io.Reader {
		if b == nil {
			return nil // moby/sys/user reads a missing file as no entries
		}
		return bytes.NewReader(b)
	}
	eu, err := user.GetExecUser(spec, nil, reader(passwd), reader(group))
	if err != nil {
		return Identity{Err: err.Error()}
	}
	id := Identity{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	for _, g := range eu.Sgids {
		id.Groups = append(id.Groups, uint32(g))
	}
	if len(groupAdd) > 0 {
		add, err := user.GetAdditionalGroups(groupAdd, reader(group))
		if err != nil {
			return Identity{Err: err.Error()}
		}
		for _, g := range add {
			id.Groups = append(id.Groups, uint32(g))
		}
	}
	return id
}

// Pinned is the identity as a user spec and extra groups that need no
// file to resolve, so that the engine runs exactly this identity whatever
// the container's /etc/passwd says by then. The supplementary groups the
// files gave move to GroupAdd, because a spec with a group takes none from
// the files.
func (id Identity) Pinned() (spec string, groupAdd []string) {
	spec = strconv.FormatUint(uint64(id.UID), 10) + ":" + strconv.FormatUint(uint64(id.GID), 10)
	seen := map[uint32]bool{}
	for _, g := range id.Groups {
		if !seen[g] {
			seen[g] = true
			groupAdd = append(groupAdd, strconv.FormatUint(uint64(g), 10))
		}
	}
	return spec, groupAdd
}

// HasGroup reports whether the process has gid as its primary or a
// supplementary group.
func (id Identity) HasGroup(gid uint32) bool {
	if id.GID == gid {
		return true
	}
	for _, g := range id.Groups {
		if g == gid {
			return true
		}
	}
	return false
}
