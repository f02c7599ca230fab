package policy

import (
	"fmt"
	"math"
	"net/url"
	"path"
	"regexp"
	"strings"
	"unicode"

	"github.com/hy-home/hyhome/internal/workload"
)

// secrets-in-env: an environment entry is judged by what its name means and
// what its value is, not by a word appearing somewhere in the name.
//
// The name is split into words (separators, camelCase, digits and words run
// together such as WEBPASSWORD) and read from its head, the last word that
// is not a trailer like VALUE or BASE64: PASSWORD_MIN_LENGTH is a length,
// SECRET_PORT a port, REFRESH_TOKEN_EXPIRY a duration. A head that names a
// credential makes a strong name (DB_PASSWORD, APP_SECRET, SIGNING_SALT);
// KEY, SALT-like and AUTH heads need a qualifier before them (API_KEY,
// WIREGUARD_PRESHARED_KEY, *_VAULT_KEY), and without one the value decides
// (a weak name). A switch or count word before the head (ALLOW_EMPTY_PASSWORD,
// MYSQL_RANDOM_ROOT_PASSWORD, MAX_TOKENS) makes the entry a setting.
//
// The value is then classified: empty, a boolean, a number, a host or
// host:port, a path (under /run/secrets/ or not), a URL or connection string
// with a password in it, a secret-shaped literal (long, mixed classes or high
// entropy), or taken from the host environment (${VAR}, a bare KEY). A URL or
// connection string with a password is a credential whatever its name.
// testdata/secrets-labelled.tsv holds the measured precision and recall.

// credentialHeads name a credential by themselves.
var credentialHeads = map[string]bool{
	"PASSWORD": true, "PASSWD": true, "PASS": true, "PWD": true, "PASSPHRASE": true, "PIN": true,
	"SECRET": true, "TOKEN": true, "APIKEY": true, "CREDENTIAL": true, "PSK": true, "SALT": true,
	"PRIVATEKEY": true,
}

// passwordHeads are heads whose every literal value is a password, short
// and numeric ones included.
var passwordHeads = map[string]bool{"PASSWORD": true, "PASSWD": true, "PASS": true, "PWD": true, "PASSPHRASE": true, "PIN": true}

// keyHeads name key material when a qualifier says what it is for.
var keyHeads = map[string]bool{"KEY": true, "IV": true, "SEED": true, "AUTH": true, "HASH": true, "NONCE": true}

// keyQualifiers before a KEY-like head make it a credential.
var keyQualifiers = map[string]bool{
	"API": true, "SECRET": true, "PRIVATE": true, "ENCRYPTION": true, "ENCRYPT": true, "CRYPT": true,
	"CRYPTO": true, "AES": true, "SIGNING": true, "SIGN": true, "SIGNATURE": true, "MASTER": true, "APP": true,
	"PRESHARED": true, "SHARED": true, "PSK": true, "VAULT": true, "SESSION": true, "COOKIE": true, "JWT": true,
	"HMAC": true, "LICENSE": true, "SETUP": true, "CREDS": true, "ACCESS": true, "CLIENT": true, "ADMIN": true,
	"ROOT": true, "AUTH": true, "BASIC": true, "WEBHOOK": true, "SERVER": true, "INTERNAL": true, "SSH": true,
	"TLS": true, "SSL": true, "GPG": true, "PGP": true, "DEPLOY": true, "ENROLLMENT": true, "REGISTRATION": true,
}

// publicKeyQualifiers before KEY name something that is not secret.
var publicKeyQualifiers = map[string]bool{
	"PUBLIC": true, "PUB": true, "PRIMARY": true, "SORT": true, "PARTITION": true, "CACHE": true, "FOREIGN": true,
	"HOT": true, "SHORTCUT": true, "LOOKUP": true, "ROUTING": true, "GROUP": true, "HOST": true, "KNOWN": true,
	"IDEMPOTENCY": true, "OBJECT": true, "BUCKET": true, "PREFIX": true, "PUSH": true, "VAPID": true,
}

// settingWords before the head make the entry a setting about credentials:
// a switch (ALLOW_EMPTY_PASSWORD) or a count (MAX_TOKENS).
var settingWords = map[string]bool{
	"ALLOW": true, "ALLOWS": true, "EMPTY": true, "RANDOM": true, "GENERATE": true, "ENABLE": true,
	"ENABLED": true, "DISABLE": true, "DISABLED": true, "REQUIRE": true, "REQUIRED": true, "SKIP": true,
	"USE": true, "NO": true, "MAX": true, "MIN": true, "NUM": true, "COUNT": true, "SHOW": true, "HIDE": true,
}

// trailers after a credential word keep it the head (SECRET_KEY_BASE,
// API_TOKEN_VALUE, PASSWORD_2).
var trailers = map[string]bool{
	"VALUE": true, "STRING": true, "STR": true, "B64": true, "BASE64": true, "HEX": true, "RAW": true,
	"PLAIN": true, "PLAINTEXT": true, "TEXT": true, "BASE": true, "ENCODED": true,
}

// runTogether are credential words found inside a longer word (WEBPASSWORD,
// DBPASS), longest first.
var runTogether = []string{"PASSPHRASE", "PASSWORD", "PASSWD", "APIKEY", "SECRET", "TOKEN"}

// passWords end in PASS without being one.
var passWords = map[string]bool{"BYPASS": true, "COMPASS": true, "SURPASS": true, "TRESPASS": true, "OVERPASS": true, "UNDERPASS": true, "ENCOMPASS": true}

// keyWords splits an environment variable name into upper-case words.
func keyWords(key string) []string {
	var words []string
	rs := []rune(key)
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			words = append(words, strings.ToUpper(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush(i)
			continue
		}
		if start >= 0 {
			prev := rs[i-1]
			switch {
			case unicode.IsUpper(r) && unicode.IsLower(prev): // dbPassword
				flush(i)
			case unicode.IsUpper(r) && unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]): // APIKey
				flush(i)
			case unicode.IsDigit(r) != unicode.IsDigit(prev): // PASSWORD2, S3
				flush(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(rs))
	var out []string
	for _, w := range words {
		out = append(out, splitRunTogether(w)...)
	}
	return out
}

// splitRunTogether finds a credential word inside a longer one.
func splitRunTogether(w string) []string {
	if credentialHeads[singular(w)] || keyHeads[singular(w)] {
		return []string{w}
	}
	for _, tok := range runTogether {
		if i := strings.Index(w, tok); i >= 0 {
			var out []string
			if i > 0 {
				out = append(out, w[:i])
			}
			rest := w[i+len(tok):]
			if rest == "S" {
				return append(out, tok+"S")
			}
			out = append(out, tok)
			if rest != "" {
				out = append(out, splitRunTogether(rest)...)
			}
			return out
		}
	}
	if len(w) > len("PASS") && strings.HasSuffix(w, "PASS") && !passWords[w] {
		return []string{w[:len(w)-len("PASS")], "PASS"}
	}
	return []string{w}
}

func singular(w string) string {
	if len(w) > 3 && strings.HasSuffix(w, "S") && !strings.HasSuffix(w, "SS") {
		return w[:len(w)-1]
	}
	return w
}

// nameKind is what an environment variable's name says it holds.
type nameKind int

const (
	nameOther  nameKind = iota
	nameWeak            // key material without a qualifier: the value decides
	nameStrong          // a credential
)

// classifyName reads a variable name from its head. password reports a
// password-like head, whose every literal is a credential.
func classifyName(key string) (kind nameKind, password bool) {
	switch strings.ToUpper(key) {
	case "PWD", "OLDPWD":
		return nameOther, false // the shell's working directories
	}
	words := keyWords(key)
	h := len(words) - 1
	for h > 0 && (trailers[words[h]] || isDigits(words[h])) {
		h--
	}
	if h < 0 {
		return nameOther, false
	}
	head := singular(words[h])
	before := words[:h]
	for _, w := range before {
		if settingWords[w] {
			return nameOther, false
		}
	}
	switch {
	case credentialHeads[head]:
		return nameStrong, passwordHeads[head]
	case keyHeads[head]:
		if len(before) > 0 && publicKeyQualifiers[before[len(before)-1]] {
			return nameOther, false
		}
		for _, w := range before {
			if keyQualifiers[w] || credentialHeads[singular(w)] {
				return nameStrong, false
			}
		}
		return nameWeak, false
	}
	return nameOther, false
}

// IsCredentialKey reports whether an environment variable's name says it
// holds a credential.
func IsCredentialKey(key string) bool {
	kind, _ := classifyName(key)
	return kind == nameStrong
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// underRunSecrets reports whether a container path is inside /run/secrets/
// once cleaned as the engine cleans mount destinations ("/run/secrets/../x"
// is /x).
func underRunSecrets(p string) bool {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "/") {
		return false
	}
	return strings.HasPrefix(path.Clean(p), "/run/secrets/")
}

// unquote drops one pair of quotes a list-form entry (`KEY=""`) keeps
// literally: `""` sets no credential.
func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return v[1 : len(v)-1]
	}
	return v
}

func isBoolish(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "false", "yes", "no", "on", "off":
		return true
	}
	return false
}

var (
	numberRE = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)
	// sizeRE: 10MB, 2gb, 512m.
	sizeRE = regexp.MustCompile(`(?i)^[0-9]+(\.[0-9]+)?\s*([kmgtp]i?b?|b)$`)
	// hostRE: a host name or address with a dot or a port (db:5432,
	// smtp.example.com, 10.0.0.1:25).
	hostRE = regexp.MustCompile(`^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|[A-Za-z0-9-]+)(:[0-9]{1,5})?$`)
	// dsnRE: user:password@host forms without a scheme (Go MySQL DSNs).
	dsnRE = regexp.MustCompile(`^[^\s:@/]+:[^\s@/]+@`)
	// connPasswordRE: Password=... in an ADO/JDBC-style connection string.
	connPasswordRE = regexp.MustCompile(`(?i)(^|[;\s])(password|pwd)\s*=\s*[^;\s]`)
	// varRE matches an interpolation: ${VAR...} or $VAR.
	varRE = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
)

// settingValue reports a value that is a setting rather than key material:
// a boolean, a number, a size, a host or host:port, a language tag.
func settingValue(v string) bool {
	return isBoolish(v) || numberRE.MatchString(v) || sizeRE.MatchString(v) ||
		strings.ContainsAny(v, ".:") && hostRE.MatchString(v)
}

// secretShaped reports a literal that looks like generated key material or
// a password: long enough, and mixing character classes or of high entropy.
func secretShaped(v string) bool {
	if len(v) < 8 || settingValue(v) || strings.HasPrefix(v, "/") || strings.Contains(v, "://") {
		return false
	}
	var lower, upper, digit, other bool
	for _, r := range v {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		case r != '_' && r != '-':
			other = true
		}
	}
	classes := 0
	for _, c := range []bool{lower, upper, digit, other} {
		if c {
			classes++
		}
	}
	return classes >= 2 || len(v) >= 20 && entropy(v) >= 3.5
}

// entropy is the Shannon entropy of s in bits per character.
func entropy(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	h := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h
}

// urlPassword reports whether a value carries a password in a URL's
// userinfo, a scheme-less DSN or a connection string; fromHost is true when
// that password is interpolated from the host environment.
func urlPassword(raw, value string) (has, fromHost bool) {
	// A password in a URL or DSN needs an @, in a connection string an =.
	if !strings.ContainsAny(raw, "@=") && !strings.ContainsAny(value, "@=") {
		return false, false
	}
	// Interpolations stand in as a marker, so that the shape is judged as
	// written: postgres://${USER}:${PASS}@db/app has a password.
	marked := raw
	if strings.Contains(raw, "$") {
		marked = varRE.ReplaceAllString(raw, "HYHOMEVAR")
	}
	for _, s := range []string{marked, value} {
		if s == "" {
			continue
		}
		pw := ""
		if i := strings.Index(s, "://"); i > 0 {
			if u, err := url.Parse(s); err == nil && u.User != nil {
				pw, _ = u.User.Password()
			} else if at := strings.LastIndex(s[i+3:], "@"); at >= 0 {
				// url.Parse refuses some hosts (a `_` in a port); read the
				// userinfo by hand.
				if _, p, ok := strings.Cut(s[i+3:i+3+at], ":"); ok {
					pw = p
				}
			}
		} else if dsnRE.MatchString(s) {
			userinfo, _, _ := strings.Cut(s, "@")
			_, pw, _ = strings.Cut(userinfo, ":")
		} else if connPasswordRE.MatchString(s) {
			pw = "set"
		}
		if pw != "" {
			return true, s == marked && strings.Contains(pw, "HYHOMEVAR")
		}
	}
	return false, false
}

// literalDefaultRE: ${VAR:-default}, ${VAR-default}, ${VAR:+alt}, ${VAR+alt}
// with text written in the file.
var literalDefaultRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:?[-+][^}$]`)

var varNameRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// varNames lists the variables a raw value interpolates ($$ escapes one).
func varNames(raw string) []string {
	var out []string
	for _, m := range varNameRE.FindAllStringSubmatchIndex(strings.ReplaceAll(raw, "$$", "\x00\x00"), -1) {
		out = append(out, raw[m[2]:m[3]])
	}
	return out
}

// secretVerdict is how one environment entry is judged.
type secretVerdict struct {
	report   bool
	message  string
	severity Severity // 0: the rule's own
}

// judgeEnv classifies one environment entry.
func judgeEnv(e workload.EnvVar) secretVerdict {
	value := unquote(e.Value)
	if base, ok := cutSuffixFold(e.Key, "_FILE"); ok {
		if kind, _ := classifyName(base); kind == nameStrong && e.HasValue && value != "" && !underRunSecrets(value) {
			return secretVerdict{true, fmt.Sprintf("%s points at %s, not a Docker secret under /run/secrets/", e.Key, value), Warning}
		}
		return secretVerdict{}
	}
	if has, fromHost := urlPassword(rawOr(e, value), value); has {
		if fromHost {
			return secretVerdict{report: true, message: fmt.Sprintf("%s takes the password in its URL from the host environment", e.Key)}
		}
		return secretVerdict{report: true, message: fmt.Sprintf("%s holds a URL or connection string with a literal password", e.Key)}
	}
	kind, password := classifyName(e.Key)
	if kind == nameOther {
		return secretVerdict{}
	}
	hostValue := func() secretVerdict {
		// Name the variables, never the value: a default in the file
		// (${DB_PASS:-changeme}) is itself a literal credential.
		from := "interpolated"
		if names := varNames(e.Raw); len(names) > 0 {
			from = "$" + strings.Join(names, ", $")
		}
		msg := fmt.Sprintf("%s takes a credential from the host environment (%s)", e.Key, from)
		if literalDefaultRE.MatchString(e.Raw) {
			msg += " and falls back to a literal default"
		}
		return secretVerdict{report: true, message: msg}
	}
	switch {
	case !e.HasValue:
		return secretVerdict{report: true, message: fmt.Sprintf("%s passes a credential through from the host environment", e.Key)}
	case underRunSecrets(value):
		return secretVerdict{}
	case e.Interpolated:
		// The host decides the value; a default that is a switch or a
		// number (ALLOW_EMPTY_PASSWORD: ${X:-yes}) says it is a setting.
		if value != "" && (isBoolish(value) || !password && settingValue(value)) {
			return secretVerdict{}
		}
		return hostValue()
	case value == "", isBoolish(value):
		return secretVerdict{}
	case strings.HasPrefix(value, "/") && !password:
		return secretVerdict{true, fmt.Sprintf("%s points at %s, not a Docker secret under /run/secrets/", e.Key, value), Warning}
	case kind == nameStrong && (password || !settingValue(value)):
		return secretVerdict{report: true, message: fmt.Sprintf("%s holds a literal credential", e.Key)}
	case kind == nameWeak && secretShaped(value):
		return secretVerdict{report: true, message: fmt.Sprintf("%s holds literal key material", e.Key)}
	}
	return secretVerdict{}
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// rawOr is the value as written, or the value when the source does not
// know how it was written (runtime sources).
func rawOr(e workload.EnvVar, value string) string {
	if e.Raw != "" {
		return e.Raw
	}
	return value
}

// RedactedValue replaces a secret in what hyhome shows or forwards.
const RedactedValue = "[redacted]"

// redactedURL stands for a URL or connection string with a literal
// password: it keeps the one fact secrets-in-env reads from it.
const redactedURL = "redacted://redacted:" + RedactedValue + "@redacted"

// RedactEnvValue returns what a reader that must not see secrets (the
// guard's read-only and shipper profiles) is shown of an environment value
// as the engine reports it: a stand-in of the value's own class, so that
// secrets-in-env judges the redacted entry exactly as it judges the real
// one (hyhome audit through the guard agrees with audit on the engine),
// while no credential, key material or unclassified value gets through.
// Values that are not secret and that the rule reads are kept: empty,
// booleans, /run/secrets/ paths, and other paths where the name is not a
// password's (the rule names that path in its finding).
func RedactEnvValue(key, value string) string {
	v := unquote(value)
	if v == "" || isBoolish(v) || underRunSecrets(v) {
		return value
	}
	e := workload.EnvVar{Key: key, Value: value, HasValue: true}
	if has, _ := urlPassword(value, v); has {
		return redactedURL
	}
	if _, isFile := cutSuffixFold(key, "_FILE"); isFile && strings.HasPrefix(v, "/") {
		return value // a path to a file, named in the finding
	}
	kind, password := classifyName(key)
	if kind != nameOther && !password && strings.HasPrefix(v, "/") {
		return value
	}
	if judgeEnv(e).report || kind == nameOther {
		// A credential (strong names read any non-setting value as one,
		// weak names a secret-shaped one: RedactedValue is both), or a
		// value the rule does not read at all.
		return RedactedValue
	}
	// A credential-like name whose value the rule reads as a setting (a
	// port, a size, a short word): a setting stands in for it.
	return "0"
}
