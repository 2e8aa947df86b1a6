package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rolesync/rolesync/internal/review"
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

// diffJSON is the part of diff -o json the tests read.
type diffJSON struct {
	Users   int `json:"users"`
	Gains   int `json:"gains"`
	Changes []struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Gain      bool   `json:"gain"`
		Old       struct {
			Role   string `json:"role"`
			Denied bool   `json:"denied"`
			Reason string `json:"reason"`
		} `json:"old"`
		New struct {
			Role   string `json:"role"`
			Denied bool   `json:"denied"`
			Reason string `json:"reason"`
			Source string `json:"source"`
		} `json:"new"`
	} `json:"changes"`
	Transitions []struct {
		From  string `json:"from"`
		To    string `json:"to"`
		Users int    `json:"users"`
		Gain  bool   `json:"gain"`
	} `json:"transitions"`
	Overridden []struct {
		Name string `json:"name"`
	} `json:"overridden"`
}

func TestDiffFromFiles(t *testing.T) {
	code, out, errs := runCLI(t, "", "diff", "-f", "testdata/review/proposed", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml", "-o", "json")
	if code != exitChanges {
		t.Fatalf("exit %d, want 1 (changes): %s", code, errs)
	}
	var got diffJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var order []string
	for _, c := range got.Changes {
		to := c.New.Role
		if c.New.Denied {
			to = "denied " + c.New.Reason
		}
		order = append(order, c.Namespace+"/"+c.Name+" -> "+to)
	}
	// Gains first (to proxy_admin first of all), then the rest by namespace and name.
	want := []string{
		"ai-a/bo -> proxy_admin",
		"ai-b/eve -> internal_user",
		"ai-a/ana -> denied NoMatch",
		"ai-a/cy -> internal_user_viewer",
		"ai-b/fay -> denied NoRoleMapping",
	}
	if strings.Join(order, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	if got.Users != 7 || got.Gains != 2 || !got.Changes[0].Gain || got.Changes[2].Gain {
		t.Fatalf("users %d gains %d: %s", got.Users, got.Gains, out)
	}
	if len(got.Overridden) != 1 || got.Overridden[0].Name != "dee" {
		t.Fatalf("overridden %+v, want dee (roleOverride) listed as unaffected", got.Overridden)
	}
	if len(got.Transitions) != 5 || !got.Transitions[0].Gain || got.Transitions[0].Users != 1 {
		t.Fatalf("transitions %+v", got.Transitions)
	}

	// The CI gate: a privilege gain exits 3.
	if code, _, _ := runCLI(t, "", "diff", "-f", "testdata/review/proposed", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml", "--fail-on", "escalation", "-o", "markdown"); code != exitEscalation {
		t.Fatalf("--fail-on escalation: exit %d, want 3", code)
	}
	// Markdown reads as a pull-request comment.
	_, md, _ := runCLI(t, "", "diff", "-f", "testdata/review/proposed", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml", "-o", "markdown")
	for _, s := range []string{"5 of 7 users change (2 gain privilege)", `| ⬆️ gain | bo | ai-a | proxy\_admin\_viewer → **proxy\_admin** |`, "unaffected: ai-a/dee"} {
		if !strings.Contains(md, s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md)
		}
	}
	// One namespace only: -n scopes users and mappings.
	code, out, _ = runCLI(t, "", "diff", "-f", "testdata/review/proposed", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml", "-n", "ai-b")
	if code != exitChanges || !strings.Contains(out, "2 of 2 users change (1 gain privilege)") || strings.Contains(out, "ai-a/") {
		t.Fatalf("-n ai-b: exit %d\n%s", code, out)
	}
	// No change: exit 0.
	if code, out, errs := runCLI(t, "", "diff", "-f", "testdata/review/base.yaml", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml"); code != exitOK || !strings.Contains(out, "0 of 7 users change") {
		t.Fatalf("unchanged mappings: exit %d\n%s%s", code, out, errs)
	}
}

func TestDiffPrune(t *testing.T) {
	// With --prune, ai-b's proposal (only ai-a's file given) deletes nothing
	// there, but a namespace given in -f holds exactly its -f mappings.
	dir := t.TempDir()
	doc := "apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata: {name: other, namespace: ai-a}\nspec:\n  claim: groups\n  rules:\n  - {equals: nobody, role: internal_user}\n"
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, overlaid, _ := runCLI(t, "", "diff", "-f", dir, "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml")
	_, pruned, _ := runCLI(t, "", "diff", "-f", dir, "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml", "--prune")
	if !strings.Contains(overlaid, "0 of 7 users change") {
		t.Fatalf("an added mapping that matches nobody changes nobody:\n%s", overlaid)
	}
	if !strings.Contains(pruned, "3 of 7 users change") || strings.Contains(pruned, "ai-b/") {
		t.Fatalf("--prune deletes ai-a's keycloak mapping (3 users lose their role), leaves ai-b:\n%s", pruned)
	}
}

func TestDiffInvalidInputNamesFileAndField(t *testing.T) {
	code, _, errs := runCLI(t, "", "diff", "-f", "testdata/bad/regex.yaml", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml")
	if code != exitInvalid || !strings.Contains(errs, "testdata/bad/regex.yaml") || !strings.Contains(errs, "spec.rules[") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	bad := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(bad, []byte(`{"kind":"List","items":[{"kind":"ConfigMap","metadata":{"name":"x"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "", "diff", "-f", "testdata/review/proposed", "--base", "testdata/review/base.yaml", "--users", bad)
	if code != exitInvalid || !strings.Contains(errs, "users.json") || !strings.Contains(errs, "item 0") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, "", "diff", "--base", "testdata/review/base.yaml"); code != exitInvalid || !strings.Contains(errs, "-f is required") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestExplainUserFromExport(t *testing.T) {
	code, out, errs := runCLI(t, "", "explain", "--user", "dee", "-n", "ai-a", "--users", "testdata/review/users.yaml", "-f", "testdata/review/base.yaml", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Role     string `json:"role"`
		Override string `json:"roleOverride"`
		Reason   string `json:"reason"`
		Claims   struct {
			Role string `json:"role"`
		} `json:"claims"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Role != "internal_user" || got.Override != "internal_user" || got.Reason != "Override" || got.Claims.Role != "proxy_admin" {
		t.Fatalf("dee: %s", out)
	}
	_, text, _ := runCLI(t, "", "explain", "--user", "dee", "-n", "ai-a", "--users", "testdata/review/users.yaml", "-f", "testdata/review/base.yaml")
	if !strings.Contains(text, "spec.roleOverride decides: internal_user") {
		t.Fatalf("text does not say the override decides:\n%s", text)
	}
}

func TestDiffShowsTeamsGainedAndLost(t *testing.T) {
	dir := t.TempDir()
	write := func(name, teams string) string {
		doc := "apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata: {name: keycloak, namespace: ai-a}\nspec:\n" +
			"  issuer: https://kc.example.com/realms/ai\n  claim: groups\n  rules:\n  - {glob: '*', role: internal_user}\n" +
			"  allowedTeams: [ai-*]\n  teamSync: Exact\n  teams:\n" + teams
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := write("base.yaml", "  - {equals: admins, team: ai-admins}\n")
	proposed := write("proposed.yaml", "  - {regex: '/ai/(.+)', team: 'ai-$1', teamRole: admin}\n")
	code, out, errs := runCLI(t, "", "diff", "-f", proposed, "--base", base, "--users", "testdata/review/users.yaml", "-n", "ai-a", "-o", "json")
	if code != exitChanges {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Changes []struct {
			Name        string   `json:"name"`
			TeamsGained []string `json:"teamsGained"`
			TeamsLost   []string `json:"teamsLost"`
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	for _, c := range got.Changes {
		byName[c.Name] = strings.Join(c.TeamsGained, ",") + "|" + strings.Join(c.TeamsLost, ",")
	}
	// ana (admins) loses ai-admins; cy (/ai/research) gains ai-research as
	// admin; dee (admins, with a roleOverride) loses ai-admins too: the
	// controller grants an overridden user the teams of its claims.
	if byName["ana"] != "|ai-admins (user)" || byName["cy"] != "ai-research (admin)|" || byName["dee"] != "|ai-admins (user)" || len(byName) != 3 {
		t.Fatalf("team changes %v", byName)
	}
}

func TestExplainShowsTeams(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata: {name: keycloak, namespace: ai}\nspec:\n  claim: groups\n" +
		"  rules: [{glob: '/ai/*', role: internal_user}]\n  allowedTeams: ['ai-s*']\n  teams:\n  - {regex: '/ai/(.+)', team: 'ai-$1'}\n"
	f := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, `{"groups": ["/ai/search", "/ai/labs"]}`, "explain", "-f", f, "--claims", "-", "-o", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Teams []struct {
			Team, Role, Source string
		} `json:"teams"`
		Dropped []string `json:"droppedTeams"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Teams) != 1 || got.Teams[0].Team != "ai-search" || got.Teams[0].Role != "user" || len(got.Dropped) != 1 || got.Dropped[0] != "ai-labs" {
		t.Fatalf("teams %+v dropped %v", got.Teams, got.Dropped)
	}
}

// diff says where the operator's mass-change brake would hold the change.
func TestDiffShowsTheMassChangeBrake(t *testing.T) {
	args := []string{"diff", "-f", "testdata/review/proposed", "--base", "testdata/review/base.yaml", "--users", "testdata/review/users.yaml"}
	code, out, errs := runCLI(t, "", append(args, "-o", "json")...)
	var got struct {
		Held []review.HeldNamespace `json:"held"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitChanges {
		t.Fatalf("exit %d %v: %s %s", code, err, out, errs)
	}
	if len(got.Held) != 0 {
		t.Fatalf("the default brake (10 users) holds %+v in a namespace of a few users", got.Held)
	}
	_, out, _ = runCLI(t, "", append(args, "-o", "json", "--brake-min-users", "2")...)
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Held) != 1 || got.Held[0].Namespace != "ai-a" || got.Held[0].Lost != 2 || got.Held[0].Threshold != 2 {
		t.Fatalf("held %+v, want ai-a with 2 users denied or demoted", got.Held)
	}
	_, out, _ = runCLI(t, "", append(args, "--brake-min-users", "2")...)
	if !strings.Contains(out, "MASS-CHANGE BRAKE") || !strings.Contains(out, "ai-a: denies or demotes 2 of") {
		t.Fatalf("text output:\n%s", out)
	}
	if code, _, errs := runCLI(t, "", append(args, "--brake-percent", "101")...); code != exitInvalid || !strings.Contains(errs, "--brake-percent") {
		t.Fatalf("an invalid brake: exit %d %s", code, errs)
	}
}

// TestDiffFailsOnTeamAndUnknownGains: --fail-on escalation exits 3 for a
// change whose only gain is a team join, and for one whose rule reads a
// claim not stored for the users (the text names the claim and the count).
func TestDiffFailsOnTeamAndUnknownGains(t *testing.T) {
	dir := t.TempDir()
	write := func(name, extra string) string {
		doc := "apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata: {name: keycloak, namespace: ai-a}\nspec:\n" +
			"  issuer: https://kc.example.com/realms/ai\n  claim: groups\n  onNoMatch: Deny\n  rules:\n  - {glob: '*', role: internal_user_viewer}\n" + extra
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := write("base.yaml", "")
	teams := write("teams.yaml", "  allowedTeams: [ai-*]\n  teams:\n  - {equals: admins, team: ai-admins}\n")
	code, out, errs := runCLI(t, "", "diff", "-f", teams, "--base", base, "--users", "testdata/review/users.yaml", "-n", "ai-a", "--fail-on", "escalation")
	if code != exitEscalation || !strings.Contains(out, "TEAM GAINS") || !strings.Contains(out, "ai-a/ana") || !strings.Contains(out, "2 gain teams") || strings.Contains(out, "TRANSITIONS") {
		t.Fatalf("a team-only gain: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runCLI(t, "", "diff", "-f", teams, "--base", base, "--users", "testdata/review/users.yaml", "-n", "ai-a"); code != exitChanges {
		t.Fatalf("without --fail-on a team gain is a change: exit %d", code)
	}
	dept := write("dept.yaml", "  - {claim: department, equals: finance, role: proxy_admin}\n")
	code, out, errs = runCLI(t, "", "diff", "-f", dept, "--base", base, "--users", "testdata/review/users.yaml", "-n", "ai-a", "--fail-on", "escalation")
	if code != exitEscalation || !strings.Contains(out, "outcome unknown at next login: claim `department` not stored for 5 users (5 could gain") {
		t.Fatalf("a rule on a claim not stored: exit %d\n%s%s", code, out, errs)
	}
	_, js, _ := runCLI(t, "", "diff", "-f", dept, "--base", base, "--users", "testdata/review/users.yaml", "-n", "ai-a", "-o", "json")
	var got struct {
		Unknown []struct {
			Claim     string `json:"claim"`
			Users     int    `json:"users"`
			CouldGain int    `json:"couldGain"`
		} `json:"unknown"`
		UnknownGains int `json:"unknownGains"`
	}
	if err := json.Unmarshal([]byte(js), &got); err != nil || len(got.Unknown) != 1 || got.Unknown[0].Claim != "department" || got.UnknownGains != 5 {
		t.Fatalf("json %v: %s", err, js)
	}
	// Kept first by the mapping in force: known, no escalation.
	kept := write("kept.yaml", "  keepClaims: [department]\n")
	if code, out, _ := runCLI(t, "", "diff", "-f", dept, "--base", kept, "--users", "testdata/review/users.yaml", "-n", "ai-a", "--fail-on", "escalation"); code == exitEscalation || strings.Contains(out, "unknown") {
		t.Fatalf("a kept claim: exit %d\n%s", code, out)
	}
	if thousands(1204) != "1,204" || thousands(12) != "12" || thousands(1234567) != "1,234,567" {
		t.Fatal("thousands")
	}
}
