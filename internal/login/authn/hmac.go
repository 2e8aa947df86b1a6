package authn

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MaxSkew is how far a signature's t (or a JWT's iat) may be from now.
const MaxSkew = 5 * time.Minute

// Authentication failures; the HTTP layer answers 401 with the reason.
var (
	ErrBadSignature = errors.New("the signature does not verify")
	ErrClockSkew    = fmt.Errorf("the signature time is more than %v from now", MaxSkew)
)

// SignatureHeader is the header of the HMAC form.
const SignatureHeader = "Rolesync-Signature"

// Sign returns the Rolesync-Signature header value for body at t.
func Sign(secret, body []byte, t time.Time) string {
	return "t=" + strconv.FormatInt(t.Unix(), 10) + ",v1=" + hex.EncodeToString(mac(secret, t.Unix(), body))
}

func mac(secret []byte, t int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(strconv.FormatInt(t, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifySignature checks header (t=<unix>,v1=<hex>[,v1=...]) over body
// against every secret, in constant time per comparison, and t against now.
func VerifySignature(header string, body []byte, secrets [][]byte, now time.Time) error {
	_, err := VerifySignatureAt(header, body, secrets, now)
	return err
}

// VerifySignatureAt is VerifySignature that also returns the signature's t.
func VerifySignatureAt(header string, body []byte, secrets [][]byte, now time.Time) (time.Time, error) {
	if header == "" {
		return time.Time{}, fmt.Errorf("%w: no %s header", ErrBadSignature, SignatureHeader)
	}
	if len(header) > 1024 {
		return time.Time{}, fmt.Errorf("%w: the %s header is too long", ErrBadSignature, SignatureHeader)
	}
	var ts int64 = -1
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return time.Time{}, fmt.Errorf("%w: garbled %s header", ErrBadSignature, SignatureHeader)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts != -1 {
				return time.Time{}, fmt.Errorf("%w: garbled t in %s", ErrBadSignature, SignatureHeader)
			}
			ts = n
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return time.Time{}, fmt.Errorf("%w: garbled v1 in %s", ErrBadSignature, SignatureHeader)
			}
			sigs = append(sigs, b)
		}
	}
	if ts < 0 || len(sigs) == 0 {
		return time.Time{}, fmt.Errorf("%w: %s needs t and v1", ErrBadSignature, SignatureHeader)
	}
	at := time.Unix(ts, 0)
	if d := now.Sub(at); d > MaxSkew || d < -MaxSkew {
		return time.Time{}, ErrClockSkew
	}
	for _, secret := range secrets {
		want := mac(secret, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return at, nil
			}
		}
	}
	return time.Time{}, ErrBadSignature
}

// Secret is one HMAC secret, for every namespace or scoped to one.
type Secret struct {
	namespace string // "" for every namespace
	key       []byte
}

// ParseSecrets reads one secret per line: `<secret>` (any namespace) or
// `<namespace>: <secret>` (events for that namespace only); blank lines and
// lines starting with # are ignored. Every secret is at least 32 bytes.
func ParseSecrets(data []byte) ([]Secret, error) {
	var out []Secret
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var sec Secret
		if ns, key, ok := bytes.Cut(line, []byte(": ")); ok && len(validation.IsDNS1123Label(string(ns))) == 0 {
			sec.namespace, line = string(ns), bytes.TrimSpace(key)
		}
		if len(line) < 32 {
			return nil, fmt.Errorf("line %d: every secret must be at least 32 bytes", n)
		}
		sec.key = bytes.Clone(line)
		out = append(out, sec)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no secret in the file")
	}
	return out, nil
}

// KeysFor returns the secrets that may authenticate events for namespace.
func KeysFor(secrets []Secret, namespace string) [][]byte {
	keys := make([][]byte, 0, len(secrets))
	for _, s := range secrets {
		if s.namespace == "" || s.namespace == namespace {
			keys = append(keys, s.key)
		}
	}
	return keys
}
