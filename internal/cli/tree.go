package cli

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// CommandTree returns hyhome's command tree as Main builds it, with its
// streams discarded, for generators that read it (the CLI reference in
// docs/cli, internal/cli/clidoc). It must not be executed.
func CommandTree() *cobra.Command {
	return newRoot(&app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
}
