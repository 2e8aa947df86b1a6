package scim

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MinTokenLength is the shortest bearer token accepted in the tokens file.
const MinTokenLength = 32

// Tokens are the bearer tokens of the --scim-token-file: several per
// namespace (rotation), each valid for its namespace only.
type Tokens map[string][][]byte

// ParseTokens reads lines "<namespace>: <token>" ('#' comments allowed).
// A file without a usable line is an error: no SCIM path then answers
// (fail closed), as a login secrets file that breaks.
func ParseTokens(data []byte) (Tokens, error) {
	out := Tokens{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		ns, tok, ok := bytes.Cut(line, []byte(":"))
		ns, tok = bytes.TrimSpace(ns), bytes.TrimSpace(tok)
		switch {
		case !ok || len(validation.IsDNS1123Label(string(ns))) != 0:
			return nil, fmt.Errorf("line %d: want \"<namespace>: <token>\"", n)
		case len(tok) < MinTokenLength:
			return nil, fmt.Errorf("line %d: every token must be at least %d bytes", n, MinTokenLength)
		}
		out[string(ns)] = append(out[string(ns)], bytes.Clone(tok))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no token in the file")
	}
	return out, nil
}

// Allows reports whether token is one of namespace's, comparing in
// constant time with every token of the namespace.
func (t Tokens) Allows(namespace string, token []byte) bool {
	ok := 0
	for _, want := range t[namespace] {
		ok |= subtle.ConstantTimeCompare(want, token)
	}
	return ok == 1 && len(token) > 0
}
