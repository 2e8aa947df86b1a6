package rolemap

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/util/validation/field"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/glob"
)

// Limits enforced when compiling: the CRD's (api/v1 limits.go), so the CLI
// (which has no apiserver) refuses the same mappings.
const (
	MaxRules          = rolesyncv1.MaxRules
	MaxPatternLength  = rolesyncv1.MaxPatternLength
	MaxExpressionLen  = rolesyncv1.MaxExpressionLength
	MaxIssuerLength   = rolesyncv1.MaxIssuerLength
	MaxPriority       = rolesyncv1.MaxPriority
	MaxSplitLength    = rolesyncv1.MaxSplitLength
	ExpressionCostMax = 100_000 // CEL runtime cost limit per evaluation
	// MinClaimAge is the least spec.maxClaimAge (the CRD's rule too).
	MinClaimAge = 10 * time.Second
)

type matcherKind uint8

const (
	kindEquals matcherKind = iota
	kindGlob
	kindRegex
	kindExpression
)

func (k matcherKind) String() string {
	return [...]string{"equals", "glob", "regex", "expression"}[k]
}

type rule struct {
	kind    matcherKind
	role    rolesyncv1.Role
	rank    int
	claim   string // claim path text ("" for expressions)
	fold    bool
	pattern string
	glob    *glob.Pattern
	re      *regexp.Regexp
	prog    cel.Program
}

// source groups the indexed rules that read the same claim path with the
// same split, so each claim value is extracted and looked up once.
type source struct {
	path  claimpath.Path
	split string

	exact     map[string][]int32 // case-sensitive equals, by value
	exactFold map[string][]int32 // case-insensitive equals with an ASCII pattern, by lowered value
	foldAll   []int32            // every case-insensitive equals (checked directly for non-ASCII values)
	prefix    trie               // case-sensitive globs and regexes, by literal prefix
	prefixF   trie               // case-insensitive globs and regexes, by lowered literal prefix
	suffix    trie               // case-sensitive globs without a prefix, by reversed literal suffix
}

// Mapping is one compiled RoleMapping. It is immutable.
type Mapping struct {
	Namespace   string
	Name        string
	Generation  int64 // metadata.generation compiled
	Issuer      string
	Priority    int32
	Resolution  rolesyncv1.Resolution
	OnNoMatch   rolesyncv1.OnNoMatch
	DefaultRole rolesyncv1.Role
	MaxRole     rolesyncv1.Role // "" when unset
	SyncPolicy  rolesyncv1.SyncPolicy
	// MaxClaimAge: claims older than this no longer match the mapping's
	// rules (0: never expire).
	MaxClaimAge time.Duration

	key     string // namespace/name
	maxRank int
	rules   []rule
	sources []*source
	exprs   []int32
	paths   []string
	keep    []string             // spec.keepClaims, canonical
	grants  map[string]PathGrant // per claim path read (AnyClaim: expressions)
	teams   *teamSet             // nil without team rules and allowedTeams
	spec    *rolesyncv1.RoleMappingSpec
}

// Key returns "namespace/name".
func (m *Mapping) Key() string { return m.key }

// Rules returns the number of rules.
func (m *Mapping) Rules() int { return len(m.rules) }

// ClaimPaths returns the distinct claim paths the mapping's indexed rules read.
func (m *Mapping) ClaimPaths() []string { return m.paths }

// KeptPaths returns spec.keepClaims: claim paths stored for rules to come.
func (m *Mapping) KeptPaths() []string { return m.keep }

// AnyClaim is the key of Grants for expression rules, which may read any
// claim.
const AnyClaim = "*"

// PathGrant is the most the rules reading one claim path can grant: the
// highest role, and whether a team rule reads it.
type PathGrant struct {
	Role  rolesyncv1.Role
	Teams bool
}

// Grants returns, per claim path the mapping's rules read (AnyClaim for
// expression rules), the most those rules can grant. Read only.
func (m *Mapping) Grants() map[string]PathGrant { return m.grants }

func (m *Mapping) grant(path string, role rolesyncv1.Role, teams bool) {
	if m.grants == nil {
		m.grants = map[string]PathGrant{}
	}
	g := m.grants[path]
	if role.Rank() > g.Role.Rank() {
		g.Role = role
	}
	g.Teams = g.Teams || teams
	m.grants[path] = g
}

// HasExpressions reports whether any rule is a CEL expression (which may
// read any claim).
func (m *Mapping) HasExpressions() bool {
	return len(m.exprs) > 0 || (m.teams != nil && len(m.teams.match.mappings[0].exprs) > 0)
}

// HasTeams reports whether the mapping grants or owns teams.
func (m *Mapping) HasTeams() bool { return m.teams != nil }

var specPath = field.NewPath("spec")

// Validate returns every reason rm cannot be compiled, with field paths.
func Validate(rm *rolesyncv1.RoleMapping) field.ErrorList {
	_, errs := Compile(rm)
	return errs
}

// Compile validates and compiles a RoleMapping. On any error it returns a
// nil Mapping and every error found, each with its field path.
func Compile(rm *rolesyncv1.RoleMapping) (*Mapping, field.ErrorList) {
	m, errs := compile(rm, true)
	if terrs := compileTeams(rm, m); len(terrs) > 0 {
		return nil, append(errs, terrs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	m.spec = rm.Spec.DeepCopy()
	return m, nil
}

// Spec returns the spec the mapping was compiled from (status.lastValidSpec
// records it while a later, invalid generation is refused).
func (m *Mapping) Spec() *rolesyncv1.RoleMappingSpec { return m.spec }

// compile compiles the role rules; dedupe refuses two rules with the same
// matcher (team rules may share one: a group can grant two teams). The
// Mapping is returned even with errors (for compileTeams to fill).
func compile(rm *rolesyncv1.RoleMapping, dedupe bool) (*Mapping, field.ErrorList) {
	var errs field.ErrorList
	s := &rm.Spec
	m := &Mapping{
		Namespace:  rm.Namespace,
		Name:       rm.Name,
		Generation: rm.Generation,
		Issuer:     s.Issuer,
		Priority:   s.Priority,
		Resolution: rm.GetResolution(),
		OnNoMatch:  rm.GetOnNoMatch(),
		SyncPolicy: rm.GetSyncPolicy(),
		key:        rm.Namespace + "/" + rm.Name,
		maxRank:    rolesyncv1.RoleProxyAdmin.Rank(),
	}
	if len(s.Issuer) > MaxIssuerLength {
		errs = append(errs, field.TooLong(specPath.Child("issuer"), "", MaxIssuerLength))
	}
	if s.MaxClaimAge != nil {
		if s.MaxClaimAge.Duration < MinClaimAge {
			errs = append(errs, field.Invalid(specPath.Child("maxClaimAge"), s.MaxClaimAge.Duration.String(), "maxClaimAge must be at least 10s"))
		} else {
			m.MaxClaimAge = s.MaxClaimAge.Duration
		}
	}
	if s.Priority < 0 || s.Priority > MaxPriority {
		errs = append(errs, field.Invalid(specPath.Child("priority"), s.Priority, fmt.Sprintf("must be between 0 and %d", MaxPriority)))
	}
	switch m.Resolution {
	case rolesyncv1.ResolutionHighestPrivilege, rolesyncv1.ResolutionFirstMatch:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("resolution"), m.Resolution, []string{string(rolesyncv1.ResolutionHighestPrivilege), string(rolesyncv1.ResolutionFirstMatch)}))
	}
	switch m.SyncPolicy {
	case rolesyncv1.SyncPolicyEveryLogin, rolesyncv1.SyncPolicyFirstLoginOnly:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("syncPolicy"), m.SyncPolicy, []string{string(rolesyncv1.SyncPolicyEveryLogin), string(rolesyncv1.SyncPolicyFirstLoginOnly)}))
	}
	if s.MaxRole != nil {
		if !s.MaxRole.Valid() {
			errs = append(errs, notARole(specPath.Child("maxRole"), *s.MaxRole))
		} else {
			m.MaxRole = *s.MaxRole
			m.maxRank = s.MaxRole.Rank()
		}
	}
	switch m.OnNoMatch {
	case rolesyncv1.OnNoMatchDeny:
	case rolesyncv1.OnNoMatchDefault:
		if s.DefaultRole == nil {
			errs = append(errs, field.Required(specPath.Child("defaultRole"), "defaultRole is required when onNoMatch is Default"))
		}
	default:
		errs = append(errs, field.NotSupported(specPath.Child("onNoMatch"), m.OnNoMatch, []string{string(rolesyncv1.OnNoMatchDefault), string(rolesyncv1.OnNoMatchDeny)}))
	}
	if s.DefaultRole != nil {
		p := specPath.Child("defaultRole")
		switch {
		case !s.DefaultRole.Valid():
			errs = append(errs, notARole(p, *s.DefaultRole))
		case s.DefaultRole.Rank() > m.maxRank:
			errs = append(errs, field.Invalid(p, *s.DefaultRole, fmt.Sprintf("defaultRole is above maxRole %s", m.MaxRole)))
		default:
			m.DefaultRole = *s.DefaultRole
		}
	}
	if s.Claim != "" {
		if _, err := claimpath.Parse(s.Claim); err != nil {
			errs = append(errs, field.Invalid(specPath.Child("claim"), s.Claim, err.Error()))
		}
	}
	if len(s.KeepClaims) > rolesyncv1.MaxKeepClaims {
		errs = append(errs, field.TooMany(specPath.Child("keepClaims"), len(s.KeepClaims), rolesyncv1.MaxKeepClaims))
	} else {
		for i, k := range s.KeepClaims {
			p, err := claimpath.Parse(k)
			if err != nil {
				errs = append(errs, field.Invalid(specPath.Child("keepClaims").Index(i), k, err.Error()))
			} else if !contains(m.keep, p.String()) {
				m.keep = append(m.keep, p.String())
			}
		}
	}
	if len(s.Rules) > MaxRules {
		errs = append(errs, field.TooMany(specPath.Child("rules"), len(s.Rules), MaxRules))
		return m, errs
	}

	type srcKey struct{ path, split string }
	sources := map[srcKey]*source{}
	seen := map[string]int{}
	for i := range s.Rules {
		r, src, rerrs := compileRule(rm, i, m.maxRank)
		errs = append(errs, rerrs...)
		if len(rerrs) > 0 {
			continue
		}
		p := specPath.Child("rules").Index(i)
		dk := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%v", r.kind, r.pattern, r.claim, s.Rules[i].Split, r.fold)
		if j, dup := seen[dk]; dup && dedupe {
			errs = append(errs, field.Duplicate(p, fmt.Sprintf("same matcher, claim and options as spec.rules[%d]", j)))
			continue
		}
		seen[dk] = i
		m.rules = append(m.rules, r)
		idx := int32(len(m.rules) - 1)
		if r.kind == kindExpression {
			m.exprs = append(m.exprs, idx)
			m.grant(AnyClaim, r.role, false)
			continue
		}
		m.grant(src.String(), r.role, false)
		k := srcKey{src.String(), s.Rules[i].Split}
		so := sources[k]
		if so == nil {
			so = &source{path: src, split: s.Rules[i].Split, exact: map[string][]int32{}, exactFold: map[string][]int32{}}
			sources[k] = so
			m.sources = append(m.sources, so)
			if !contains(m.paths, src.String()) {
				m.paths = append(m.paths, src.String())
			}
		}
		so.add(idx, &m.rules[idx])
	}
	return m, errs
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func notARole(p *field.Path, r rolesyncv1.Role) *field.Error {
	roles := rolesyncv1.Roles()
	names := make([]string, len(roles))
	for i, x := range roles {
		names[i] = string(x)
	}
	return field.NotSupported(p, r, names)
}

// compileRule compiles spec.rules[i] and returns its claim path.
func compileRule(rm *rolesyncv1.RoleMapping, i int, maxRank int) (rule, claimpath.Path, field.ErrorList) {
	var errs field.ErrorList
	in := &rm.Spec.Rules[i]
	p := specPath.Child("rules").Index(i)
	r := rule{role: in.Role, rank: in.Role.Rank(), fold: in.CaseInsensitive}
	switch {
	case !in.Role.Valid():
		errs = append(errs, notARole(p.Child("role"), in.Role))
	case r.rank > maxRank:
		errs = append(errs, field.Invalid(p.Child("role"), in.Role, fmt.Sprintf("role is above maxRole %s", *rm.Spec.MaxRole)))
	}
	var set []string
	for _, m := range []struct {
		name string
		v    *string
	}{{"equals", in.Equals}, {"glob", in.Glob}, {"regex", in.Regex}, {"expression", in.Expression}} {
		if m.v != nil {
			set = append(set, m.name)
		}
	}
	if len(set) != 1 {
		errs = append(errs, field.Invalid(p, strings.Join(set, ","), "exactly one of equals, glob, regex or expression must be set"))
		return r, claimpath.Path{}, errs
	}
	if len(in.Split) > MaxSplitLength {
		errs = append(errs, field.TooLong(p.Child("split"), in.Split, MaxSplitLength))
	}
	var path claimpath.Path
	if in.Expression == nil {
		claim := rm.RuleClaim(i)
		r.claim = claim
		if claim == "" {
			errs = append(errs, field.Required(p.Child("claim"), "a rule without expression needs a claim path: set rules[].claim or spec.claim"))
		} else {
			var err error
			if path, err = claimpath.Parse(claim); err != nil {
				fp := p.Child("claim")
				if in.Claim == "" {
					fp = specPath.Child("claim")
				}
				errs = append(errs, field.Invalid(fp, claim, err.Error()))
			}
		}
	} else if in.Claim != "" || in.Split != "" || in.CaseInsensitive {
		errs = append(errs, field.Invalid(p, "", "claim, split and caseInsensitive do not apply to an expression rule"))
	}
	switch {
	case in.Equals != nil:
		r.kind, r.pattern = kindEquals, *in.Equals
		if len(r.pattern) > MaxPatternLength {
			errs = append(errs, field.TooLong(p.Child("equals"), "", MaxPatternLength))
		}
	case in.Glob != nil:
		r.kind, r.pattern = kindGlob, *in.Glob
		fp := p.Child("glob")
		if r.pattern == "" || len(r.pattern) > MaxPatternLength {
			errs = append(errs, field.Invalid(fp, r.pattern, fmt.Sprintf("must be 1 to %d bytes", MaxPatternLength)))
		} else if g, err := glob.Compile(r.pattern, r.fold); err != nil {
			errs = append(errs, field.Invalid(fp, r.pattern, err.Error()))
		} else {
			r.glob = g
		}
	case in.Regex != nil:
		r.kind, r.pattern = kindRegex, *in.Regex
		fp := p.Child("regex")
		if r.pattern == "" || len(r.pattern) > MaxPatternLength {
			errs = append(errs, field.Invalid(fp, r.pattern, fmt.Sprintf("must be 1 to %d bytes", MaxPatternLength)))
		} else if re, err := compileRegex(r.pattern, r.fold); err != nil {
			errs = append(errs, field.Invalid(fp, r.pattern, err.Error()))
		} else {
			r.re = re
		}
	case in.Expression != nil:
		r.kind, r.pattern = kindExpression, *in.Expression
		fp := p.Child("expression")
		if r.pattern == "" || len(r.pattern) > MaxExpressionLen {
			errs = append(errs, field.Invalid(fp, "", fmt.Sprintf("must be 1 to %d bytes", MaxExpressionLen)))
		} else if prog, err := compileExpression(r.pattern); err != nil {
			errs = append(errs, field.Invalid(fp, r.pattern, err.Error()))
		} else {
			r.prog = prog
		}
	}
	return r, path, errs
}

// compileRegex anchors an RE2 pattern to the whole value.
func compileRegex(pattern string, fold bool) (*regexp.Regexp, error) {
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("regex is not valid UTF-8")
	}
	if _, err := syntax.Parse(pattern, syntax.Perl); err != nil {
		return nil, err
	}
	flags := ""
	if fold {
		flags = "(?i)"
	}
	return regexp.Compile(flags + "^(?:" + pattern + ")$")
}

// regexLiteralPrefix returns the literal text every match of pattern starts
// with ("" when there is none). With fold it returns the folded prefix.
func regexLiteralPrefix(pattern string, fold bool) string {
	flags := syntax.Perl
	if fold {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(pattern, flags)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	var b strings.Builder
	var walk func(re *syntax.Regexp) bool // false: stop collecting
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpCapture:
			return walk(re.Sub[0])
		case syntax.OpBeginText, syntax.OpBeginLine:
			return true
		case syntax.OpLiteral:
			if (re.Flags&syntax.FoldCase != 0) != fold {
				return false
			}
			for _, r := range re.Rune {
				b.WriteRune(r)
			}
			return true
		case syntax.OpConcat:
			for _, sub := range re.Sub {
				if !walk(sub) {
					return false
				}
			}
			return true
		}
		return false
	}
	walk(re)
	return b.String()
}

// add indexes rule idx in the source.
func (s *source) add(idx int32, r *rule) {
	switch r.kind {
	case kindEquals:
		if !r.fold {
			s.exact[r.pattern] = append(s.exact[r.pattern], idx)
			return
		}
		s.foldAll = append(s.foldAll, idx)
		if isASCII(r.pattern) {
			k := lowerASCII(r.pattern)
			s.exactFold[k] = append(s.exactFold[k], idx)
		}
	case kindGlob:
		switch {
		case r.fold:
			s.prefixF.insert(foldPrefix(r.glob.LiteralPrefix()), idx)
		case r.glob.LiteralPrefix() == "" && r.glob.LiteralSuffix() != "":
			s.suffix.insert(reverse(r.glob.LiteralSuffix()), idx)
		default:
			s.prefix.insert(r.glob.LiteralPrefix(), idx)
		}
	case kindRegex:
		lit := regexLiteralPrefix(r.pattern, r.fold)
		if r.fold {
			s.prefixF.insert(foldPrefix(lit), idx)
		} else {
			s.prefix.insert(lit, idx)
		}
	}
}
