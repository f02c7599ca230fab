// Command clidoc writes hyhome's CLI reference, one Markdown page per
// command, from the cobra command tree (cobra/doc's GenMarkdownTree):
//
//	go run ./internal/cli/clidoc docs/cli
//
// `make docs` runs it and `make docs-check` (part of `make test`) fails when
// docs/cli differs from what it writes. The output is stable: no generation
// date, no machine-dependent default, and the directory holds exactly the
// pages of the commands that exist (stale pages are removed). It is a
// separate program so that cobra/doc and its Markdown-to-man dependencies
// stay out of the hyhome binary.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/hy-home/hyhome/internal/cli"
)

// header opens every generated page.
const header = "<!-- Generated from hyhome's cobra commands by `make docs` (internal/cli/clidoc); do not edit. CI fails when it drifts. -->\n\n"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: clidoc DIR")
		os.Exit(2)
	}
	if err := generate(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "clidoc: "+err.Error())
		os.Exit(1)
	}
}

// generate writes the reference into dir, replacing the Markdown pages
// already there.
func generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	root := cli.CommandTree()
	stable(root)
	return doc.GenMarkdownTreeCustom(root, dir,
		func(string) string { return header },
		func(link string) string { return link })
}

// stable drops what would make the pages differ between runs or machines:
// cobra's generation date on every page.
func stable(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		stable(sub)
	}
}

// pages lists the Markdown files of a reference directory, by name.
func pages(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		files[i] = strings.TrimPrefix(f, dir+string(filepath.Separator))
	}
	return files, nil
}
