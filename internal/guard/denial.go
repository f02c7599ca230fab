package guard

import (
	"fmt"
	"strings"

	"github.com/hy-home/hyhome/internal/policy"
)

// Reasons classify denials for logs and metrics.
const (
	reasonMethod      = "method"       // not an Engine API method
	reasonPath        = "path"         // not a canonical origin-form path
	reasonRoute       = "route"        // no such Engine API route
	reasonVersion     = "version"      // API version too old to judge
	reasonProfile     = "profile"      // route not allowed in this profile
	reasonQuery       = "query"        // query string does not parse
	reasonContentType = "content-type" // form or malformed content type
	reasonBody        = "body"         // body missing, malformed or not allowed
	reasonBodySize    = "body-size"    // body over the cap
	reasonBodyTimeout = "body-timeout" // body slower than the deadline
	reasonBusy        = "busy"         // the buffered-bytes budget is spent
	reasonPolicy      = "policy"       // rules of the catalogue failed
	reasonPlugin      = "plugin"       // a plugin the profile does not name
	reasonPermit      = "permit"       // a judgement the profile does not permit
	reasonNotFound    = "not-found"    // the object the request refers to does not exist
	reasonLookup      = "lookup"       // the engine could not be asked about it
	reasonUnjudgeable = "unjudgeable"  // traffic the guard cannot see into
)

// denial is why a request is refused. It is the only way a request is
// refused: the handler has one deny path that logs and counts it and writes
// it to the client as the engine writes errors, {"message": ...}.
type denial struct {
	status  int
	reason  string
	message string
	// rules are the failing rule IDs of a policy denial.
	rules []string
}

// maxMessagesPerRule is how many findings of one rule a denial spells out.
const maxMessagesPerRule = 8

func deny(status int, reason, format string, args ...any) *denial {
	return &denial{status: status, reason: reason, message: fmt.Sprintf(format, args...)}
}

func (d *denial) Error() string { return d.message }

// policyDenial renders failing findings as one line that names each rule
// with the requirements it enforces, e.g.
//
//	denied by privileged [NFR-SEC-01, SEC-IDENTITY]: runs privileged: ...; non-root [SEC-IDENTITY]: ...
//
// Several findings of one rule are joined with ", ", at most
// maxMessagesPerRule of them, then "(+N more)": the line is written to the
// client and the log, and its length must not follow the request's.
func policyDenial(status int, failing []policy.Finding) *denial {
	type part struct {
		b     strings.Builder
		shown int
		more  int
	}
	var order []*part
	var rules []string
	byRule := map[string]*part{}
	for _, f := range failing {
		p, ok := byRule[f.Rule]
		if !ok {
			p = &part{}
			byRule[f.Rule] = p
			order = append(order, p)
			rules = append(rules, f.Rule)
			fmt.Fprintf(&p.b, "%s [%s]: %s", f.Rule, strings.Join(f.Requirements, ", "), f.Message)
			p.shown = 1
			continue
		}
		if p.shown == maxMessagesPerRule {
			p.more++
			continue
		}
		p.b.WriteString(", ")
		p.b.WriteString(f.Message)
		p.shown++
	}
	parts := make([]string, len(order))
	for i, p := range order {
		if p.more > 0 {
			fmt.Fprintf(&p.b, " (+%d more)", p.more)
		}
		parts[i] = p.b.String()
	}
	return &denial{
		status:  status,
		reason:  reasonPolicy,
		message: "denied by " + strings.Join(parts, "; "),
		rules:   rules,
	}
}
