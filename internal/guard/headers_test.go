package guard

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestOutboundHeader: the engine receives the client's end-to-end headers
// only; hop-by-hop ones, those the Connection header names, the framing the
// guard sets itself and method overrides are dropped.
func TestOutboundHeader(t *testing.T) {
	in := http.Header{
		"Connection":             {"keep-alive, x-secret ,Upgrade", "  te"},
		"X-Secret":               {"s"},
		"Keep-Alive":             {"timeout=5"},
		"Te":                     {"trailers"},
		"Upgrade":                {"tcp"},
		"Transfer-Encoding":      {"chunked"},
		"Content-Length":         {"12"},
		"Host":                   {"evil"},
		"Expect":                 {"100-continue"},
		"Proxy-Authorization":    {"Basic x"},
		"X-Http-Method-Override": {"DELETE"},
		"X-Http-Method":          {"DELETE"},
		"X-Method-Override":      {"DELETE"},
		"Content-Type":           {"application/json"},
		"X-Registry-Auth":        {"eyJ9"},
		"Accept":                 {"a", "b"},
		"User-Agent":             {"Docker-Client/28"},
	}
	got := outboundHeader(in)
	want := http.Header{
		"Content-Type":    {"application/json"},
		"X-Registry-Auth": {"eyJ9"},
		"Accept":          {"a", "b"},
		"User-Agent":      {"Docker-Client/28"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outboundHeader:\n got %v\nwant %v", got, want)
	}
	got["Accept"][0] = "changed"
	if in["Accept"][0] != "a" {
		t.Fatal("outboundHeader shares value slices with the client's request")
	}
	// Many named tokens and many headers: each named one goes, the rest
	// stay.
	many := http.Header{"Connection": {""}}
	var toks []string
	for i := range 5000 {
		name := fmt.Sprintf("X-Hop-%d", i)
		many[name] = []string{"v"}
		many[fmt.Sprintf("X-Keep-%d", i)] = []string{"v"}
		toks = append(toks, strings.ToLower(name))
	}
	many["Connection"] = []string{strings.Join(toks, ",")}
	got = outboundHeader(many)
	if len(got) != 5000+1 { // the X-Keep-* headers and an empty User-Agent
		t.Fatalf("outboundHeader kept %d headers, want 5001", len(got))
	}
	if got.Get("X-Hop-4999") != "" || got.Get("X-Keep-4999") != "v" {
		t.Fatal("outboundHeader did not drop exactly the headers Connection names")
	}
	if got := outboundHeader(http.Header{}); !reflect.DeepEqual(got, http.Header{"User-Agent": {""}}) {
		t.Fatalf("without a User-Agent: %v, want an empty one (so Go adds none)", got)
	}
}

// TestCopyResponseHeader: the client gets the engine's end-to-end headers;
// the guard's server sets framing and connection headers itself.
func TestCopyResponseHeader(t *testing.T) {
	src := http.Header{
		"Connection":          {"Upgrade, X-Hop"},
		"X-Hop":               {"1"},
		"Upgrade":             {"tcp"},
		"Transfer-Encoding":   {"chunked"},
		"Keep-Alive":          {"x"},
		"Trailer":             {"X-T"},
		"Api-Version":         {"1.41"},
		"Content-Type":        {"application/vnd.docker.raw-stream"},
		"Docker-Experimental": {"false"},
	}
	dst := http.Header{}
	copyResponseHeader(dst, src)
	want := http.Header{
		"Api-Version":         {"1.41"},
		"Content-Type":        {"application/vnd.docker.raw-stream"},
		"Docker-Experimental": {"false"},
	}
	if !reflect.DeepEqual(dst, want) {
		t.Fatalf("copyResponseHeader:\n got %v\nwant %v", dst, want)
	}
}
