// Package authn authenticates and decodes login events, with no I/O but
// reading its secrets and keys files: HMAC signatures (scoped secrets), signed
// JWTs (keys pinned to their algorithms, signature verified before the
// payload is decoded), bounds on what an event may carry, the replay cache
// and the per-client rate limiter. The login server (package login) calls it
// and writes to the apiserver; this package is tested with plain go test.
package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
)

// Bounds on an event. A body over MaxBodyBytes is refused before it is read.
const (
	MaxBodyBytes   = 1 << 20
	MaxDepth       = 32
	MaxClaimValues = 2000
	MaxStringBytes = 4096
	MaxIDLength    = 128
	MaxUserID      = 256
	MaxEmail       = 320
	MaxIssuer      = 1024
)

// Event is one login, in both wire forms.
type Event struct {
	ID     string         `json:"id"`
	Time   time.Time      `json:"time"`
	UserID string         `json:"userID"`
	Email  string         `json:"email,omitempty"`
	Issuer string         `json:"issuer"`
	Claims map[string]any `json:"claims"`
	// Namespace, when set, is the namespace the event was signed for: it
	// must be the namespace of the URL.
	Namespace string `json:"namespace,omitempty"`
	// SignedAt is when the event was signed (the HMAC form's t, the JWT's
	// iat): Time must lie within MaxSkew of it.
	SignedAt time.Time `json:"-"`
}

// wireEvent is the JSON form: time is read as text so its format is ours
// to check.
type wireEvent struct {
	ID        string          `json:"id"`
	Time      string          `json:"time"`
	UserID    string          `json:"userID"`
	Email     string          `json:"email,omitempty"`
	Issuer    string          `json:"issuer"`
	Claims    json.RawMessage `json:"claims"`
	Namespace string          `json:"namespace,omitempty"`
}

// FieldError is a bad or missing field; the HTTP layer maps it to 400.
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ErrMalformed wraps input that is not the JSON an event must be.
var ErrMalformed = errors.New("malformed event")

// CheckBounds scans JSON without building it and refuses documents nested
// deeper than MaxDepth, with more than MaxClaimValues scalar values (object
// keys not counted; a few more are allowed for the event's own fields), or
// with a string (key or value) longer than MaxStringBytes.
func CheckBounds(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct{ object, wantKey bool }
	var stack []frame
	values := 0
	valueDone := func() { // a value ended: the enclosing object wants a key next
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) != 0 {
				return fmt.Errorf("%w: unexpected end of JSON", ErrMalformed)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err) //nolint:errorlint // the decoder's message, not a cause to match
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if n := len(stack); n > 0 && stack[n-1].object {
					stack[n-1].wantKey = false
				}
				if stack = append(stack, frame{object: d == '{', wantKey: d == '{'}); len(stack) > MaxDepth {
					return &FieldError{"claims", fmt.Sprintf("nested deeper than %d levels", MaxDepth)}
				}
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		}
		if s, ok := tok.(string); ok && len(s) > MaxStringBytes {
			return &FieldError{"claims", fmt.Sprintf("a string is longer than %d bytes", MaxStringBytes)}
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			stack[n-1].wantKey = false // an object key
			continue
		}
		if values++; values > MaxClaimValues+eventFields {
			return &FieldError{"claims", fmt.Sprintf("more than %d values", MaxClaimValues)}
		}
		valueDone()
	}
}

// eventFields bounds the scalar values an event (or its JWT) has besides its claims.
const eventFields = 16

// DecodeJSON decodes and validates the JSON form of an event.
func DecodeJSON(data []byte) (*Event, error) {
	if !utf8.Valid(data) { // encoding/json would silently replace bad bytes
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	if err := CheckBounds(data); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) == nil {
		if err := checkNameCase(top); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireEvent
	if err := dec.Decode(&w); err != nil {
		return nil, decodeError(err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the event", ErrMalformed)
	}
	return w.event()
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("%w: the event must be a JSON object", ErrMalformed)
		}
		return &FieldError{te.Field, "must be a JSON " + jsonType(te.Type.Kind().String())}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return &FieldError{strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), "unknown field"}
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err) //nolint:errorlint // the decoder's message
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice":
		return "list"
	}
	return kind
}

func (w *wireEvent) event() (*Event, error) {
	e := &Event{ID: w.ID, UserID: w.UserID, Email: w.Email, Issuer: w.Issuer, Namespace: w.Namespace}
	if w.Time == "" {
		return nil, &FieldError{"time", "required (RFC 3339)"}
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return nil, &FieldError{"time", "not an RFC 3339 time"}
	}
	e.Time = t
	if len(w.Claims) == 0 || bytes.Equal(w.Claims, []byte("null")) {
		return nil, &FieldError{"claims", "required (a JSON object)"}
	}
	claims, err := claimpath.DecodeClaims(w.Claims)
	if e.Claims = claims; err != nil || e.Claims == nil {
		return nil, &FieldError{"claims", "must be a JSON object"}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Validate checks the fields of a decoded event.
func (e *Event) Validate() error {
	switch {
	case e.ID == "":
		return &FieldError{"id", "required"}
	case len(e.ID) > MaxIDLength || !rolesyncv1.Printable(e.ID):
		return &FieldError{"id", fmt.Sprintf("must be 1 to %d printable characters", MaxIDLength)}
	case e.UserID == "":
		return &FieldError{"userID", "required"}
	case len(e.UserID) > MaxUserID || !rolesyncv1.Printable(e.UserID):
		return &FieldError{"userID", fmt.Sprintf("must be 1 to %d printable characters", MaxUserID)}
	case e.Issuer == "":
		return &FieldError{"issuer", "required (the identity provider's issuer URL)"}
	case len(e.Issuer) > MaxIssuer || !validIssuer(e.Issuer):
		return &FieldError{"issuer", "must be an absolute http(s) URL"}
	case e.Time.IsZero():
		return &FieldError{"time", "required (RFC 3339)"}
	case e.Namespace != "" && len(validation.IsDNS1123Label(e.Namespace)) != 0:
		return &FieldError{"namespace", "not a namespace name"}
	}
	if e.Email != "" {
		if len(e.Email) > MaxEmail {
			return &FieldError{"email", fmt.Sprintf("longer than %d characters", MaxEmail)}
		}
		if a, err := mail.ParseAddress(e.Email); err != nil || a.Address != e.Email || a.Name != "" {
			return &FieldError{"email", "not an email address"}
		}
	}
	return nil
}

// LoginTime is the time a login is ordered by: the event's time, but never
// later than received, when the server received it.
func LoginTime(eventTime, received time.Time) time.Time {
	if eventTime.After(received) {
		return received
	}
	return eventTime
}

func validIssuer(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && rolesyncv1.Printable(s)
}
