package deploy

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The e2e scripts (deploy/e2e, `make e2e`) run the stack for real; these
// checks keep them in step with compose.yaml without starting anything.

// TestE2EScriptsParse: bash accepts every script.
func TestE2EScriptsParse(t *testing.T) {
	scripts, _ := filepath.Glob(filepath.Join(deployDir(t), "e2e", "*.sh"))
	more, _ := filepath.Glob(filepath.Join(deployDir(t), "e2e", "images", "*.sh"))
	scripts = append(scripts, more...)
	if len(scripts) < 3 {
		t.Fatalf("found %v: want images.sh, e2e.sh and the Traefik entrypoint", scripts)
	}
	for _, s := range scripts {
		if out, err := runTool(t, deployDir(t), time.Minute, "bash", "-n", s); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}

// TestE2EImagesCoverCompose: every third-party image compose.yaml pins is
// handled by images.sh (built from its module, or named as a stand-in or
// left out), and the script reads each pin as compose does.
func TestE2EImagesCoverCompose(t *testing.T) {
	script := filepath.Join(deployDir(t), "e2e", "images.sh")
	src := string(readFile(t, script))
	handled := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^ensure_image ([a-z-]+) `).FindAllStringSubmatch(src, -1) {
		handled[m[1]] = true
	}
	if m := regexp.MustCompile(`(?m)^for svc in ([a-z -]+); do$`).FindStringSubmatch(src); m != nil {
		for _, s := range strings.Fields(m[1]) {
			handled[s] = true
		}
	}
	p := mustLoad(t, nil, "compose.yaml")
	var names []string
	for name, svc := range p.Services {
		if strings.HasPrefix(svc.Image, "hyhome:") {
			continue // the project's image
		}
		names = append(names, name)
		if !handled[name] {
			t.Errorf("service %s (%s) is not handled by deploy/e2e/images.sh", name, svc.Image)
		}
		// The script's own reading of the pin, as `make e2e` runs it.
		cmd := exec.Command("bash", "-c", `compose_file=$1; eval "$(sed -n '/^pinned() {/,/^}/p' "$2")"; pinned "$3"`,
			"-", filepath.Join(deployDir(t), "compose.yaml"), script, name)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pinned %s: %v", name, err)
		}
		if got := strings.TrimSpace(string(out)); got != svc.Image {
			t.Errorf("images.sh reads %s's image as %q, compose as %q", name, got, svc.Image)
		}
	}
	slices.Sort(names)
	t.Logf("third-party services: %v", names)
}
