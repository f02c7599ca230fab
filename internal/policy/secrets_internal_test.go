package policy

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/workload"
)

func TestKeyWords(t *testing.T) {
	for key, want := range map[string][]string{
		"WEBPASSWORD":                        {"WEB", "PASSWORD"},
		"sonar.jdbc.password":                {"SONAR", "JDBC", "PASSWORD"},
		"dbPassword":                         {"DB", "PASSWORD"},
		"APIKey":                             {"API", "KEY"},
		"OAUTH2_CLIENT_SECRET":               {"OAUTH", "2", "CLIENT", "SECRET"},
		"DBPASS":                             {"DB", "PASS"},
		"BYPASS_PROXY":                       {"BYPASS", "PROXY"},
		"MAX_TOKENS":                         {"MAX", "TOKENS"},
		"AUTHENTICATION_APIKEY_ALLOWED_KEYS": {"AUTHENTICATION", "APIKEY", "ALLOWED", "KEYS"},
		"x-api-token":                        {"X", "API", "TOKEN"},
	} {
		if got := keyWords(key); !reflect.DeepEqual(got, want) {
			t.Errorf("keyWords(%q) = %v, want %v", key, got, want)
		}
	}
}

// FuzzJudgeEnv: any name and value is judged without a panic, and a
// finding always names its variable and never quotes a literal value.
func FuzzJudgeEnv(f *testing.F) {
	for _, s := range [][2]string{
		{"DB_PASSWORD", "hunter2"}, {"DATABASE_URL", "postgresql://u:p@db/app"}, {"X", "user:pw@tcp(db)/x"},
		{"CONN", "Server=x;Password=y"}, {"APP_KEY", "base64:QUJD"}, {"SECRET_PORT", "8080"}, {"%", "://@"},
	} {
		f.Add(s[0], s[1], s[1], true, false)
	}
	f.Fuzz(func(t *testing.T, key, raw, value string, hasValue, interpolated bool) {
		v := judgeEnv(workload.EnvVar{Key: key, Raw: raw, Value: value, HasValue: hasValue, Interpolated: interpolated})
		if !v.report {
			return
		}
		if !strings.HasPrefix(v.message, key+" ") {
			t.Errorf("message %q does not start with the key %q", v.message, key)
		}
		if strings.Contains(v.message, "literal") && len(value) >= 4 && strings.Contains(strings.TrimPrefix(v.message, key), value) {
			t.Errorf("message %q quotes the literal value", v.message)
		}
	})
}
