// Package rolemap is the role-mapping engine: it compiles RoleMappings into
// an immutable Engine and decides, from a login's decoded claims and issuer,
// which role the user gets and why. It does no I/O and imports no
// Kubernetes client.
package rolemap

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// Decision reasons: the denials are the condition reasons of api/v1 (one
// vocabulary from the engine to ProxyUser status and the CLI's JSON).
const (
	// ReasonMatched: a rule matched.
	ReasonMatched = "Matched"
	// ReasonDefault: no rule matched; the deciding mapping's defaultRole.
	ReasonDefault = "Default"
	// ReasonNoMatch: no rule matched and the deciding mapping denies.
	ReasonNoMatch = rolesyncv1.ReasonNoMatch
	// ReasonNoRoleMapping: no RoleMapping applies to the issuer.
	ReasonNoRoleMapping = rolesyncv1.ReasonNoRoleMapping
	// ReasonClaimsExpired: no rule matched because the claims are older
	// than the maxClaimAge of a mapping whose onNoMatch then applied.
	ReasonClaimsExpired = rolesyncv1.ReasonClaimsExpired
)

// Match is one rule that matched.
type Match struct {
	RoleMapping string          `json:"roleMapping"` // namespace/name
	Priority    int32           `json:"priority"`
	Rule        int             `json:"rule"`
	Claim       string          `json:"claim,omitempty"`
	Value       string          `json:"value,omitempty"`
	Role        rolesyncv1.Role `json:"role"`
}

// Source says where a decided role came from.
type Source struct {
	Type        rolesyncv1.SourceType `json:"type,omitempty"`
	RoleMapping string                `json:"roleMapping,omitempty"` // namespace/name
	Rule        int                   `json:"rule"`                  // -1 for a default
	Claim       string                `json:"claim,omitempty"`
	Value       string                `json:"value,omitempty"`
}

// Decision is the engine's answer for one set of claims.
type Decision struct {
	Role   rolesyncv1.Role
	Denied bool
	Reason string
	Source Source
	// Issuer is the issuer the decision was made for.
	Issuer string
	// SyncPolicy is the deciding mapping's syncPolicy (EveryLogin when denied).
	SyncPolicy rolesyncv1.SyncPolicy
	// Matches lists every rule that matched, in mapping then rule order.
	Matches []Match
	// Expired: the claims were older than the maxClaimAge of an applicable
	// mapping, whose rules were then not matched.
	Expired bool

	seen  []uint32 // per-rule epoch marks, reused across evaluations
	epoch uint32
	every bool // keep every matching value of a rule, not only the first (team templates)
}

// fresh reports whether rule ri may still be recorded as a match.
func (d *Decision) fresh(ri int32) bool { return d.every || d.seen[ri] != d.epoch }

// Engine decides roles from the RoleMappings of one namespace. It is
// immutable and safe for concurrent use.
type Engine struct {
	mappings []*Mapping // priority descending, then key ascending
	maxRules int
}

// NewEngine builds an engine from compiled mappings.
func NewEngine(mappings ...*Mapping) *Engine {
	e := &Engine{mappings: slices.Clone(mappings)}
	slices.SortStableFunc(e.mappings, func(a, b *Mapping) int {
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		return strings.Compare(a.key, b.key)
	})
	for _, m := range e.mappings {
		e.maxRules = max(e.maxRules, len(m.rules))
	}
	return e
}

// Mappings returns the engine's mappings in evaluation order.
func (e *Engine) Mappings() []*Mapping { return e.mappings }

// Evaluate decides the role for claims from issuer.
func (e *Engine) Evaluate(claims map[string]any, issuer string) Decision {
	var d Decision
	e.EvaluateInto(claims, issuer, &d)
	return d
}

// EvaluateInto is Evaluate reusing d's memory: with a d reused across calls
// it does not allocate for equals, glob and regex rules.
func (e *Engine) EvaluateInto(claims map[string]any, issuer string, d *Decision) {
	e.EvaluateAgedInto(claims, issuer, 0, d)
}

// EvaluateAged decides for claims stated age ago: a mapping whose
// maxClaimAge they exceed matches none of its rules (its onNoMatch may
// then apply, with reason ClaimsExpired).
func (e *Engine) EvaluateAged(claims map[string]any, issuer string, age time.Duration) Decision {
	var d Decision
	e.EvaluateAgedInto(claims, issuer, age, &d)
	return d
}

// NextClaimExpiry returns when claims stated at stated expire for some
// mapping of issuer after now (the earliest), or false when none will.
func (e *Engine) NextClaimExpiry(issuer string, stated, now time.Time) (time.Time, bool) {
	var next time.Time
	for _, m := range e.mappings {
		if m.MaxClaimAge == 0 || (m.Issuer != "" && m.Issuer != issuer) {
			continue
		}
		if at := stated.Add(m.MaxClaimAge); at.After(now) && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// EvaluateAgedInto is EvaluateAged reusing d's memory.
func (e *Engine) EvaluateAgedInto(claims map[string]any, issuer string, age time.Duration, d *Decision) {
	*d = Decision{Matches: d.Matches[:0], seen: d.seen, epoch: d.epoch, every: d.every, SyncPolicy: rolesyncv1.SyncPolicyEveryLogin, Source: Source{Rule: -1}, Issuer: issuer}
	if cap(d.seen) < e.maxRules {
		d.seen = make([]uint32, e.maxRules)
	}
	d.seen = d.seen[:cap(d.seen)]

	var (
		applicable  bool
		topPriority int32
		winner      *Mapping
		winMatch    = -1
		winPriority int32
		act         map[string]any // CEL activation, built on first use
	)
	for _, m := range e.mappings {
		if m.Issuer != "" && m.Issuer != issuer {
			continue
		}
		if !applicable {
			applicable, topPriority = true, m.Priority
		}
		if m.MaxClaimAge > 0 && age > m.MaxClaimAge {
			d.Expired = true
			continue // its rules match nothing; its onNoMatch may apply
		}
		first := len(d.Matches)
		d.nextEpoch()
		for _, src := range m.sources {
			v, ok := src.path.Lookup(claims)
			if ok {
				d.matchClaim(m, src, v)
			}
		}
		if len(m.exprs) > 0 {
			if act == nil {
				act = map[string]any{"claims": celClaims(claims)}
			}
			for _, ri := range m.exprs {
				r := &m.rules[ri]
				out, _, err := r.prog.Eval(act)
				if err == nil && out.Value() == true {
					d.addMatch(m, int(ri), "")
				}
			}
		}
		if len(d.Matches) == first {
			continue
		}
		slices.SortFunc(d.Matches[first:], func(a, b Match) int { return a.Rule - b.Rule })
		best := first
		if m.Resolution != rolesyncv1.ResolutionFirstMatch {
			for i := first + 1; i < len(d.Matches); i++ {
				if d.Matches[i].Role.Rank() > d.Matches[best].Role.Rank() {
					best = i
				}
			}
		}
		// The highest priority with a match decides; equal priorities pick
		// the highest privilege (then the first mapping by name).
		if winner == nil || (m.Priority == winPriority && d.Matches[best].Role.Rank() > d.Matches[winMatch].Role.Rank()) {
			winner, winMatch, winPriority = m, best, m.Priority
		}
	}

	switch {
	case winner != nil:
		w := d.Matches[winMatch]
		d.Role = clamp(w.Role, winner)
		d.Reason = ReasonMatched
		d.SyncPolicy = winner.SyncPolicy
		d.Source = Source{Type: rolesyncv1.SourceRoleMapping, RoleMapping: winner.key, Rule: w.Rule, Claim: w.Claim, Value: w.Value}
	case !applicable:
		d.Denied, d.Reason = true, ReasonNoRoleMapping
	default:
		e.decideNoMatch(issuer, topPriority, d)
	}
}

// decideNoMatch applies onNoMatch of the highest-priority applicable
// mappings: the highest defaultRole among them, or a denial when all deny.
func (e *Engine) decideNoMatch(issuer string, top int32, d *Decision) {
	var by *Mapping
	for _, m := range e.mappings {
		if m.Issuer != "" && m.Issuer != issuer {
			continue
		}
		if m.Priority != top {
			break
		}
		if m.OnNoMatch == rolesyncv1.OnNoMatchDefault && (by == nil || m.DefaultRole.Rank() > by.DefaultRole.Rank()) {
			by = m
		}
		if by == nil && d.Source.RoleMapping == "" {
			d.Source.RoleMapping = m.key // the mapping whose Deny applies
		}
	}
	if by == nil {
		d.Denied, d.Reason = true, ReasonNoMatch
		if d.Expired {
			d.Reason = ReasonClaimsExpired
		}
		d.Source.Rule = -1
		return
	}
	d.Role = clamp(by.DefaultRole, by)
	d.Reason = ReasonDefault
	d.SyncPolicy = by.SyncPolicy
	d.Source = Source{Type: rolesyncv1.SourceDefault, RoleMapping: by.key, Rule: -1}
}

// Message explains the decision in one sentence.
func (d *Decision) Message() string {
	switch d.Reason {
	case ReasonMatched:
		return "matched " + d.Source.Describe()
	case ReasonDefault:
		if d.Expired {
			return "the claims are older than maxClaimAge, so no rule matched; defaultRole of RoleMapping " + d.Source.RoleMapping
		}
		return "no rule matched; defaultRole of RoleMapping " + d.Source.RoleMapping
	case ReasonNoMatch:
		return "no rule matched and RoleMapping " + d.Source.RoleMapping + " denies"
	case ReasonClaimsExpired:
		return "the claims are older than maxClaimAge, so no rule matched, and RoleMapping " + d.Source.RoleMapping + " denies"
	case ReasonNoRoleMapping:
		return "no RoleMapping applies to issuer " + strconv.Quote(d.Issuer)
	}
	return ""
}

// clamp enforces a mapping's maxRole ceiling (validation already refuses a
// rule above it; this keeps the guarantee whatever the input).
func clamp(r rolesyncv1.Role, m *Mapping) rolesyncv1.Role {
	if m.MaxRole != "" && r.Rank() > m.maxRank {
		return m.MaxRole
	}
	return r
}

// Describe returns a one-line summary such as "ns/keycloak#0 groups=admins".
func (s Source) Describe() string {
	switch s.Type {
	case rolesyncv1.SourceOverride:
		return "override"
	case rolesyncv1.SourceDefault:
		return s.RoleMapping + " default"
	}
	out := s.RoleMapping + "#" + strconv.Itoa(s.Rule)
	if s.Claim != "" {
		out += " " + s.Claim + "=" + s.Value
	} else if s.Type == rolesyncv1.SourceRoleMapping {
		out += " expression"
	}
	return out
}

func (d *Decision) nextEpoch() {
	d.epoch++
	if d.epoch == 0 { // wrapped: clear the marks
		clear(d.seen)
		d.epoch = 1
	}
}

func (d *Decision) addMatch(m *Mapping, ri int, value string) {
	d.seen[ri] = d.epoch
	r := &m.rules[ri]
	d.Matches = append(d.Matches, Match{RoleMapping: m.key, Priority: m.Priority, Rule: ri, Claim: r.claim, Value: value, Role: r.role})
}

// matchClaim matches the value found at a source's claim path: a string
// (split when the source splits), a list of strings, or a number or bool
// compared as its JSON text. Anything else matches nothing.
func (d *Decision) matchClaim(m *Mapping, src *source, v any) {
	switch x := v.(type) {
	case string:
		d.matchString(m, src, x)
	case []any:
		for _, el := range x {
			switch y := el.(type) {
			case string:
				d.matchString(m, src, y)
			case float64, bool, json.Number, int, int64:
				d.matchValue(m, src, scalarText(y))
			}
		}
	case float64, bool, json.Number, int, int64:
		d.matchValue(m, src, scalarText(x))
	}
}

func (d *Decision) matchString(m *Mapping, src *source, s string) {
	if src.split == "" {
		d.matchValue(m, src, s)
		return
	}
	for s != "" {
		i := strings.Index(s, src.split)
		if i < 0 {
			d.matchValue(m, src, s)
			return
		}
		if i > 0 {
			d.matchValue(m, src, s[:i])
		}
		s = s[i+len(src.split):]
	}
}

// scalarText returns the JSON text of a number or bool claim.
func scalarText(v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return string(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// matchValue checks one claim value against the source's indexed rules.
func (d *Decision) matchValue(m *Mapping, src *source, val string) {
	for _, ri := range src.exact[val] {
		if d.fresh(ri) {
			d.addMatch(m, int(ri), val)
		}
	}
	if len(src.foldAll) > 0 {
		if isASCII(val) {
			var buf [128]byte
			if len(val) <= len(buf) {
				for i := 0; i < len(val); i++ {
					buf[i] = asciiLower(val[i])
				}
				for _, ri := range src.exactFold[string(buf[:len(val)])] {
					if d.fresh(ri) {
						d.addMatch(m, int(ri), val)
					}
				}
			}
			// Longer ASCII values cannot equal a pattern (≤ MaxPatternLength)
			// through the buffer; check them directly.
			if len(val) > len(buf) {
				d.checkFoldEquals(m, src, val)
			}
		} else {
			d.checkFoldEquals(m, src, val)
		}
	}
	if !src.prefix.empty() {
		n := &src.prefix
		d.checkAll(m, n.rules, val)
		for i := 0; i < len(val); i++ {
			if n = n.next(val[i]); n == nil {
				break
			}
			d.checkAll(m, n.rules, val)
		}
	}
	if !src.prefixF.empty() {
		n := &src.prefixF
		d.checkAll(m, n.rules, val)
		for i := 0; i < len(val); i++ {
			if n = n.next(asciiLower(val[i])); n == nil {
				break
			}
			d.checkAll(m, n.rules, val)
		}
	}
	if !src.suffix.empty() {
		n := &src.suffix
		d.checkAll(m, n.rules, val)
		for i := len(val) - 1; i >= 0; i-- {
			if n = n.next(val[i]); n == nil {
				break
			}
			d.checkAll(m, n.rules, val)
		}
	}
}

func (d *Decision) checkFoldEquals(m *Mapping, src *source, val string) {
	for _, ri := range src.foldAll {
		if d.fresh(ri) && strings.EqualFold(m.rules[ri].pattern, val) {
			d.addMatch(m, int(ri), val)
		}
	}
}

// checkAll runs the full matcher of candidate glob and regex rules.
func (d *Decision) checkAll(m *Mapping, rules []int32, val string) {
	for _, ri := range rules {
		if !d.fresh(ri) {
			continue
		}
		r := &m.rules[ri]
		var ok bool
		if r.kind == kindGlob {
			ok = r.glob.Match(val)
		} else {
			ok = r.re.MatchString(val)
		}
		if ok {
			d.addMatch(m, int(ri), val)
		}
	}
}
