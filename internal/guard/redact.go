package guard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"github.com/hy-home/hyhome/internal/policy"
	"io"
	"net/url"
	"strings"
)

// Reads that leak: the engine returns environment values, log and volume
// driver options and exec command lines verbatim to anyone who may read a
// container, a volume or the event stream. The read-only profiles' clients
// (Traefik, Prometheus discovery, cAdvisor, hyhome audit and ship) need
// none of those values, so the guard rewrites them in the answers of
// profiles that do not reveal them (Profile.Reveals). Keys and structure
// stay; values become redactedValue, except values that cannot be secret
// and that a consumer judges (the log and mount options a policy reads);
// environment values become a stand-in of their class that secrets-in-env
// judges as it judges the value (policy.RedactEnvValue).
//
// Rewriting is streamed: a list is rewritten element by element and the
// event stream line by line, so neither a large list nor a stream that never
// ends is held in memory or delayed.

const redactedValue = policy.RedactedValue

// redaction is what one route's answers need rewritten, by secret class.
type redaction struct {
	// rules rewrite JSON values at paths; "*" is every element of an array
	// or every value of an object.
	rules []redactRule
	// events rewrites an event stream's exec command lines.
	events bool
}

type redactRule struct {
	secret Secret
	path   []string
	fn     func(json.RawMessage) (json.RawMessage, error)
}

// Paths of secret-bearing values inside the engine's objects.
var (
	containerSpecRules = func(prefix ...string) []redactRule {
		p := func(s ...string) []string { return append(append([]string(nil), prefix...), s...) }
		return []redactRule{
			{SecretEnvironment, p("ContainerSpec", "Env"), redactEnvList},
			{SecretVolumeOptions, p("ContainerSpec", "Mounts", "*", "VolumeOptions", "DriverConfig", "Options"), redactDriverOptions},
			{SecretLogOptions, p("LogDriver", "Options"), redactLogOptions},
		}
	}
	containerRules = []redactRule{
		{SecretEnvironment, []string{"Config", "Env"}, redactEnvList},
		{SecretLogOptions, []string{"HostConfig", "LogConfig", "Config"}, redactLogOptions},
		{SecretVolumeOptions, []string{"HostConfig", "Mounts", "*", "VolumeOptions", "DriverConfig", "Options"}, redactDriverOptions},
	}
	imageRules = []redactRule{
		{SecretEnvironment, []string{"Config", "Env"}, redactEnvList},
		{SecretEnvironment, []string{"ContainerConfig", "Env"}, redactEnvList},
	}
	volumeRules = []redactRule{
		{SecretVolumeOptions, []string{"Options"}, redactDriverOptions},
		{SecretVolumeOptions, []string{"Status"}, redactAllValues},
	}
	serviceRules = append(containerSpecRules("Spec", "TaskTemplate"), containerSpecRules("PreviousSpec", "TaskTemplate")...)
	taskRules    = containerSpecRules("Spec")
)

func prefixed(prefix string, rules []redactRule) []redactRule {
	out := make([]redactRule, len(rules))
	for i, r := range rules {
		r.path = append([]string{prefix}, r.path...)
		out[i] = r
	}
	return out
}

// redactions are the routes whose answers carry secrets, by route name.
var redactions = map[string]redaction{
	"GET /containers/{name}/json": {rules: containerRules},
	"GET /images/{name}/json":     {rules: imageRules},
	"GET /volumes":                {rules: prefixed("Volumes", prefixed("*", volumeRules))},
	"GET /volumes/{name}":         {rules: volumeRules},
	"GET /services":               {rules: prefixed("*", serviceRules)},
	"GET /services/{id}":          {rules: serviceRules},
	"GET /tasks":                  {rules: prefixed("*", taskRules)},
	"GET /tasks/{id}":             {rules: taskRules},
	"GET /swarm": {rules: []redactRule{
		{SecretJoinTokens, []string{"JoinTokens", "Worker"}, redactString},
		{SecretJoinTokens, []string{"JoinTokens", "Manager"}, redactString},
	}},
	"GET /events": {events: true},
}

// redactorFor returns the redaction a profile applies to a route's
// answers, nil when there is nothing to rewrite.
func redactorFor(p *Profile, r *Route) *redaction {
	red, ok := redactions[r.Name]
	if !ok {
		return nil
	}
	out := &redaction{events: red.events && !p.Reveals(SecretExecCommands)}
	for _, rule := range red.rules {
		if !p.Reveals(rule.secret) {
			out.rules = append(out.rules, rule)
		}
	}
	if !out.events && len(out.rules) == 0 {
		return nil
	}
	return out
}

// copy rewrites an answer from src to w; flush, when not nil, is called
// whenever the output has caught up with what the engine has sent (events).
func (red *redaction) copy(w io.Writer, src io.Reader, flush func() error) error {
	if red.events {
		return redactEvents(w, src, flush)
	}
	return streamRewrite(w, src, red.rules)
}

// streamRewrite rewrites one JSON document. A top-level array is rewritten
// element by element and a top-level object member by member, one level
// deeper for an array member on a rule's path (GET /volumes), so memory
// holds one element at a time.
func streamRewrite(w io.Writer, src io.Reader, rules []redactRule) error {
	dec := json.NewDecoder(src)
	dec.UseNumber()
	bw := bufio.NewWriterSize(w, 4<<10)
	if err := rewriteTop(bw, dec, rules); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("the engine's answer holds more than one JSON value")
	}
	if err := bw.WriteByte('\n'); err != nil {
		return err
	}
	return bw.Flush()
}

func rewriteTop(w *bufio.Writer, dec *json.Decoder, rules []redactRule) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('['):
		return rewriteArray(w, dec, rules)
	case json.Delim('{'):
		if err := w.WriteByte('{'); err != nil {
			return err
		}
		for i := 0; dec.More(); i++ {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key := kt.(string)
			if i > 0 {
				_ = w.WriteByte(',')
			}
			kb, _ := json.Marshal(key)
			_, _ = w.Write(kb)
			_ = w.WriteByte(':')
			sub := subRules(rules, key)
			if streamable(sub) {
				// An array member on a rule's path: stream its elements
				// when it is one (null and other values pass whole).
				var raw json.RawMessage
				if t, err := peekDelim(dec); err == nil && t == '[' {
					if _, err := dec.Token(); err != nil {
						return err
					}
					if err := rewriteArray(w, dec, sub); err != nil {
						return err
					}
					continue
				}
				if err := dec.Decode(&raw); err != nil {
					return err
				}
				out, err := rewriteValue(raw, sub)
				if err != nil {
					return err
				}
				_, _ = w.Write(out)
				continue
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			out, err := rewriteValue(raw, sub)
			if err != nil {
				return err
			}
			_, _ = w.Write(out)
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		return w.WriteByte('}')
	}
	// A scalar answer (null) has nothing to redact.
	b, _ := json.Marshal(tok)
	_, err = w.Write(b)
	return err
}

// rewriteArray writes the rest of an array whose "[" was read, rewriting
// each element with the rules under "*".
func rewriteArray(w *bufio.Writer, dec *json.Decoder, rules []redactRule) error {
	elem := subRules(rules, "*")
	if err := w.WriteByte('['); err != nil {
		return err
	}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		out, err := rewriteValue(raw, elem)
		if err != nil {
			return err
		}
		if i > 0 {
			_ = w.WriteByte(',')
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	return w.WriteByte(']')
}

// peekDelim reports the delimiter the next value starts with, without
// consuming it (0 for a scalar).
func peekDelim(dec *json.Decoder) (byte, error) {
	b, err := io.ReadAll(io.LimitReader(dec.Buffered(), 64))
	if err != nil {
		return 0, err
	}
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n', ':':
			continue
		case '[', '{':
			return c, nil
		}
		return 0, nil
	}
	return 0, errors.New("not buffered")
}

// streamable reports whether rules continue below an array ("*" next).
func streamable(rules []redactRule) bool {
	for _, r := range rules {
		if len(r.path) > 0 && r.path[0] == "*" {
			return true
		}
	}
	return false
}

// subRules are the rules below one key (or "*"), with that key dropped.
func subRules(rules []redactRule, key string) []redactRule {
	var out []redactRule
	for _, r := range rules {
		if len(r.path) > 0 && r.path[0] == key {
			r.path = r.path[1:]
			out = append(out, r)
		}
	}
	return out
}

// rewriteValue applies rules (paths relative to raw) to one value in
// memory. Values that are null or of another shape than the rule expects
// are left as they are: there is nothing of that kind to redact.
func rewriteValue(raw json.RawMessage, rules []redactRule) (json.RawMessage, error) {
	if len(rules) == 0 {
		return raw, nil
	}
	var here []redactRule
	var below []redactRule
	for _, r := range rules {
		if len(r.path) == 0 {
			here = append(here, r)
		} else {
			below = append(below, r)
		}
	}
	for _, r := range here {
		if isNull(raw) {
			return raw, nil
		}
		out, err := r.fn(raw)
		if err != nil {
			return nil, err
		}
		raw = out
	}
	if len(below) == 0 || isNull(raw) {
		return raw, nil
	}
	switch firstByte(raw) {
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		changed := false
		for k, v := range obj {
			var sub []redactRule
			for _, r := range below {
				if r.path[0] == k || r.path[0] == "*" {
					r.path = r.path[1:]
					sub = append(sub, r)
				}
			}
			if len(sub) == 0 {
				continue
			}
			nv, err := rewriteValue(v, sub)
			if err != nil {
				return nil, err
			}
			obj[k], changed = nv, true
		}
		if !changed {
			return raw, nil
		}
		return json.Marshal(obj)
	case '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return nil, err
		}
		sub := subRules(below, "*")
		if len(sub) == 0 {
			return raw, nil
		}
		for i, v := range arr {
			nv, err := rewriteValue(v, sub)
			if err != nil {
				return nil, err
			}
			arr[i] = nv
		}
		return json.Marshal(arr)
	}
	return raw, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func firstByte(raw json.RawMessage) byte {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// redactEnvList rewrites ["KEY=value", ...]: keys stay, and each value
// becomes policy.RedactEnvValue's stand-in of its class, so that hyhome
// audit's secrets-in-env judges the redacted list exactly as the real one
// while no credential or unclassified value is shown.
func redactEnvList(raw json.RawMessage) (json.RawMessage, error) {
	var env []string
	if err := json.Unmarshal(raw, &env); err != nil {
		return raw, nil // not a list of strings: nothing of the kind
	}
	for i, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[i] = k + "=" + policy.RedactEnvValue(k, v)
		}
	}
	return json.Marshal(env)
}

// logOptionsKept are log driver options whose values are configuration,
// not credentials, and that a policy may judge (where logs are sent).
var logOptionsKept = map[string]bool{
	"max-size": true, "max-file": true, "compress": true, "mode": true, "max-buffer-size": true,
	"tag": true, "labels": true, "labels-regex": true, "env": true, "env-regex": true,
	"cache-disabled": true, "cache-max-size": true, "cache-max-file": true, "cache-compress": true,
	"syslog-address": true, "syslog-facility": true, "syslog-format": true, "syslog-tls-skip-verify": true,
	"fluentd-address": true, "fluentd-async": true, "fluentd-async-connect": true, "fluentd-buffer-limit": true,
	"fluentd-retry-wait": true, "fluentd-max-retries": true, "fluentd-sub-second-precision": true, "fluentd-request-ack": true,
	"gelf-address": true, "gelf-compression-type": true, "gelf-compression-level": true,
	"gelf-tcp-max-reconnect": true, "gelf-tcp-reconnect-delay": true,
	"splunk-url": true, "splunk-source": true, "splunk-sourcetype": true, "splunk-index": true, "splunk-format": true,
	"splunk-verify-connection": true, "splunk-gzip": true, "splunk-gzip-level": true, "splunk-insecureskipverify": true,
	"awslogs-region": true, "awslogs-group": true, "awslogs-stream": true, "awslogs-create-group": true,
	"awslogs-datetime-format": true, "awslogs-multiline-pattern": true,
	"gcp-project": true, "gcp-log-cmd": true, "loki-url": true, "loki-batch-size": true, "loki-retries": true,
}

// redactLogOptions keeps the values of logOptionsKept (without a URL's
// user information) and redacts every other value (splunk-token, and
// whatever options a log driver plugin reads).
func redactLogOptions(raw json.RawMessage) (json.RawMessage, error) {
	return redactStringMap(raw, func(k, v string) string {
		if logOptionsKept[strings.ToLower(k)] {
			return stripUserinfo(v)
		}
		return redactedValue
	})
}

// mountOptionsKept are mount(8) options, in a local volume's o=, whose
// values are not credentials: addresses, ids, modes, sizes, overlay
// directories (host paths that a policy judges).
var mountOptionsKept = map[string]bool{
	"addr": true, "uid": true, "gid": true, "mode": true, "size": true, "nr_inodes": true, "nr_blocks": true,
	"nfsvers": true, "vers": true, "port": true, "proto": true, "timeo": true, "retrans": true, "sec": true,
	"rsize": true, "wsize": true, "file_mode": true, "dir_mode": true, "lowerdir": true, "upperdir": true, "workdir": true,
	"context": true, "fscontext": true, "defcontext": true, "rootcontext": true, "mountport": true, "mountvers": true,
}

// redactDriverOptions rewrites volume driver options: the local driver's
// type and device stay (a host path or device a policy judges), its o=
// keeps flags and the values of mountOptionsKept (a CIFS password= or
// username= is redacted), and every other driver option's value is
// redacted.
func redactDriverOptions(raw json.RawMessage) (json.RawMessage, error) {
	return redactStringMap(raw, func(k, v string) string {
		switch strings.ToLower(k) {
		case "type":
			return v
		case "device":
			return stripUserinfo(v)
		case "o":
			return redactMountOptions(v)
		}
		return redactedValue
	})
}

func redactMountOptions(o string) string {
	parts := strings.Split(o, ",")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		if hasValue && !mountOptionsKept[strings.ToLower(strings.TrimSpace(k))] {
			parts[i] = k + "=" + redactedValue
		}
	}
	return strings.Join(parts, ",")
}

// redactAllValues redacts every value of an object (a volume driver's
// Status, whose content is the driver's own).
func redactAllValues(raw json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw, nil
	}
	for k := range m {
		m[k] = json.RawMessage(`"` + redactedValue + `"`)
	}
	return json.Marshal(m)
}

// redactString redacts a non-empty string.
func redactString(raw json.RawMessage) (json.RawMessage, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return raw, nil
	}
	return json.Marshal(redactedValue)
}

func redactStringMap(raw json.RawMessage, fn func(k, v string) string) (json.RawMessage, error) {
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return redactAllValues(raw)
	}
	for k, v := range m {
		m[k] = fn(k, v)
	}
	return json.Marshal(m)
}

// stripUserinfo removes a URL's user information (https://user:pass@host).
func stripUserinfo(v string) string {
	if !strings.Contains(v, "@") || !strings.Contains(v, "://") {
		return v
	}
	u, err := url.Parse(v)
	if err != nil {
		return redactedValue
	}
	if u.User != nil {
		u.User = url.User(redactedValue)
	}
	return u.String()
}

// redactEvents copies an event stream line by line (the engine writes one
// JSON object per line), rewriting the command line that exec events carry
// after their action ("exec_create: sh -c 'mysql --password=…'"), and
// flushing whenever it has written all the engine has sent so far.
func redactEvents(w io.Writer, src io.Reader, flush func() error) error {
	br := bufio.NewReaderSize(src, 16<<10)
	bw := bufio.NewWriterSize(w, 4<<10)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if len(line) > 0 {
			out := line
			if bytes.Contains(line, []byte(`"exec_`)) {
				out = redactEvent(line)
			}
			if _, werr := bw.Write(out); werr != nil {
				return werr
			}
		}
		if br.Buffered() == 0 || err != nil {
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
			if flush != nil {
				if ferr := flush(); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// redactEvent rewrites one event line; a line that is not an event object
// is dropped rather than passed on unread.
func redactEvent(line []byte) []byte {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(line, &ev); err != nil {
		return nil
	}
	for _, key := range []string{"Action", "status"} {
		var s string
		if json.Unmarshal(ev[key], &s) != nil {
			continue
		}
		if action, _, ok := strings.Cut(s, ": "); ok && strings.HasPrefix(action, "exec_") {
			ev[key], _ = json.Marshal(action + ": " + redactedValue)
		}
	}
	out, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	return append(out, '\n')
}
