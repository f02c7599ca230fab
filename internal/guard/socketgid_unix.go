//go:build unix

package guard

import (
	"os"
	"syscall"
)

// socketGID is the group owning a unix socket (its permission bits let
// that group connect).
func socketGID(p string) (uint32, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Gid, true
}
