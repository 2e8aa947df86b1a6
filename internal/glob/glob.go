// Package glob implements fnmatch-style patterns with the semantics of
// Python's fnmatch.fnmatchcase, which LiteLLM's jwt_litellm_role_map uses:
// `*` matches any run of characters (including `/`), `?` exactly one
// character, `[seq]` one character in seq, `[!seq]` one character not in seq.
// A `[` without a closing `]` is a literal `[`; a `]` right after `[` or `[!`
// is a member of the set; backslash is an ordinary character. Matching is on
// Unicode characters and never allocates.
package glob

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

type opKind uint8

const (
	opLiteral opKind = iota // match lit exactly
	opAny                   // ?
	opStar                  // *
	opClass                 // [...]
)

type classRange struct{ lo, hi rune }

type op struct {
	kind   opKind
	lit    string
	negate bool
	ranges []classRange
}

// Pattern is a compiled glob. It is immutable and safe for concurrent use.
type Pattern struct {
	src  string
	ops  []op
	fold bool
}

// MaxLength bounds the pattern length Compile accepts.
const MaxLength = 4096

// Compile compiles pattern. With fold, letters match regardless of case
// (Unicode simple folding, as strings.EqualFold).
func Compile(pattern string, fold bool) (*Pattern, error) {
	if len(pattern) > MaxLength {
		return nil, fmt.Errorf("glob longer than %d bytes", MaxLength)
	}
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("glob is not valid UTF-8")
	}
	p := &Pattern{src: pattern, fold: fold}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p.ops = append(p.ops, op{kind: opLiteral, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(pattern); {
		c := pattern[i]
		switch c {
		case '*':
			flush()
			if n := len(p.ops); n == 0 || p.ops[n-1].kind != opStar { // "**" == "*"
				p.ops = append(p.ops, op{kind: opStar})
			}
			i++
		case '?':
			flush()
			p.ops = append(p.ops, op{kind: opAny})
			i++
		case '[':
			cl, n, ok := parseClass(pattern[i:])
			if !ok { // no closing bracket: a literal '['
				lit.WriteByte('[')
				i++
				continue
			}
			flush()
			p.ops = append(p.ops, cl)
			i += n
		default:
			_, size := utf8.DecodeRuneInString(pattern[i:])
			lit.WriteString(pattern[i : i+size])
			i += size
		}
	}
	flush()
	return p, nil
}

// parseClass parses a bracket expression at the start of s ("[...]"). It
// returns the op, the bytes consumed, and false when there is no closing ']'.
func parseClass(s string) (op, int, bool) {
	j := 1
	cl := op{kind: opClass}
	if j < len(s) && s[j] == '!' {
		cl.negate = true
		j++
	}
	if j < len(s) && s[j] == ']' { // a leading ']' is a member
		j++
	}
	end := strings.IndexByte(s[j:], ']')
	if end < 0 {
		return op{}, 0, false
	}
	end += j
	body := s[1:end]
	if cl.negate {
		body = body[1:]
	}
	for k := 0; k < len(body); {
		lo, size := utf8.DecodeRuneInString(body[k:])
		k += size
		hi := lo
		if k+1 < len(body) && body[k] == '-' {
			h, hs := utf8.DecodeRuneInString(body[k+1:])
			hi = h
			k += 1 + hs
		}
		if lo <= hi { // Python drops reversed ranges such as [z-a]
			cl.ranges = append(cl.ranges, classRange{lo, hi})
		}
	}
	return cl, end + 1, true
}

// String returns the source pattern.
func (p *Pattern) String() string { return p.src }

// LiteralPrefix returns the literal text every match starts with.
func (p *Pattern) LiteralPrefix() string {
	if len(p.ops) > 0 && p.ops[0].kind == opLiteral {
		return p.ops[0].lit
	}
	return ""
}

// LiteralSuffix returns the literal text every match ends with.
func (p *Pattern) LiteralSuffix() string {
	if n := len(p.ops); n > 0 && p.ops[n-1].kind == opLiteral {
		return p.ops[n-1].lit
	}
	return ""
}

// IsLiteral reports whether the pattern has no wildcards (it matches only
// its literal text).
func (p *Pattern) IsLiteral() bool {
	return len(p.ops) == 0 || (len(p.ops) == 1 && p.ops[0].kind == opLiteral)
}

// Match reports whether s matches the whole pattern. It backtracks only to
// the most recent star, so its cost is at most len(pattern)*len(s) steps.
func (p *Pattern) Match(s string) bool {
	i, pos := 0, 0
	starI, starPos := -1, 0
	for {
		if i < len(p.ops) {
			o := &p.ops[i]
			switch o.kind {
			case opStar:
				if i == len(p.ops)-1 {
					return true
				}
				starI, starPos = i, pos
				i++
				continue
			case opLiteral:
				if n, ok := p.hasPrefix(s[pos:], o.lit); ok {
					pos += n
					i++
					continue
				}
			case opAny:
				if pos < len(s) {
					_, size := utf8.DecodeRuneInString(s[pos:])
					pos += size
					i++
					continue
				}
			case opClass:
				if pos < len(s) {
					r, size := utf8.DecodeRuneInString(s[pos:])
					if p.inClass(o, r) {
						pos += size
						i++
						continue
					}
				}
			}
		} else if pos == len(s) {
			return true
		}
		// Mismatch: let the last star swallow one more character.
		if starI < 0 || starPos >= len(s) {
			return false
		}
		_, size := utf8.DecodeRuneInString(s[starPos:])
		starPos += size
		pos, i = starPos, starI+1
	}
}

func (p *Pattern) hasPrefix(s, lit string) (int, bool) {
	if !p.fold {
		if strings.HasPrefix(s, lit) {
			return len(lit), true
		}
		return 0, false
	}
	// Compare rune by rune with simple folding; lengths in bytes may differ.
	n := 0
	for _, lr := range lit {
		if n >= len(s) {
			return 0, false
		}
		sr, size := utf8.DecodeRuneInString(s[n:])
		if sr != lr && !equalFoldRune(sr, lr) {
			return 0, false
		}
		n += size
	}
	return n, true
}

func (p *Pattern) inClass(o *op, r rune) bool {
	in := classContains(o.ranges, r)
	if !in && p.fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if classContains(o.ranges, f) {
				in = true
				break
			}
		}
	}
	return in != o.negate
}

func classContains(ranges []classRange, r rune) bool {
	for _, cr := range ranges {
		if cr.lo <= r && r <= cr.hi {
			return true
		}
	}
	return false
}

func equalFoldRune(a, b rune) bool {
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}
