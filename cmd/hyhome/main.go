// Command hyhome lints, fixes, guards, audits, ships and verifies a Docker
// infrastructure against SPEC-SYS-01. All behaviour lives in internal/cli.
package main

import (
	"os"

	"github.com/hy-home/hyhome/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
