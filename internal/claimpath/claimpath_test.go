package claimpath

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	k := func(s string) Segment { return Segment{Key: s} }
	ix := func(i int) Segment { return Segment{Index: i, IsIndex: true} }
	cases := []struct {
		in   string
		want []Segment
	}{
		{"groups", []Segment{k("groups")}},
		{"resource_access.litellm.roles", []Segment{k("resource_access"), k("litellm"), k("roles")}},
		{`https://example\.com/roles`, []Segment{k("https://example.com/roles")}},
		{`a\\b`, []Segment{k(`a\b`)}},
		{`a\[0\]`, []Segment{k("a[0]")}},
		{"groups[0]", []Segment{k("groups"), ix(0)}},
		{"m[1][2].x", []Segment{k("m"), ix(1), ix(2), k("x")}},
		{"realm_access.roles[10]", []Segment{k("realm_access"), k("roles"), ix(10)}},
		{"cognito:groups", []Segment{k("cognito:groups")}},
	}
	for _, tc := range cases {
		p, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(p.Segments(), tc.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tc.in, p.Segments(), tc.want)
		}
		if p.String() != tc.in {
			t.Errorf("String() = %q", p.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", ".", "a.", ".a", "a..b", `a\`, `a\x`, "a[", "a[x]", "a[-1]", "a[01]", "[0]", "a[0]b", "a]", "a[]", strings.Repeat("a", 257), "a[+1]"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", in)
		}
	}
}

func TestLookup(t *testing.T) {
	var claims map[string]any
	_ = json.Unmarshal([]byte(`{"groups":["a","b"],"resource_access":{"litellm":{"roles":["admin"]}},"https://x.io/r":"v","n":{"l":[[1,2],[3]]}}`), &claims)
	cases := []struct {
		path string
		want any
		ok   bool
	}{
		{"groups", []any{"a", "b"}, true},
		{"groups[1]", "b", true},
		{"groups[2]", nil, false},
		{"resource_access.litellm.roles[0]", "admin", true},
		{`https://x\.io/r`, "v", true},
		{"n.l[0][1]", float64(2), true},
		{"missing", nil, false},
		{"groups.x", nil, false},
		{"n.l.x", nil, false},
	}
	for _, tc := range cases {
		got, ok := MustParse(tc.path).Lookup(claims)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, key := range []string{"a.b", `c\d`, "e[0]", "plain"} {
		p, err := Parse(Escape(key))
		if err != nil || len(p.Segments()) != 1 || p.Segments()[0].Key != key {
			t.Errorf("Escape(%q) = %q: %v %v", key, Escape(key), p.Segments(), err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"groups", `a\.b[0].c`, "a[1][2]", `\\`, "a..b", "[", "a[99999999999999999999]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if len(p.Segments()) == 0 {
			t.Fatalf("%q parsed to no segments", s)
		}
		for _, seg := range p.Segments() {
			if !seg.IsIndex && seg.Key == "" {
				t.Fatalf("%q has an empty key", s)
			}
		}
		_, _ = p.Lookup(map[string]any{"a": []any{map[string]any{"b": 1}}})
	})
}
