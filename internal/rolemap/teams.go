package rolemap

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/glob"
)

// Bounds on team rules.
const (
	MaxTeamRules    = rolesyncv1.MaxTeamRules
	MaxAllowedTeams = rolesyncv1.MaxAllowedTeams
	MaxTeamLength   = rolesyncv1.MaxTeamLength
)

// teamSet is a mapping's compiled team rules: a one-mapping engine over
// their matchers (the role rules' indexed matching, every match kept), the
// templates, and the teams the mapping owns.
type teamSet struct {
	match   *Engine
	rules   []teamRule
	allowed []*glob.Pattern
	sync    rolesyncv1.TeamSync
}

type teamRule struct {
	parts []tmplPart // the team, literal or templated
	role  rolesyncv1.TeamRole
	maxN  int // highest $n used (-1: none)
	claim string
}

// tmplPart is literal text, or a reference to $n (n >= 0) when ref >= 0.
type tmplPart struct {
	text string
	ref  int
}

// parseTemplate splits a team into literal text and $0..$9 references;
// `$$` is a literal `$`, any other `$` is an error.
func parseTemplate(s string) ([]tmplPart, int, error) {
	var parts []tmplPart
	var lit strings.Builder
	maxN := -1
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			lit.WriteByte('$')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '9' {
			return nil, 0, fmt.Errorf("a $ must be followed by 0 to 9 (the matched value, a regex capture), or written $$")
		}
		if lit.Len() > 0 {
			parts = append(parts, tmplPart{text: lit.String(), ref: -1})
			lit.Reset()
		}
		n := int(s[i+1] - '0')
		parts = append(parts, tmplPart{ref: n})
		maxN = max(maxN, n)
		i++
	}
	if lit.Len() > 0 || len(parts) == 0 {
		parts = append(parts, tmplPart{text: lit.String(), ref: -1})
	}
	return parts, maxN, nil
}

// compileTeams compiles spec.teams and spec.allowedTeams into m (m may be
// nil when the role rules failed: the errors are still collected).
func compileTeams(rm *rolesyncv1.RoleMapping, m *Mapping) field.ErrorList {
	s := &rm.Spec
	var errs field.ErrorList
	teamsPath, allowedPath := specPath.Child("teams"), specPath.Child("allowedTeams")
	switch rm.GetTeamSync() {
	case rolesyncv1.TeamSyncAdditive, rolesyncv1.TeamSyncExact:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("teamSync"), s.TeamSync, []string{string(rolesyncv1.TeamSyncAdditive), string(rolesyncv1.TeamSyncExact)}))
	}
	if len(s.AllowedTeams) > MaxAllowedTeams {
		return append(errs, field.TooMany(allowedPath, len(s.AllowedTeams), MaxAllowedTeams))
	}
	if len(s.Teams) > MaxTeamRules {
		return append(errs, field.TooMany(teamsPath, len(s.Teams), MaxTeamRules))
	}
	set := &teamSet{sync: rm.GetTeamSync()}
	for i, a := range s.AllowedTeams {
		g, err := glob.Compile(a, false)
		if a == "" || len(a) > MaxTeamLength || err != nil {
			msg := fmt.Sprintf("must be a glob of 1 to %d bytes", MaxTeamLength)
			if err != nil {
				msg = err.Error()
			}
			errs = append(errs, field.Invalid(allowedPath.Index(i), a, msg))
			continue
		}
		set.allowed = append(set.allowed, g)
	}
	if len(s.Teams) > 0 && len(s.AllowedTeams) == 0 {
		errs = append(errs, field.Required(allowedPath, "team rules need allowedTeams: the globs of the team ids this mapping owns"))
	}
	// The matchers compile as role rules of a one-mapping engine (the role
	// is unused), so team rules get the same index, bounds and errors.
	synthetic := &rolesyncv1.RoleMapping{}
	synthetic.Namespace, synthetic.Name, synthetic.Generation = rm.Namespace, rm.Name, rm.Generation
	synthetic.Spec.Claim = s.Claim
	for i := range s.Teams {
		t := &s.Teams[i]
		synthetic.Spec.Rules = append(synthetic.Spec.Rules, rolesyncv1.RoleRule{ClaimMatcher: t.ClaimMatcher, Role: rolesyncv1.RoleInternalUserViewer})
	}
	matcher, merrs := compile(synthetic, false)
	for _, e := range merrs {
		if strings.HasPrefix(e.Field, "spec.rules") {
			e.Field = "spec.teams" + strings.TrimPrefix(e.Field, "spec.rules")
			e.Detail = strings.ReplaceAll(e.Detail, "rules[].claim", "teams[].claim")
		}
		errs = append(errs, e)
	}
	for i := range s.Teams {
		t := &s.Teams[i]
		p := teamsPath.Index(i)
		r := teamRule{role: t.TeamRole, claim: rm.TeamClaim(i)}
		if r.role == "" {
			r.role = rolesyncv1.TeamRoleUser
		}
		if r.role.Rank() == 0 {
			errs = append(errs, field.NotSupported(p.Child("teamRole"), t.TeamRole, []string{string(rolesyncv1.TeamRoleUser), string(rolesyncv1.TeamRoleAdmin)}))
		}
		var err error
		if t.Team == "" || len(t.Team) > MaxTeamLength {
			errs = append(errs, field.Invalid(p.Child("team"), t.Team, fmt.Sprintf("must be 1 to %d bytes", MaxTeamLength)))
			continue
		}
		if r.parts, r.maxN, err = parseTemplate(t.Team); err != nil {
			errs = append(errs, field.Invalid(p.Child("team"), t.Team, err.Error()))
			continue
		}
		switch {
		case r.maxN >= 0 && t.Expression != nil:
			errs = append(errs, field.Invalid(p.Child("team"), t.Team, "an expression rule has no matched value: its team cannot use $0 to $9"))
		case r.maxN >= 1 && t.Regex == nil:
			errs = append(errs, field.Invalid(p.Child("team"), t.Team, "$1 to $9 are the captures of a regex rule"))
		case r.maxN >= 1 && matcher != nil && len(merrs) == 0 && r.maxN > matcher.rules[i].re.NumSubexp():
			errs = append(errs, field.Invalid(p.Child("team"), t.Team, fmt.Sprintf("$%d: the regex has %d capture groups", r.maxN, matcher.rules[i].re.NumSubexp())))
		case r.maxN < 0 && len(set.allowed) > 0 && !set.owns(r.parts[0].text):
			errs = append(errs, field.Invalid(p.Child("team"), t.Team, "not in allowedTeams: a mapping may only grant the teams it owns"))
		}
		set.rules = append(set.rules, r)
	}
	if len(errs) > 0 || m == nil {
		return errs
	}
	if len(s.Teams) > 0 || len(s.AllowedTeams) > 0 {
		set.match = NewEngine(matcher)
		m.teams = set
		for _, p := range matcher.paths { // the login server keeps the claims team rules read
			if !contains(m.paths, p) {
				m.paths = append(m.paths, p)
			}
			m.grant(p, "", true)
		}
		if len(matcher.exprs) > 0 {
			m.grant(AnyClaim, "", true)
		}
	}
	return nil
}

// owns reports whether team matches one of allowedTeams.
func (t *teamSet) owns(team string) bool {
	for _, g := range t.allowed {
		if g.Match(team) {
			return true
		}
	}
	return false
}

// TeamGrant is one team membership a rule grants.
type TeamGrant struct {
	Team        string
	Role        rolesyncv1.TeamRole
	RoleMapping string // namespace/name
	Rule        int    // index in spec.teams
	Claim       string
	Value       string
}

// Describe is a one-line source, for example "ns/keycloak#teams[0] groups=/ai/search".
func (g TeamGrant) Describe() string {
	out := g.RoleMapping + "#teams[" + strconv.Itoa(g.Rule) + "]"
	if g.Claim != "" {
		return out + " " + g.Claim + "=" + g.Value
	}
	return out + " expression"
}

// TeamOwner is an applicable mapping that owns teams (allowedTeams).
type TeamOwner struct {
	RoleMapping string // namespace/name
	Sync        rolesyncv1.TeamSync
	set         *teamSet
}

// Owns reports whether the mapping owns team.
func (o TeamOwner) Owns(team string) bool { return o.set.owns(team) }

// TeamDecision is every team the applicable mappings grant for one set of
// claims. Reuse one across evaluations (EvaluateTeamsInto) to avoid
// allocating.
type TeamDecision struct {
	// Grants: one per team, the higher teamRole winning (then the first
	// mapping and rule), in the order first granted.
	Grants []TeamGrant
	// Dropped are templated teams outside the granting mapping's allowedTeams.
	Dropped []TeamGrant
	// Owners are the applicable mappings that own teams.
	Owners []TeamOwner

	d Decision
}

// Owned reports whether an applicable mapping owns team, and whether one
// of those keeps it exact (teamSync Exact).
func (td *TeamDecision) Owned(team string) (owned, exact bool) {
	for _, o := range td.Owners {
		if o.Owns(team) {
			owned = true
			exact = exact || o.Sync == rolesyncv1.TeamSyncExact
		}
	}
	return owned, exact
}

// EvaluateTeams returns the teams the mappings grant for claims and issuer.
func (e *Engine) EvaluateTeams(claims map[string]any, issuer string) TeamDecision {
	var td TeamDecision
	e.EvaluateTeamsInto(claims, issuer, &td)
	return td
}

// EvaluateTeamsInto is EvaluateTeams reusing td's memory.
func (e *Engine) EvaluateTeamsInto(claims map[string]any, issuer string, td *TeamDecision) {
	td.Grants, td.Dropped, td.Owners = td.Grants[:0], td.Dropped[:0], td.Owners[:0]
	for _, m := range e.mappings {
		if m.teams == nil || (m.Issuer != "" && m.Issuer != issuer) {
			continue
		}
		set := m.teams
		td.Owners = append(td.Owners, TeamOwner{RoleMapping: m.key, Sync: set.sync, set: set})
		if len(set.rules) == 0 {
			continue
		}
		td.d.every = true // a templated rule grants one team per matching value
		set.match.EvaluateInto(claims, "", &td.d)
		for _, mt := range td.d.Matches {
			r := &set.rules[mt.Rule]
			g := TeamGrant{Role: r.role, RoleMapping: m.key, Rule: mt.Rule, Claim: mt.Claim, Value: mt.Value}
			if r.maxN < 0 {
				g.Team = r.parts[0].text
			} else {
				team, ok := expand(r, mt.Value, set.match.mappings[0].rules[mt.Rule].re)
				g.Team = team
				if !ok || !set.owns(team) {
					td.Dropped = append(td.Dropped, g)
					continue
				}
			}
			td.add(g)
		}
	}
}

// add keeps one grant per team, the higher role winning.
func (td *TeamDecision) add(g TeamGrant) {
	for i := range td.Grants {
		if td.Grants[i].Team == g.Team {
			if g.Role.Rank() > td.Grants[i].Role.Rank() {
				td.Grants[i] = g
			}
			return
		}
	}
	td.Grants = append(td.Grants, g)
}

// expand fills a team template from the matched value and (regex rules)
// its captures; false when the result is not a usable team id.
func expand(r *teamRule, value string, re *regexp.Regexp) (string, bool) {
	var caps []string
	if r.maxN >= 1 && re != nil {
		if caps = re.FindStringSubmatch(value); caps == nil {
			return "", false
		}
	}
	var b strings.Builder
	for _, p := range r.parts {
		switch {
		case p.ref < 0:
			b.WriteString(p.text)
		case p.ref == 0:
			b.WriteString(value)
		case p.ref < len(caps):
			b.WriteString(caps[p.ref])
		}
	}
	team := b.String()
	return team, team != "" && len(team) <= MaxTeamLength && rolesyncv1.Printable(team)
}
