package claimpath

import (
	"bytes"
	"encoding/json"
	"errors"
)

// DecodeClaims decodes a JSON object of claims keeping numbers exact
// (json.Number): 9007199254740993 never becomes 9007199254740992. The
// login server, the controller and the CLI all decode with it, so they
// decide alike; it lives beside the claim paths (no CEL) so the
// authentication packages can decode without the rule engine.
func DecodeClaims(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the claims")
	}
	return claims, nil
}
