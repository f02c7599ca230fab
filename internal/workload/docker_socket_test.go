package workload

import "testing"

func TestIsDockerSocket(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/var/run/docker.sock", true},
		{"/run/docker.sock", true},
		{"/var/run", true},
		{"/var/run/", true},
		{"/run", true},
		{"/", true},
		{"//", true},
		{"/var", true},
		{"/var/./run", true},
		{"/var/lib/../run/docker.sock", true},
		{"/srv/docker.sock", true},
		{"//./pipe/docker_engine", true},
		{`\\.\pipe\docker_engine`, true},
		{"", false},
		{"/var/lib/grafana", false},
		{"/etc", false},
		{"/home/user/run", false},
		{"data", false},
	} {
		if got := IsDockerSocket(tc.path); got != tc.want {
			t.Errorf("IsDockerSocket(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
