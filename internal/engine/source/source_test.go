package source

import (
	"fmt"
	"testing"
)

func TestParseFilters(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		wantErr string
	}{
		{[]string{"label=hy-home.tier=infra", "label=x", "name=web", "id=abc"}, ""},
		{[]string{"status=running"}, `invalid filter "status=running": key "status" is not one of label, name, id`},
		{[]string{"label"}, `invalid filter "label": want key=value, e.g. label=hy-home.tier=infra`},
		{[]string{"label="}, `invalid filter "label=": want key=value, e.g. label=hy-home.tier=infra`},
	} {
		_, err := ParseFilters(tc.in)
		if got := fmt.Sprint(err); tc.wantErr == "" && err != nil || tc.wantErr != "" && got != tc.wantErr {
			t.Errorf("%v: error %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}
