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
	// For literals: the runes to search for (folded to the smallest rune of
	// their fold orbit when the pattern folds) and their KMP failure table.
	runes []rune
	fail  []int
}

// Pattern is a compiled glob. It is immutable and safe for concurrent use.
type Pattern struct {
	src  string
	ops  []op
	fold bool
	// wild holds, by the index of its first op, each segment between two
	// stars that has a ? or [...]: searched by bit-parallel Shift-And.
	wild map[int]*shiftAnd
}

// MaxWildSegment bounds a star-separated segment with ? or [...] between
// two stars (as in "*a?b*"), in characters, so that finding it costs one
// machine word per character of the value.
const MaxWildSegment = 32

// MaxLength bounds the pattern length Compile accepts: RoleMapping's limit
// (api/v1 MaxPatternLength; a test keeps them equal).
const MaxLength = 1024

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
			p.ops = append(p.ops, literalOp(lit.String(), fold))
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
	if err := p.compileWild(); err != nil {
		return nil, err
	}
	return p, nil
}

// shiftAnd finds a fixed-length segment with wildcards: bit i of a
// character's mask says whether it may stand at position i.
type shiftAnd struct {
	n       int
	ascii   [utf8.RuneSelf]uint32
	any     uint32     // positions of ?
	lits    []litMask  // each distinct literal rune (folded) and its positions
	classes []classPos // positions of [...]
}

type litMask struct {
	r rune
	m uint32
}

type classPos struct {
	o   *op
	bit uint32
}

func (p *Pattern) compileWild() error {
	first, last := -1, -1
	for i := range p.ops {
		if p.ops[i].kind == opStar {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i := first + 1; first >= 0 && i < last; {
		j, wild := i, false
		for p.ops[j].kind != opStar {
			wild = wild || p.ops[j].kind != opLiteral
			j++
		}
		if wild {
			seg := p.ops[i:j]
			if n := segRunes(seg); n > MaxWildSegment {
				return fmt.Errorf("a part between two '*' that has '?' or '[...]' may be at most %d characters, not %d", MaxWildSegment, n)
			}
			sa := &shiftAnd{}
			for k := range seg {
				o := &seg[k]
				switch o.kind {
				case opLiteral:
					for _, r := range o.runes {
						sa.addLit(r, uint32(1)<<sa.n)
						sa.n++
					}
				case opAny:
					sa.any |= 1 << sa.n
					sa.n++
				case opClass:
					sa.classes = append(sa.classes, classPos{o, 1 << sa.n})
					sa.n++
				}
			}
			for c := rune(0); c < utf8.RuneSelf; c++ {
				sa.ascii[c] = p.mask(sa, c)
			}
			if p.wild == nil {
				p.wild = map[int]*shiftAnd{}
			}
			p.wild[i] = sa
		}
		i = j + 1
	}
	return nil
}

func (sa *shiftAnd) addLit(r rune, bit uint32) {
	for i := range sa.lits {
		if sa.lits[i].r == r {
			sa.lits[i].m |= bit
			return
		}
	}
	sa.lits = append(sa.lits, litMask{r, bit})
}

// mask computes which positions of sa the character r may stand at.
func (p *Pattern) mask(sa *shiftAnd, r rune) uint32 {
	c := r
	if p.fold {
		c = canon(r)
	}
	m := sa.any
	for _, l := range sa.lits {
		if l.r == c {
			m |= l.m
			break
		}
	}
	for _, cl := range sa.classes {
		if p.inClass(cl.o, r) {
			m |= cl.bit
		}
	}
	return m
}

// search returns the end of the first occurrence of sa in s[from:limit].
func (p *Pattern) search(sa *shiftAnd, s string, from, limit int) (int, bool) {
	var state uint32
	done := uint32(1) << (sa.n - 1)
	lastR, lastM := rune(-1), uint32(0) // the last non-ASCII character's mask
	for pos := from; pos < limit; {
		r, size := rune(s[pos]), 1
		var m uint32
		switch {
		case r < utf8.RuneSelf:
			m = sa.ascii[r]
		default:
			r, size = utf8.DecodeRuneInString(s[pos:limit])
			if r != lastR {
				lastR, lastM = r, p.mask(sa, r)
			}
			m = lastM
		}
		pos += size
		state = (state<<1 | 1) & m
		if state&done != 0 {
			return pos, true
		}
	}
	return 0, false
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

func literalOp(lit string, fold bool) op {
	o := op{kind: opLiteral, lit: lit}
	for _, r := range lit {
		if fold {
			r = canon(r)
		}
		o.runes = append(o.runes, r)
	}
	o.fail = make([]int, len(o.runes))
	for i, k := 1, 0; i < len(o.runes); i++ {
		for k > 0 && o.runes[i] != o.runes[k] {
			k = o.fail[k-1]
		}
		if o.runes[i] == o.runes[k] {
			k++
		}
		o.fail[i] = k
	}
	return o
}

// canon returns the smallest rune of r's simple case-folding orbit: two
// runes are equal under folding exactly when their canon is.
func canon(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// Match reports whether s matches the whole pattern, in time linear in
// len(s) for every pattern whose star-separated segments start with a
// literal (and at most len(segment)*len(s) otherwise): the segment before
// the first star is matched at the start, the segment after the last star
// at the end (it has a fixed number of characters), and each segment in
// between at its leftmost occurrence (found by KMP), which is optimal since
// stars surround it; nothing is ever retried.
func (p *Pattern) Match(s string) bool {
	ops := p.ops
	first := 0
	for first < len(ops) && ops[first].kind != opStar {
		first++
	}
	if first == len(ops) { // no star: the whole string
		n, ok := p.matchSeg(ops, s)
		return ok && n == len(s)
	}
	pos, ok := p.matchSeg(ops[:first], s)
	if !ok {
		return false
	}
	last := len(ops) - 1
	for ops[last].kind != opStar {
		last--
	}
	// The tail after the last star matches the last k characters exactly.
	tail := ops[last+1:]
	tailStart := len(s)
	for k := segRunes(tail); k > 0; k-- {
		if tailStart <= pos {
			return false
		}
		_, size := utf8.DecodeLastRuneInString(s[:tailStart])
		tailStart -= size
	}
	if tailStart < pos {
		return false
	}
	for i := first + 1; i < last; {
		j := i
		for ops[j].kind != opStar {
			j++
		}
		var end int
		var ok bool
		if sa := p.wild[i]; sa != nil {
			end, ok = p.search(sa, s, pos, tailStart)
		} else {
			end, ok = p.find(ops[i:j], s, pos, tailStart)
		}
		if !ok {
			return false
		}
		pos, i = end, j+1
	}
	n, ok := p.matchSeg(tail, s[tailStart:])
	return ok && tailStart+n == len(s)
}

// segRunes is the number of characters a star-free segment matches.
func segRunes(seg []op) int {
	n := 0
	for i := range seg {
		if seg[i].kind == opLiteral {
			n += len(seg[i].runes)
		} else {
			n++
		}
	}
	return n
}

// matchSeg matches a star-free segment at the start of s and returns the
// bytes it consumed.
func (p *Pattern) matchSeg(seg []op, s string) (int, bool) {
	pos := 0
	for i := range seg {
		o := &seg[i]
		switch o.kind {
		case opLiteral:
			n, ok := p.hasPrefix(s[pos:], o.lit)
			if !ok {
				return 0, false
			}
			pos += n
		case opAny, opClass:
			if pos >= len(s) {
				return 0, false
			}
			r, size := utf8.DecodeRuneInString(s[pos:])
			if o.kind == opClass && !p.inClass(o, r) {
				return 0, false
			}
			pos += size
		}
	}
	return pos, true
}

// find returns the end of the leftmost occurrence of a star-free segment
// in s[from:limit].
func (p *Pattern) find(seg []op, s string, from, limit int) (int, bool) {
	window := s[:limit]
	for q := from; q <= limit; {
		if seg[0].kind == opLiteral { // jump to the next occurrence of the leading literal
			start, ok := p.index(&seg[0], window, q)
			if !ok {
				return 0, false
			}
			q = start
		}
		if n, ok := p.matchSeg(seg, window[q:]); ok {
			return q + n, true
		}
		if q == limit {
			break
		}
		_, size := utf8.DecodeRuneInString(window[q:])
		q += size
	}
	return 0, false
}

// index returns the start of the first occurrence of literal o in s at or
// after from, by KMP over runes (folded when the pattern folds).
func (p *Pattern) index(o *op, s string, from int) (int, bool) {
	if !p.fold {
		i := strings.Index(s[from:], o.lit)
		return from + i, i >= 0
	}
	k := 0
	for pos := from; pos < len(s); {
		r, size := utf8.DecodeRuneInString(s[pos:])
		pos += size
		r = canon(r)
		for k > 0 && r != o.runes[k] {
			k = o.fail[k-1]
		}
		if r == o.runes[k] {
			k++
		}
		if k == len(o.runes) { // walk back over the match's runes to its start
			start := pos
			for range o.runes {
				_, sz := utf8.DecodeLastRuneInString(s[:start])
				start -= sz
			}
			return start, true
		}
	}
	return 0, false
}

// matchBacktracking is the previous matcher (backtracking to the most
// recent star, up to len(pattern)*len(s) steps); the tests and the fuzz
// target check Match against it.
func (p *Pattern) matchBacktracking(s string) bool {
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
