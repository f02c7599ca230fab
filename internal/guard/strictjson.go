package guard

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
)

// decodeStrict decodes a request body into v (a pointer) so that it has one
// reading only, the one the guard judges:
//
//   - the body is one JSON value, and nothing but white space follows it
//     (the engine's decoder stops after the first value; what follows is a
//     second request body the guard would not have judged);
//   - every object key that names a struct field is spelled exactly as the
//     API type spells it, and appears once. encoding/json matches keys
//     case-insensitively (with Unicode folding: "ſecurityOpt" is
//     SecurityOpt) and keeps the last duplicate, so {"Privileged":false,
//     "privileged":true} is privileged; whether another Go release folds the
//     same way is not the guard's bet to make;
//   - no key is unknown to the API type. A field the guard's types do not
//     have may still be honoured by the engine (a 20.10 engine reads
//     top-level HostConfig fields on container create, and a top-level
//     Networks list on service create), so it is refused, not ignored.
//
// Map keys (labels, driver options) are data, not fields: they may use any
// spelling but must still be unique.
func decodeStrict(body []byte, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return errors.New("decodeStrict: v must be a pointer")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := &keyWalker{dec: dec}
	if err := w.value(t.Elem(), "", true); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	return nil
}

type keyWalker struct {
	dec   *json.Decoder
	depth int
}

// maxDepth bounds nesting; real API bodies are a few levels deep.
const maxDepth = 64

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// customDecoding reports whether values of t decode themselves; their keys
// are theirs to check, so the walker skips over them.
func customDecoding(t reflect.Type) bool {
	return t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
}

func (w *keyWalker) value(t reflect.Type, at string, top bool) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := w.dec.Token()
	if err != nil {
		return fmt.Errorf("reading JSON%s: %w", where(at), err)
	}
	delim, isDelim := tok.(json.Delim)
	if top && (!isDelim || delim != '{') && t != nil && t.Kind() == reflect.Struct {
		return fmt.Errorf("the body must be a JSON object, not %v", describeToken(tok))
	}
	if !isDelim {
		return nil
	}
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		return fmt.Errorf("JSON nested deeper than %d levels", maxDepth)
	}
	if t == nil || t.Kind() == reflect.Interface || customDecoding(t) {
		return w.skip(delim)
	}
	switch delim {
	case '{':
		return w.object(t, at)
	case '[':
		var elem reflect.Type
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(elem, fmt.Sprintf("%s[%d]", at, i), false); err != nil {
				return err
			}
		}
		_, err := w.dec.Token() // ]
		return err
	}
	return fmt.Errorf("unexpected %v%s", delim, where(at))
}

func (w *keyWalker) object(t reflect.Type, at string) error {
	var fields map[string]reflect.Type
	var folded map[string]string
	var elem reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		fields, folded = structFields(t)
	case reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return fmt.Errorf("reading JSON%s: %w", where(at), err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q appears twice%s", key, where(at))
		}
		seen[key] = true
		next := join(at, key)
		var vt reflect.Type
		switch t.Kind() {
		case reflect.Struct:
			ft, ok := fields[key]
			if !ok {
				if exact, ok := folded[foldKey(key)]; ok {
					return fmt.Errorf("key %q%s must be spelled %q", key, where(at), exact)
				}
				return fmt.Errorf("unknown field %q%s", key, where(at))
			}
			vt = ft
		case reflect.Map:
			vt = elem
		}
		if err := w.value(vt, next, false); err != nil {
			return err
		}
	}
	_, err := w.dec.Token() // }
	return err
}

// skip consumes the rest of a value whose opening delimiter was read.
func (w *keyWalker) skip(open json.Delim) error {
	depth := 1
	for depth > 0 {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
				if depth > maxDepth {
					return fmt.Errorf("JSON nested deeper than %d levels", maxDepth)
				}
			default:
				depth--
			}
		}
	}
	return nil
}

func where(at string) string {
	if at == "" {
		return ""
	}
	return " in " + at
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return fmt.Sprint(v)
	case json.Delim:
		return "an array"
	}
	return fmt.Sprintf("%v", tok)
}

// foldKey is a case fold that also maps the two non-ASCII letters
// encoding/json folds into ASCII (ſ→s, K→k), so that the walker can name
// the exact spelling a folded key was meant to be.
func foldKey(s string) string {
	return strings.ToLower(strings.NewReplacer("ſ", "s", "\u212a", "k").Replace(s))
}

type fieldSet struct {
	exact  map[string]reflect.Type
	folded map[string]string
}

var fieldCache sync.Map // reflect.Type → fieldSet

// structFields returns the JSON keys of a struct type as encoding/json
// resolves them: tag names or field names, embedded structs flattened, the
// shallowest field winning and, at equal depth, a single tagged one; other
// conflicts hide the name.
func structFields(t reflect.Type) (map[string]reflect.Type, map[string]string) {
	if fs, ok := fieldCache.Load(t); ok {
		f := fs.(fieldSet)
		return f.exact, f.folded
	}
	type cand struct {
		typ    reflect.Type
		depth  int
		tagged bool
	}
	cands := map[string][]cand{}
	var walk func(t reflect.Type, depth int, visited map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, visited map[reflect.Type]bool) {
		if visited[t] {
			return
		}
		visited[t] = true
		defer delete(visited, t)
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
				walk(ft, depth+1, visited)
				continue
			}
			if !f.IsExported() {
				continue
			}
			tagged := name != ""
			if !tagged {
				name = f.Name
			}
			cands[name] = append(cands[name], cand{typ: f.Type, depth: depth, tagged: tagged})
		}
	}
	walk(t, 0, map[reflect.Type]bool{})
	exact := map[string]reflect.Type{}
	for name, cs := range cands {
		minDepth := cs[0].depth
		for _, c := range cs {
			minDepth = min(minDepth, c.depth)
		}
		var top []cand
		for _, c := range cs {
			if c.depth == minDepth {
				top = append(top, c)
			}
		}
		if len(top) > 1 {
			var tagged []cand
			for _, c := range top {
				if c.tagged {
					tagged = append(tagged, c)
				}
			}
			top = tagged
		}
		if len(top) == 1 {
			exact[name] = top[0].typ
		}
	}
	folded := make(map[string]string, len(exact))
	for name := range exact {
		folded[foldKey(name)] = name
	}
	fieldCache.Store(t, fieldSet{exact: exact, folded: folded})
	return exact, folded
}
