package lokitest

import (
	"encoding/json"
	"strings"
)

// logLevelFields are the keys Loki 3 looks at, in structured metadata, stream
// labels, JSON lines and logfmt lines, to detect a line's level
// (limits_config.log_level_fields default).
var logLevelFields = []string{"level", "LEVEL", "Level", "log.level", "severity", "SEVERITY", "Severity", "SeverityText", "lvl", "LVL", "Lvl", "severity_text", "Severity_Text", "SEVERITY_TEXT"}

// detectLevel approximates Loki 3's detected_level: an explicit level field
// wins, then a level key in a JSON or logfmt line, then a keyword in the
// line; otherwise "unknown". Loki's keyword heuristics differ in detail; tests
// must not depend on anything finer than "an explicit level is honoured and
// lines without one get some value".
func detectLevel(line string, stream, meta Labels) string {
	for _, f := range logLevelFields {
		if v := meta.Get(f); v != "" {
			return normaliseLevel(v)
		}
		if v := stream.Get(f); v != "" {
			return normaliseLevel(v)
		}
	}
	trimmed := strings.TrimSpace(line)
	if strings.HasPrefix(trimmed, "{") {
		var obj map[string]any
		if json.Unmarshal([]byte(trimmed), &obj) == nil {
			for _, f := range logLevelFields {
				if v, ok := obj[f].(string); ok && v != "" {
					return normaliseLevel(v)
				}
			}
		}
	} else if strings.Contains(line, "=") {
		for _, field := range strings.Fields(line) {
			k, v, ok := strings.Cut(field, "=")
			if !ok {
				continue
			}
			for _, f := range logLevelFields {
				if k == f {
					return normaliseLevel(strings.Trim(v, `"`))
				}
			}
		}
	}
	return keywordLevel(line)
}

func normaliseLevel(v string) string {
	switch strings.ToLower(v) {
	case "trace", "trc":
		return "trace"
	case "debug", "dbg":
		return "debug"
	case "info", "inf", "information", "notice":
		return "info"
	case "warn", "warning", "wrn":
		return "warn"
	case "error", "err", "eror":
		return "error"
	case "critical", "crit":
		return "critical"
	case "fatal", "panic", "emerg", "alert":
		return "fatal"
	}
	return "unknown"
}

// keywordLevel looks for a level word anywhere in the line, most severe
// first. It runs on every pushed line, so it does not allocate.
func keywordLevel(line string) string {
	severity := []string{"fatal", "critical", "error", "warn", "info", "debug", "trace"}
	best := len(severity)
	start := -1
	for i := 0; i <= len(line); i++ {
		letter := i < len(line) && (line[i] >= 'a' && line[i] <= 'z' || line[i] >= 'A' && line[i] <= 'Z')
		if letter {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			if w := line[start:i]; len(w) >= 3 && len(w) <= 11 {
				if l := normaliseLevel(w); l != "unknown" {
					for rank, s := range severity[:best] {
						if s == l {
							best = rank
							break
						}
					}
				}
			}
			start = -1
		}
	}
	if best < len(severity) {
		return severity[best]
	}
	return "unknown"
}
