package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"
)

// Since formats t as the engine's since= (and until=) parameter reads it:
// seconds and nanoseconds since the epoch.
func Since(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// Infoer is the part of the engine client EngineNow needs.
type Infoer interface {
	Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error)
}

// EngineNow reads the engine's clock (docker info's SystemTime), the clock
// the engine compares since= with: a host's own clock may run ahead of or
// behind a remote engine's.
func EngineNow(ctx context.Context, c Infoer) (time.Time, error) {
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, info.Info.SystemTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("the engine's SystemTime %q: %w", info.Info.SystemTime, err)
	}
	return t, nil
}
