package rolemap

import "sort"

// trie indexes rules by a literal prefix (or, reversed, suffix) of the values
// they can match. Walking a value visits only the rules whose literal text
// lies along it, so the cost grows with the value's length, not the number
// of rules.
type trie struct {
	rules []int32 // rules whose literal text ends at this node
	keys  []byte  // sorted child bytes
	kids  []*trie
}

func (t *trie) insert(lit string, rule int32) {
	n := t
	for i := 0; i < len(lit); i++ {
		n = n.child(lit[i], true)
	}
	n.rules = append(n.rules, rule)
}

func (t *trie) child(b byte, create bool) *trie {
	i := sort.Search(len(t.keys), func(i int) bool { return t.keys[i] >= b })
	if i < len(t.keys) && t.keys[i] == b {
		return t.kids[i]
	}
	if !create {
		return nil
	}
	t.keys = append(t.keys, 0)
	t.kids = append(t.kids, nil)
	copy(t.keys[i+1:], t.keys[i:])
	copy(t.kids[i+1:], t.kids[i:])
	t.keys[i] = b
	t.kids[i] = &trie{}
	return t.kids[i]
}

// next returns the child for b without allocating (linear for small fan-out).
func (t *trie) next(b byte) *trie {
	if len(t.keys) <= 8 {
		for i, k := range t.keys {
			if k == b {
				return t.kids[i]
			}
		}
		return nil
	}
	lo, hi := 0, len(t.keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.keys[m] < b {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t.keys) && t.keys[lo] == b {
		return t.kids[lo]
	}
	return nil
}

func (t *trie) empty() bool { return t == nil || (len(t.rules) == 0 && len(t.keys) == 0) }

func asciiLower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// foldPrefix returns the part of an (already lowered) literal that can be
// matched byte-wise against an ASCII-lowered value under Unicode simple
// folding: it stops at the first non-ASCII byte and at 'k' and 's', which
// also fold to the Kelvin sign and the long s.
func foldPrefix(lit string) string {
	for i := 0; i < len(lit); i++ {
		c := asciiLower(lit[i])
		if c >= 0x80 || c == 'k' || c == 's' {
			return lowerASCII(lit[:i])
		}
	}
	return lowerASCII(lit)
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = asciiLower(b[i])
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
