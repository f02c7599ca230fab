package promtest

import (
	"os"
	"path/filepath"
	"testing"
)

// What a loopback run substitutes in the stack's files, and nothing else:
//   - prometheus.yml: scrape/evaluation intervals 15s -> 1s, scrape timeout
//     10s -> 1s; rule_files -> the substituted rules file; the Alertmanager
//     address; and discovery: either docker_sd_configs -> file_sd_configs
//     whose targets carry the __meta_docker_* labels Docker discovery
//     produces (FileSD), or the same docker_sd_configs pointed at the local
//     engine, scoped by one more label filter, with one more network kept
//     by the relabelling (Docker).
//   - rules: `for: 1m` -> For on HyHomeServiceDown and HyHomeServiceMissing.
//   - alertmanager.yml: group_wait 10s -> 1s, group_interval 1m -> 1s;
//     api_url_file -> a file naming the test's webhook; the templates glob
//     -> its absolute path (it is relative to the config file, which the
//     test writes elsewhere).

// DockerSD keeps the stack's Docker discovery, against a local engine.
type DockerSD struct {
	// Host is the engine, e.g. unix:///var/run/docker.sock.
	Host string
	// Label ("key=value") is ANDed with the stack's hy-home.tier filter, so
	// that only the test's containers are discovered on a shared engine.
	Label string
	// Network is kept by the relabelling besides infra_net and edge_net
	// (tests cannot own those names on a shared engine).
	Network string
}

// StackOptions say how to run the stack's alert path.
type StackOptions struct {
	// HostLabel is HYHOME_HOST, the `host` external label.
	HostLabel string
	// WebhookURL is the Slack incoming webhook Alertmanager posts to.
	WebhookURL string
	// For replaces the availability alerts' `for: 1m` (default 5s).
	For string
	// Exactly one of FileSD (a file_sd targets file) and Docker.
	FileSD string
	Docker *DockerSD
}

// Stack is a running Prometheus and Alertmanager.
type Stack struct {
	PromAddr, AMAddr string
	Dir              string
	// Versions are the programs' --version first lines.
	Versions []string
}

// StartStack writes the substituted files to a temporary directory, starts
// Alertmanager and Prometheus on free loopback ports and waits until both
// are ready. It skips the test without the programs (fails under CI).
func StartStack(t testing.TB, o StackOptions) *Stack {
	t.Helper()
	prometheus := Tool(t, "the alert path runs a real Prometheus", "prometheus")
	alertmanager := Tool(t, "the alert path runs a real Alertmanager", "prometheus-alertmanager", "alertmanager")
	if (o.FileSD == "") == (o.Docker == nil) {
		t.Fatal("promtest: set exactly one of FileSD and Docker")
	}
	if o.For == "" {
		o.For = "5s"
	}
	dir := t.TempDir()
	deploy := DeployDir(t)
	s := &Stack{PromAddr: FreeAddr(t), AMAddr: FreeAddr(t), Dir: dir, Versions: Versions(prometheus, alertmanager)}

	webhookFile := filepath.Join(dir, "slack_webhook")
	write(t, webhookFile, []byte(o.WebhookURL+"\n"))
	rulesFile := filepath.Join(dir, "availability.yml")
	write(t, rulesFile, SubstituteRules(t, read(t, filepath.Join(deploy, "prometheus", "rules", "availability.yml")), o.For))
	promFile := filepath.Join(dir, "prometheus.yml")
	write(t, promFile, SubstitutePrometheus(t, read(t, filepath.Join(deploy, "prometheus", "prometheus.yml")), rulesFile, s.AMAddr, o.FileSD, o.Docker))
	amFile := filepath.Join(dir, "alertmanager.yml")
	write(t, amFile, SubstituteAlertmanager(t, read(t, filepath.Join(deploy, "alertmanager", "alertmanager.yml")), webhookFile))

	StartProcess(t, dir, "alertmanager", alertmanager, nil,
		"--config.file="+amFile,
		"--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+s.AMAddr,
		"--cluster.listen-address=",
	)
	StartProcess(t, dir, "prometheus", prometheus, []string{"HYHOME_HOST=" + o.HostLabel},
		"--config.file="+promFile,
		"--storage.tsdb.path="+filepath.Join(dir, "prom-data"),
		"--web.listen-address="+s.PromAddr,
		// Prometheus 2.x (Debian) needs this for ${HYHOME_HOST} in
		// external_labels; 3.x does it by default and ignores the flag.
		"--enable-feature=expand-external-labels",
	)
	WaitReady(t, "http://"+s.AMAddr+"/-/ready")
	WaitReady(t, "http://"+s.PromAddr+"/-/ready")
	return s
}

// SubstituteRules shortens the availability alerts' `for`.
func SubstituteRules(t testing.TB, data []byte, forDur string) []byte {
	t.Helper()
	root := ParseYAML(t, data)
	group := FindItem(t, Child(t, root, "groups"), "name", "hy-home-availability")
	rules := Child(t, group, "rules")
	for _, alert := range []string{"HyHomeServiceDown", "HyHomeServiceMissing"} {
		ReplaceScalar(t, FindItem(t, rules, "alert", alert), "for", "1m", forDur)
	}
	return EmitYAML(t, root)
}

// networkKeepRegex is the stack's relabelling that keeps only targets on the
// networks Prometheus is attached to.
const networkKeepRegex = "host;.*|.*;(infra_net|edge_net)"

// SubstitutePrometheus rewrites prometheus.yml for a loopback run with
// either file discovery (fileSD) or the stack's Docker discovery (docker).
func SubstitutePrometheus(t testing.TB, data []byte, rulesFile, amAddr, fileSD string, docker *DockerSD) []byte {
	t.Helper()
	root := ParseYAML(t, data)
	global := Child(t, root, "global")
	ReplaceScalar(t, global, "scrape_interval", "15s", "1s")
	ReplaceScalar(t, global, "scrape_timeout", "10s", "1s")
	ReplaceScalar(t, global, "evaluation_interval", "15s", "1s")
	SetValue(t, root, "rule_files", ToNode(t, []string{rulesFile}))

	ams := Child(t, Child(t, root, "alerting"), "alertmanagers")
	if len(ams.Content) != 1 {
		t.Fatalf("expected one alertmanagers entry, found %d", len(ams.Content))
	}
	static := Child(t, ams.Content[0], "static_configs")
	SetValue(t, static.Content[0], "targets", ToNode(t, []string{amAddr}))

	job := FindItem(t, Child(t, root, "scrape_configs"), "job_name", "hy-home")
	if docker == nil {
		DeleteKey(t, job, "docker_sd_configs")
		job.Content = append(job.Content,
			ToNode(t, "file_sd_configs"),
			ToNode(t, []map[string]any{{"files": []string{fileSD}, "refresh_interval": "1s"}}))
		return EmitYAML(t, root)
	}
	sds := Child(t, job, "docker_sd_configs")
	if len(sds.Content) != 1 {
		t.Fatalf("expected one docker_sd_configs entry, found %d", len(sds.Content))
	}
	sd := sds.Content[0]
	ReplaceScalar(t, sd, "host", "tcp://guard:2375", docker.Host)
	ReplaceScalar(t, sd, "refresh_interval", "15s", "1s")
	values := Child(t, FindItem(t, Child(t, sd, "filters"), "name", "label"), "values")
	if len(values.Content) != 1 || values.Content[0].Value != "hy-home.tier" {
		t.Fatalf("docker_sd_configs label filter: expected [hy-home.tier]")
	}
	// Docker ANDs the values of one label filter.
	values.Content = append(values.Content, ToNode(t, docker.Label))
	keep := FindItem(t, Child(t, job, "relabel_configs"), "regex", networkKeepRegex)
	ReplaceScalar(t, keep, "regex", networkKeepRegex, "host;.*|.*;(infra_net|edge_net|"+docker.Network+")")
	return EmitYAML(t, root)
}

// SubstituteAlertmanager rewrites alertmanager.yml for a loopback run whose
// Slack webhook URL is in webhookFile.
func SubstituteAlertmanager(t testing.TB, data []byte, webhookFile string) []byte {
	t.Helper()
	root := ParseYAML(t, data)
	route := Child(t, root, "route")
	ReplaceScalar(t, route, "group_wait", "10s", "1s")
	ReplaceScalar(t, route, "group_interval", "1m", "1s")
	receiver := FindItem(t, Child(t, root, "receivers"), "name", "slack-infra")
	slackConfigs := Child(t, receiver, "slack_configs")
	ReplaceScalar(t, slackConfigs.Content[0], "api_url_file", "/run/secrets/alertmanager_slack_webhook", webhookFile)
	templates := Child(t, root, "templates")
	if len(templates.Content) != 1 || templates.Content[0].Value != "templates/*.tmpl" {
		t.Fatalf("templates: expected [templates/*.tmpl]")
	}
	templates.Content[0].Value = filepath.Join(DeployDir(t), "alertmanager", "templates", "*.tmpl")
	return EmitYAML(t, root)
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
