package login

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/rolesync/rolesync/internal/claimpath"
)

// ProxyUserName derives the name of a new ProxyUser from its issuer and
// userID: a readable prefix of the userID (lower case, other characters
// replaced by '-') and a hash of both, so the same person always gets the
// same name and different people never collide. The result is a valid
// DNS-1123 subdomain of at most 63 characters.
func ProxyUserName(issuer, userID string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + userID))
	hash := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:13])
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(userID) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if prefix == "" {
		return "user-" + hash
	}
	return prefix + "-" + hash
}

// ReduceClaims keeps only the claims at paths (a path that goes through a
// list index keeps the whole list), so a ProxyUser stores what its mappings
// read and nothing else.
func ReduceClaims(claims map[string]any, paths []claimpath.Path) map[string]any {
	out := map[string]any{}
	for _, p := range paths {
		segs := p.Segments()
		src, dst := claims, out
		for i, s := range segs {
			if s.IsIndex {
				break // the list was copied whole at the previous key
			}
			v, ok := src[s.Key]
			if !ok {
				break
			}
			next, isMap := v.(map[string]any)
			last := i == len(segs)-1 || segs[i+1].IsIndex
			if last || !isMap {
				if last {
					dst[s.Key] = v
				}
				break
			}
			d, ok := dst[s.Key].(map[string]any)
			if !ok {
				d = map[string]any{}
				dst[s.Key] = d
			}
			src, dst = next, d
		}
	}
	return out
}
