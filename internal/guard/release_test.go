package guard

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
)

// Unmapping the binary's read-only pages leaves the process working: the
// pages fault back in from the page cache as code runs.
func TestDropBinaryPages(t *testing.T) {
	dropped, err := dropBinaryPages()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && dropped == 0 {
		t.Fatal("nothing was unmapped")
	}
	// Code and constant data the test has not run since: still there.
	b, err := json.Marshal(map[string]any{"route": routes.byName["GET /_ping"].Name, "n": 1})
	if err != nil || !strings.Contains(string(b), "GET /_ping") {
		t.Fatalf("after the drop: %s %v", b, err)
	}
	if _, err := os.ReadFile("/proc/self/status"); err != nil && runtime.GOOS == "linux" {
		t.Fatal(err)
	}
	t.Logf("unmapped %d bytes of the test binary's read-only mappings", dropped)
}
