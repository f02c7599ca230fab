package lokitest

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Label is one name/value pair.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Labels is a label set sorted by name.
type Labels []Label

// String renders the set the way Loki prints stream labels: {a="1", b="2"}.
func (ls Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Get returns the value of name, or "" when it is absent.
func (ls Labels) Get(name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Has reports whether name is present.
func (ls Labels) Has(name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// Map returns the set as a map.
func (ls Labels) Map() map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return m
}

// MarshalJSON encodes the set as a JSON object, as Loki's query API does.
func (ls Labels) MarshalJSON() ([]byte, error) { return json.Marshal(ls.Map()) }

// FromMap builds a sorted label set from m.
func FromMap(m map[string]string) Labels {
	ls := make(Labels, 0, len(m))
	for k, v := range m {
		ls = append(ls, Label{Name: k, Value: v})
	}
	ls.sort()
	return ls
}

func (ls Labels) sort() {
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
}

// merge returns ls with extra added (extra wins on a name clash), sorted.
func (ls Labels) merge(extra Labels) Labels {
	if len(extra) == 0 {
		return ls
	}
	out := make(Labels, 0, len(ls)+len(extra))
	for _, l := range ls {
		if !extra.Has(l.Name) {
			out = append(out, l)
		}
	}
	out = append(out, extra...)
	out.sort()
	return out
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ValidLabelName reports whether name is a valid Loki (Prometheus) label name.
func ValidLabelName(name string) bool { return labelNameRE.MatchString(name) }
