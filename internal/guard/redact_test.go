package guard

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/testenv"
)

func redactFor(t *testing.T, profile, route, body string) string {
	t.Helper()
	p := builtinProfiles()[profile]
	red := redactorFor(p, routes.byName[route])
	if red == nil {
		return body
	}
	var out bytes.Buffer
	if err := red.copy(&out, strings.NewReader(body), nil); err != nil {
		t.Fatalf("%s: %v", route, err)
	}
	return out.String()
}

// What the read-only profiles return keeps every key and structure and
// drops the secret values; what a consumer judges (a /run/secrets/ path, a
// boolean, where logs go, a volume's host path) stays.
func TestRedactReadonlyAnswers(t *testing.T) {
	inspect := `{"Id":"abc","Name":"/db","Config":{"Image":"postgres:16","Env":["POSTGRES_PASSWORD=hunter2","POSTGRES_PASSWORD_FILE=/run/secrets/db","DEBUG=true","EMPTY=","NOVALUE"],"Labels":{"traefik.enable":"true"}},` +
		`"HostConfig":{"LogConfig":{"Type":"splunk","Config":{"splunk-token":"t0k3n","splunk-url":"https://user:pw@splunk:8088","max-size":"10m"}},` +
		`"Mounts":[{"Type":"volume","Source":"","Target":"/data","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"cifs","device":"//nas/share","o":"addr=10.0.0.2,username=bob,password=s3cret,vers=3.0,ro"}}}},{"Type":"bind","Source":"/srv","Target":"/srv"}]},` +
		`"NetworkSettings":{"Networks":{"web":{"IPAddress":"172.20.0.5"}}},"Size":12345678901234567890}`
	got := redactFor(t, ProfileReadonly, "GET /containers/{name}/json", inspect)
	for _, leak := range []string{"hunter2", "t0k3n", "user:pw", "s3cret", "username=bob"} {
		if strings.Contains(got, leak) {
			t.Errorf("readonly container inspect leaks %q:\n%s", leak, got)
		}
	}
	for _, kept := range []string{`"POSTGRES_PASSWORD=[redacted]"`, `"POSTGRES_PASSWORD_FILE=/run/secrets/db"`, `"DEBUG=true"`, `"EMPTY="`, `"NOVALUE"`,
		`"traefik.enable":"true"`, `"max-size":"10m"`, `"splunk-token":"[redacted]"`, `"type":"cifs"`, `"device":"//nas/share"`,
		"addr=10.0.0.2", "vers=3.0", ",ro", `"IPAddress":"172.20.0.5"`, "12345678901234567890"} {
		if !strings.Contains(got, kept) {
			t.Errorf("readonly container inspect lost %s:\n%s", kept, got)
		}
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, got)
	}
	if adm := redactFor(t, ProfileAdmission, "GET /containers/{name}/json", inspect); adm != inspect {
		t.Errorf("admission reveals what its users could read inside the containers, got\n%s", adm)
	}

	volumes := `{"Volumes":[{"Name":"a","Driver":"local","Options":{"type":"cifs","o":"password=p1,uid=1000"},"Status":{"secret":"x"}},{"Name":"b","Driver":"local","Options":null}],"Warnings":null}`
	got = redactFor(t, ProfileShipper, "GET /volumes", volumes)
	if strings.Contains(got, "p1") || strings.Contains(got, `"x"`) || !strings.Contains(got, "uid=1000") || !strings.Contains(got, `"Name":"b"`) {
		t.Errorf("volume list: %s", got)
	}

	services := `[{"ID":"s1","Spec":{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"x","Env":["API_KEY=k1"]},"LogDriver":{"Name":"gelf","Options":{"gelf-address":"udp://log:12201","token":"k2"}}}},"PreviousSpec":{"TaskTemplate":{"ContainerSpec":{"Env":["API_KEY=k3"]}}}}]`
	got = redactFor(t, ProfileReadonly, "GET /services", services)
	for _, leak := range []string{"k1", "k2", "k3"} {
		if strings.Contains(got, leak) {
			t.Errorf("service list leaks %s: %s", leak, got)
		}
	}
	if !strings.Contains(got, "udp://log:12201") {
		t.Errorf("service list lost the gelf address: %s", got)
	}
	tasks := `[{"ID":"t1","Spec":{"ContainerSpec":{"Env":["TOKEN=k4"]}},"Status":{"State":"running"}}]`
	if got := redactFor(t, ProfileReadonly, "GET /tasks", tasks); strings.Contains(got, "k4") || !strings.Contains(got, "running") {
		t.Errorf("task list: %s", got)
	}

	sw := `{"ID":"c1","JoinTokens":{"Worker":"SWMTKN-1-worker","Manager":"SWMTKN-1-manager"}}`
	if got := redactFor(t, ProfileAdmission, "GET /swarm", sw); strings.Contains(got, "SWMTKN") {
		t.Errorf("admission hands out join tokens: %s", got)
	}
}

// Exec events lose their command line and keep their action; other lines
// pass byte for byte.
func TestRedactEvents(t *testing.T) {
	start := `{"status":"start","id":"c1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}},"time":1}` + "\n"
	exec := `{"status":"exec_create: sh -c mysql --password=hunter2","id":"c1","Type":"container","Action":"exec_create: sh -c mysql --password=hunter2","Actor":{"ID":"c1","Attributes":{"execID":"e1","name":"web"}},"time":2}` + "\n"
	got := redactFor(t, ProfileReadonly, "GET /events", start+exec)
	lines := strings.SplitAfter(got, "\n")
	if lines[0] != start {
		t.Errorf("a start event changed: %q", lines[0])
	}
	if strings.Contains(got, "hunter2") || !strings.Contains(lines[1], `"Action":"exec_create: [redacted]"`) || !strings.Contains(lines[1], `"execID":"e1"`) {
		t.Errorf("exec event: %q", lines[1])
	}
}

// The event stream stays a stream: each event reaches the client as it
// arrives, not when a buffer fills.
func TestRedactEventsStreams(t *testing.T) {
	pr, pw := io.Pipe()
	red := redactorFor(builtinProfiles()[ProfileReadonly], routes.byName["GET /events"])
	out := &notifyWriter{ch: make(chan string, 4)}
	done := make(chan error, 1)
	go func() { done <- red.copy(out, pr, func() error { out.flushed(); return nil }) }()
	for i, ev := range []string{`{"Action":"start","time":1}`, `{"Action":"exec_start: cat /secret","time":2}`} {
		if _, err := io.WriteString(pw, ev+"\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-out.ch:
			if strings.Contains(got, "/secret") {
				t.Errorf("event %d leaks: %s", i, got)
			}
		case <-time.After(testenv.Hang):
			t.Fatalf("event %d was not flushed while the stream stayed open", i)
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type notifyWriter struct {
	buf bytes.Buffer
	ch  chan string
}

func (w *notifyWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *notifyWriter) flushed() {
	if w.buf.Len() > 0 {
		w.ch <- w.buf.String()
		w.buf.Reset()
	}
}

func FuzzRedact(f *testing.F) {
	f.Add(`{"Config":{"Env":["A=b"]},"HostConfig":{"LogConfig":{"Config":{"k":"v"}}}}`)
	f.Add(`{"Volumes":[{"Options":{"o":"password=x"}}]}`)
	f.Add(`[{"Spec":{"TaskTemplate":{"ContainerSpec":{"Env":null}}}}]`)
	f.Fuzz(func(t *testing.T, in string) {
		for _, route := range []string{"GET /containers/{name}/json", "GET /volumes", "GET /services", "GET /events"} {
			red := redactorFor(builtinProfiles()[ProfileReadonly], routes.byName[route])
			var out bytes.Buffer
			if err := red.copy(&out, strings.NewReader(in), nil); err != nil {
				continue
			}
			if route != "GET /events" && json.Valid([]byte(in)) && !json.Valid(bytes.TrimSpace(out.Bytes())) {
				t.Errorf("%s: valid JSON in, invalid out: %q → %q", route, in, out.String())
			}
		}
	})
}
