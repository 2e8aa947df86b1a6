package v1

import (
	"unicode"
	"unicode/utf8"
)

// Limits on a RoleMapping, declared once. The CRD's markers in
// rolemapping_types.go repeat them (markers cannot name a constant);
// TestCRDAgreesWithLimits checks the generated CRD against these values, and
// internal/rolemap, internal/glob and internal/claimpath enforce them when
// compiling, so the CLI (which has no apiserver) refuses the same mappings.
const (
	MaxRules            = 1000 // spec.rules
	MaxPatternLength    = 1024 // equals, glob, regex (bytes)
	MaxExpressionLength = 4096 // expression (bytes)
	MaxClaimPathLength  = 256  // claim (bytes)
	MaxIssuerLength     = 1024 // issuer (bytes)
	MaxSplitLength      = 16   // split (bytes)
	MaxPriority         = 1000 // priority
	MaxTeamRules        = 1000 // spec.teams
	MaxAllowedTeams     = 64   // spec.allowedTeams
	MaxTeamLength       = 256  // teams[].team, allowedTeams[] (bytes)
	MaxKeepClaims       = 32   // spec.keepClaims (each at most MaxClaimPathLength)
)

// MaxMessageLength bounds the condition messages rolesync writes on a
// ProxyUser (bytes); RoleMapping conditions, which list every invalid
// field, get MaxMappingMessageLength.
const (
	MaxMessageLength        = 1024
	MaxMappingMessageLength = 4096
)

// Truncate cuts s to at most n bytes, ending in "..." when it cuts, and
// never inside a UTF-8 character. Every status text rolesync bounds
// (condition messages, sources) is cut by it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-3, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Printable reports whether s is valid UTF-8 of printable characters only
// (no control or format characters): the one rule for ids, issuers and
// team names that reach status, logs and LiteLLM's rows.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
