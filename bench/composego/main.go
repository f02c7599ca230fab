// Command composego is the lint benchmark's baseline: it loads the same
// compose projects hyhome lints with compose-go's default pipeline
// (cli.ProjectOptions.LoadProject), one after another, as `docker compose
// config` does, and prints how many it loaded. No rules are evaluated, so
// the baseline is a lower bound on any compose-go-only linter.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/hy-home/hyhome/internal/compose"
)

func main() {
	flag.Parse()
	projects, services, failed := 0, 0, 0
	for _, dir := range flag.Args() {
		set, err := compose.FindProjects(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "composego:", err)
			os.Exit(2)
		}
		for _, p := range set.Projects {
			opts, err := cli.NewProjectOptions(p.Files,
				cli.WithWorkingDirectory(p.WorkDir), cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv)
			if err != nil {
				failed++
				continue
			}
			proj, err := opts.LoadProject(context.Background())
			if err != nil {
				failed++
				continue
			}
			projects++
			services += len(proj.Services)
		}
	}
	fmt.Printf("projects=%d services=%d failed=%d\n", projects, services, failed)
}
