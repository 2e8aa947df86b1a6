// Package claimpath parses and resolves claim paths such as
// `resource_access.litellm.roles` or `groups[0]`.
//
// Syntax: keys separated by dots; `\.` is a literal dot in a key, `\\` a
// backslash and `\[` a literal bracket; `[n]` after a key (or another index)
// indexes a list. Keys are never empty.
package claimpath

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLength bounds the length of a path Parse accepts.
const MaxLength = 256

// Segment is one step of a path: a map key, or a list index when IsIndex.
type Segment struct {
	Key     string
	Index   int
	IsIndex bool
}

// Path is a parsed claim path. The zero Path resolves to the claims root.
type Path struct {
	src  string
	segs []Segment
}

// String returns the source text of the path.
func (p Path) String() string { return p.src }

// Segments returns the path's steps.
func (p Path) Segments() []Segment { return p.segs }

// Parse parses a claim path.
func Parse(s string) (Path, error) {
	if s == "" {
		return Path{}, errors.New("empty claim path")
	}
	if len(s) > MaxLength {
		return Path{}, fmt.Errorf("claim path longer than %d bytes", MaxLength)
	}
	p := Path{src: s}
	var key strings.Builder
	keyStarted := false // a key (possibly followed by indexes) is being read
	afterIndex := false // the last step was an index
	endKey := func(pos int) error {
		if !keyStarted {
			return fmt.Errorf("empty key at offset %d", pos)
		}
		if !afterIndex {
			p.segs = append(p.segs, Segment{Key: key.String()})
		}
		key.Reset()
		keyStarted, afterIndex = false, false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return Path{}, fmt.Errorf("trailing backslash at offset %d", i)
			}
			n := s[i+1]
			if n != '.' && n != '\\' && n != '[' && n != ']' {
				return Path{}, fmt.Errorf(`unknown escape \%c at offset %d (use \. \\ \[ or \])`, n, i)
			}
			if afterIndex {
				return Path{}, fmt.Errorf("unexpected %q after an index at offset %d", n, i)
			}
			key.WriteByte(n)
			keyStarted = true
			i++
		case '.':
			if err := endKey(i); err != nil {
				return Path{}, err
			}
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return Path{}, fmt.Errorf("unclosed [ at offset %d", i)
			}
			num := s[i+1 : i+end]
			idx, err := strconv.Atoi(num)
			if err != nil || idx < 0 || num == "" || (len(num) > 1 && num[0] == '0') || num[0] == '+' {
				return Path{}, fmt.Errorf("index %q at offset %d is not a non-negative integer", num, i)
			}
			if !keyStarted {
				return Path{}, fmt.Errorf("index at offset %d follows no key", i)
			}
			if !afterIndex {
				p.segs = append(p.segs, Segment{Key: key.String()})
			}
			p.segs = append(p.segs, Segment{Index: idx, IsIndex: true})
			afterIndex = true
			i += end
		case ']':
			return Path{}, fmt.Errorf("unexpected ] at offset %d (escape it as \\])", i)
		default:
			if afterIndex {
				return Path{}, fmt.Errorf("unexpected %q after an index at offset %d (expected . or [)", c, i)
			}
			key.WriteByte(c)
			keyStarted = true
		}
	}
	if err := endKey(len(s)); err != nil {
		return Path{}, err
	}
	return p, nil
}

// MustParse parses s and panics on error; for tests and constants.
func MustParse(s string) Path {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Lookup resolves the path in decoded JSON claims (maps of string to any,
// slices of any). It reports false when a step is missing or of the wrong type.
func (p Path) Lookup(claims map[string]any) (any, bool) {
	var cur any = claims
	for _, seg := range p.segs {
		if seg.IsIndex {
			list, ok := cur.([]any)
			if !ok || seg.Index >= len(list) {
				return nil, false
			}
			cur = list[seg.Index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg.Key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Escape returns a key with dots, brackets and backslashes escaped, so that
// Parse(Escape(k)) has the single key k.
func Escape(key string) string {
	r := strings.NewReplacer(`\`, `\\`, `.`, `\.`, `[`, `\[`, `]`, `\]`)
	return r.Replace(key)
}
