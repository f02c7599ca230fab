package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newHealthcheckCmd is the probe the project's FROM-scratch image runs as
// its HEALTHCHECK: there is no shell, curl or wget inside, so the binary
// asks its own /healthz.
func newHealthcheckCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck URL",
		Short: "Exit 0 when URL answers 2xx (a HEALTHCHECK for images without curl)",
		Long: `Probe an HTTP endpoint, typically a hyhome daemon's own /healthz, and exit 0 when it
answers with a 2xx status, 1 otherwise. Compose:

  healthcheck:
    test: ["CMD", "/hyhome", "healthcheck", "http://127.0.0.1:9327/healthz"]`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return fail(ExitError, fmt.Errorf("healthcheck: %w", err))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fail(ExitFindings, fmt.Errorf("healthcheck %s: %w", args[0], err))
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			if resp.StatusCode/100 != 2 {
				return fail(ExitFindings, fmt.Errorf("healthcheck %s: %s", args[0], resp.Status))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}
