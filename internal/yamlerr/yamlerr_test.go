package yamlerr

import (
	"bytes"
	"errors"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

func load(t *testing.T, src string) error {
	t.Helper()
	var doc yaml.Node
	err := yaml.NewDecoder(bytes.NewReader([]byte(src))).Decode(&doc)
	if err == nil {
		var v struct{ A, B int }
		err = doc.Decode(&v)
	}
	if err == nil {
		t.Fatalf("%q loaded", src)
	}
	return err
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want At
	}{
		{"a: 1\n  b: 2\nc: 3\n", At{Line: 2, Message: "mapping values are not allowed in this context"}},
		{"services:\n  web:\n    image: x\n   bad: y\n", At{Line: 4, Message: "did not find expected key", Context: "while parsing a block mapping", ContextLine: 2}},
		{"key: \"unterminated\n", At{Line: 2, Message: "found unexpected end of stream", Context: "while scanning a quoted scalar", ContextLine: 1}},
	} {
		if got := First(load(t, tc.src)); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.src, got, tc.want)
		}
	}
	// Several decoding errors: all of them, by line.
	all := Of(load(t, "b: [x]\na: {y: 1}\n"))
	if len(all) != 2 || all[0].Line != 1 || all[1].Line != 2 {
		t.Errorf("decoding errors %+v", all)
	}
	if got := First(errors.New("yaml: something else")); got != (At{Message: "something else"}) {
		t.Errorf("a plain error: %+v", got)
	}
}
