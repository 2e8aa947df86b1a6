package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExplainJSON(t *testing.T) {
	cases := []struct {
		name, issuer, claims string
		role                 string
		denied               bool
		reason, mapping      string
		rule                 int
	}{
		{"keycloak admin", "https://kc.example.com/realms/ai", `{"resource_access":{"litellm":{"roles":["team-a","admin"]}}}`, "proxy_admin", false, "Matched", "ai/keycloak", 0},
		{"keycloak default", "https://kc.example.com/realms/ai", `{"resource_access":{"account":{"roles":["x"]}}}`, "internal_user_viewer", false, "Default", "ai/keycloak", -1},
		{"okta first match", "https://corp.okta.com/oauth2/default", `{"groups":["LiteLLM-ML-Users","LiteLLM-Admins"]}`, "proxy_admin", false, "Matched", "ai/okta", 0},
		{"okta deny", "https://corp.okta.com/oauth2/default", `{"groups":["Everyone"]}`, "", true, "NoMatch", "ai/okta", -1},
		{"google expression", "https://accounts.google.com", `{"hd":"corp.example","email_verified":true}`, "internal_user_viewer", false, "Matched", "ai/google", 0},
		{"unknown issuer", "https://evil.example", `{"groups":["LiteLLM-Admins"]}`, "", true, "NoRoleMapping", "", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.claims, "explain", "-f", "testdata/mappings", "--claims", "-", "--issuer", tc.issuer, "-o", "json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var got struct {
				Role   string `json:"role"`
				Denied bool   `json:"denied"`
				Reason string `json:"reason"`
				Source struct {
					RoleMapping string `json:"roleMapping"`
					Rule        *int   `json:"rule"`
					Claim       string `json:"claim"`
					Value       string `json:"value"`
				} `json:"source"`
				Matches []map[string]any `json:"matches"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			rule := -1
			if got.Source.Rule != nil {
				rule = *got.Source.Rule
			}
			if got.Role != tc.role || got.Denied != tc.denied || got.Reason != tc.reason || got.Source.RoleMapping != tc.mapping || rule != tc.rule {
				t.Fatalf("got %+v (rule %d)\n%s", got, rule, out)
			}
			if got.Matches == nil {
				t.Fatal("matches must be a list, never null")
			}
		})
	}
}

func TestExplainText(t *testing.T) {
	code, out, _ := runCLI(t, `{"resource_access":{"litellm":{"roles":["team-a","admin"]}}}`,
		"explain", "-f", "testdata/mappings/idps.yaml", "--claims", "-", "--issuer", "https://kc.example.com/realms/ai")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Decision: proxy_admin (Matched)", "* ai/keycloak#0", "ai/keycloak#1 (priority 100) resource_access.litellm.roles=team-a -> internal_user"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainInvalidInput(t *testing.T) {
	claims := filepath.Join(t.TempDir(), "claims.json")
	if err := os.WriteFile(claims, []byte(`{"groups":["a"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"broken regex names file and field", "", []string{"-f", "testdata/bad/regex.yaml", "--claims", claims}, []string{"testdata/bad/regex.yaml", "spec.rules[0].regex", "missing closing )"}},
		{"unknown field", "", []string{"-f", "testdata/bad/unknown-field.yaml", "--claims", claims}, []string{"unknown-field.yaml", "rulez"}},
		{"claims not JSON", "{nope", []string{"-f", "testdata/mappings", "--claims", "-"}, []string{"claims from stdin", "not a JSON object"}},
		{"claims a list", "[1]", []string{"-f", "testdata/mappings", "--claims", "-"}, []string{"not a JSON object"}},
		{"missing file", "", []string{"-f", "testdata/none.yaml", "--claims", claims}, []string{"testdata/none.yaml"}},
		{"no -f", "", []string{"--claims", claims}, []string{"-f is required"}},
		{"bad output", "", []string{"-f", "testdata/mappings", "--claims", claims, "-o", "xml"}, []string{"-o must be text or json"}},
		{"no mappings", "", []string{"-f", "testdata/other.yaml", "--claims", claims}, []string{"no RoleMapping found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tc.stdin, append([]string{"explain"}, tc.args...)...)
			if code != exitInvalid {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitInvalid, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q: %s", w, errs)
				}
			}
		})
	}
}
