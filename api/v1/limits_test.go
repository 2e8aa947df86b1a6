package v1

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func loadCRD(t *testing.T, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", name))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}

// TestCRDAgreesWithLimits: the generated RoleMapping CRD carries the
// limits of limits.go.
func TestCRDAgreesWithLimits(t *testing.T) {
	spec := loadCRD(t, "rolesync.dev_rolemappings.yaml").Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	rule := spec.Properties["rules"].Items.Schema
	team := spec.Properties["teams"].Items.Schema
	checks := []struct {
		name string
		got  *int64
		want int64
	}{
		{"spec.rules maxItems", spec.Properties["rules"].MaxItems, MaxRules},
		{"rules[].equals maxLength", rule.Properties["equals"].MaxLength, MaxPatternLength},
		{"rules[].glob maxLength", rule.Properties["glob"].MaxLength, MaxPatternLength},
		{"rules[].regex maxLength", rule.Properties["regex"].MaxLength, MaxPatternLength},
		{"rules[].expression maxLength", rule.Properties["expression"].MaxLength, MaxExpressionLength},
		{"rules[].claim maxLength", rule.Properties["claim"].MaxLength, MaxClaimPathLength},
		{"rules[].split maxLength", rule.Properties["split"].MaxLength, MaxSplitLength},
		{"spec.claim maxLength", spec.Properties["claim"].MaxLength, MaxClaimPathLength},
		{"spec.issuer maxLength", spec.Properties["issuer"].MaxLength, MaxIssuerLength},
		{"spec.teams maxItems", spec.Properties["teams"].MaxItems, MaxTeamRules},
		{"teams[].team maxLength", team.Properties["team"].MaxLength, MaxTeamLength},
		{"teams[].equals maxLength", team.Properties["equals"].MaxLength, MaxPatternLength},
		{"teams[].glob maxLength", team.Properties["glob"].MaxLength, MaxPatternLength},
		{"teams[].regex maxLength", team.Properties["regex"].MaxLength, MaxPatternLength},
		{"teams[].expression maxLength", team.Properties["expression"].MaxLength, MaxExpressionLength},
		{"teams[].claim maxLength", team.Properties["claim"].MaxLength, MaxClaimPathLength},
		{"teams[].split maxLength", team.Properties["split"].MaxLength, MaxSplitLength},
		{"spec.allowedTeams maxItems", spec.Properties["allowedTeams"].MaxItems, MaxAllowedTeams},
		{"allowedTeams[] maxLength", spec.Properties["allowedTeams"].Items.Schema.MaxLength, MaxTeamLength},
		{"spec.keepClaims maxItems", spec.Properties["keepClaims"].MaxItems, MaxKeepClaims},
		{"keepClaims[] maxLength", spec.Properties["keepClaims"].Items.Schema.MaxLength, MaxClaimPathLength},
	}
	for _, c := range checks {
		if c.got == nil || *c.got != c.want {
			t.Errorf("%s: CRD says %v, limits.go says %d", c.name, c.got, c.want)
		}
	}
	if p := spec.Properties["priority"]; p.Maximum == nil || int64(*p.Maximum) != MaxPriority {
		t.Errorf("spec.priority maximum: CRD says %v, limits.go says %d", p.Maximum, MaxPriority)
	}
}

// TestCRDRoleRankIsRoleRank: every role-rank map literal in the CRDs' CEL
// rules is Role.Rank (the role order exists once in Go).
func TestCRDRoleRankIsRoleRank(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i, r := range Roles() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + string(r) + "': " + string(rune('0'+r.Rank())))
	}
	b.WriteString("}")
	want := b.String()
	literal := regexp.MustCompile(`\{'proxy_admin'[^}]*\}`)
	found := 0
	var walk func(where string, p *apiextensionsv1.JSONSchemaProps)
	walk = func(where string, p *apiextensionsv1.JSONSchemaProps) {
		for _, v := range p.XValidations {
			for _, m := range literal.FindAllString(v.Rule, -1) {
				found++
				if m != want {
					t.Errorf("%s: rank literal %s, Role.Rank gives %s", where, m, want)
				}
			}
		}
		for name, child := range p.Properties {
			walk(where+"."+name, &child)
		}
		if p.Items != nil && p.Items.Schema != nil {
			walk(where+"[]", p.Items.Schema)
		}
	}
	for _, f := range []string{"rolesync.dev_rolemappings.yaml", "rolesync.dev_proxyusers.yaml"} {
		walk(f, loadCRD(t, f).Spec.Versions[0].Schema.OpenAPIV3Schema)
	}
	if found == 0 {
		t.Fatal("no role-rank literal found in the CRDs: the test no longer checks anything")
	}
}
