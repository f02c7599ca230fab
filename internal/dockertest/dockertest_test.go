package dockertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestImagesRunAndCleanUp(t *testing.T) {
	img := Build(t)
	c := Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		image, wantUser string
	}{{img.Root, ""}, {img.NonRoot, "65534:65534"}} {
		ins, err := c.ImageInspect(ctx, tc.image)
		if err != nil {
			t.Fatalf("inspecting %s: %v", tc.image, err)
		}
		if ins.Config.User != tc.wantUser {
			t.Errorf("%s: default user %q, want %q", tc.image, ins.Config.User, tc.wantUser)
		}
	}

	id, _ := Run(t, Spec{Name: "exit", Image: img.NonRoot, Cmd: []string{"log", "-lines", "3", "-exit", "7"}})
	wait := c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-wait.Result:
		if r.StatusCode != 7 {
			t.Fatalf("exit status %d, want 7", r.StatusCode)
		}
	case err := <-wait.Error:
		t.Fatalf("waiting: %v", err)
	}
}
