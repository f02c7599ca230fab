// Package yamlerr reads where a go.yaml.in/yaml error is: the line, the
// message and the construct it was in, from the library's typed errors
// (LoadError, LoadErrors) rather than from its text. The compose loader,
// the guard's configuration and the ADR front matter all name a bad line
// through it.
//
// It reads errors; it must not decide how a caller words or wraps them.
package yamlerr

import (
	"errors"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// At is one positioned YAML error.
type At struct {
	// Line is 1-based; 0 when the error has no position.
	Line    int
	Message string
	// Context and ContextLine name the construct the error was found in
	// ("while parsing a block mapping", line 2), when the library says.
	Context     string
	ContextLine int
}

// Of returns the positioned errors in err, in line order. An error that is
// not the library's gives one At with no line and its text.
func Of(err error) []At {
	var many *yaml.LoadErrors
	if errors.As(err, &many) && len(many.Errors) > 0 {
		out := make([]At, 0, len(many.Errors))
		for _, e := range many.Errors {
			out = append(out, at(e))
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
		return out
	}
	var one *yaml.LoadError
	if errors.As(err, &one) {
		return []At{at(one)}
	}
	return []At{{Message: strings.TrimPrefix(err.Error(), "yaml: ")}}
}

// First is the first positioned error in err (see Of).
func First(err error) At { return Of(err)[0] }

func at(e *yaml.LoadError) At {
	a := At{Line: e.Mark.Line, Message: e.Message}
	if e.ContextMsg != "" && e.ContextMark.Line > 0 {
		a.Context, a.ContextLine = e.ContextMsg, e.ContextMark.Line
	}
	return a
}
