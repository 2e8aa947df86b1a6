package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCheckBounds(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth) + `1` + strings.Repeat(`}`, MaxDepth)
	tooDeep := strings.Repeat(`[`, MaxDepth+1) + strings.Repeat(`]`, MaxDepth+1)
	manyKeys := `{` + strings.Repeat(`"k":1,`, 3000) + `"k":1}` // keys are not values, but the 1s are
	okValues := `{"a":[` + strings.Repeat(`1,`, MaxClaimValues-1) + `1]}`
	cases := []struct {
		name string
		doc  string
		ok   bool
	}{
		{"depth at the limit", deep, true},
		{"too deep", tooDeep, false},
		{"values at the limit", okValues, true},
		{"too many values", manyKeys, false},
		{"long key", `{"` + strings.Repeat("k", MaxStringBytes+1) + `":1}`, false},
		{"long value", `{"k":"` + strings.Repeat("v", MaxStringBytes+1) + `"}`, false},
		{"broken", `{"k":`, false},
	}
	for _, tc := range cases {
		if err := CheckBounds([]byte(tc.doc)); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("s3cret-s3cret-s3cret-s3cret-s3cret")
	body := []byte(`{"a":1}`)
	now := time.Unix(1_800_000_000, 0)
	sig := Sign(secret, body, now)
	if err := VerifySignature(sig, body, [][]byte{[]byte("other-other-other-other-other-other"), secret}, now.Add(time.Minute)); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	for name, c := range map[string]struct {
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		"tampered":    {sig, []byte(`{"a":2}`), now, ErrBadSignature},
		"old":         {sig, body, now.Add(6 * time.Minute), ErrClockSkew},
		"early":       {sig, body, now.Add(-6 * time.Minute), ErrClockSkew},
		"no v1":       {"t=1800000000", body, now, ErrBadSignature},
		"two t":       {sig + ",t=1", body, now, ErrBadSignature},
		"short v1":    {"t=1800000000,v1=abcd", body, now, ErrBadSignature},
		"empty":       {"", body, now, ErrBadSignature},
		"not key=val": {"garbage", body, now, ErrBadSignature},
	} {
		if err := VerifySignature(c.header, c.body, [][]byte{secret}, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestParseKeysPinsAlgorithms(t *testing.T) {
	rsaK, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecK, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pemOf := func(pub any) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	keys, err := ParseKeys([]byte(pemOf(&rsaK.PublicKey) + pemOf(&ecK.PublicKey)))
	if err != nil || len(keys) != 2 {
		t.Fatalf("%v %d", err, len(keys))
	}
	if !reflect.DeepEqual(keys[1].algs, []string{"ES384"}) || strings.Contains(strings.Join(keys[0].algs, ","), "HS") {
		t.Fatalf("algorithms %v / %v", keys[0].algs, keys[1].algs)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	priv := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaK)}))
	for name, doc := range map[string]string{
		"small RSA":       pemOf(&small.PublicKey),
		"private key":     priv,
		"nothing":         "hello",
		"short oct":       `{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}`,
		"alg not fitting": `{"keys":[{"kty":"oct","alg":"RS256","k":"` + strings.Repeat("A", 64) + `"}]}`,
		"unknown kty":     `{"keys":[{"kty":"XYZ"}]}`,
		"no signing key":  `{"keys":[]}`,
		"RSA e=1":         rsaJWK(rsaK.N, 1),
		"RSA even e":      rsaJWK(rsaK.N, 65536),
		"RSA even n":      rsaJWK(new(big.Int).Lsh(rsaK.N, 1), 65537),
	} {
		if _, err := ParseKeys([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func rsaJWK(n *big.Int, e int64) string {
	enc := base64.RawURLEncoding
	return `{"keys":[{"kty":"RSA","n":"` + enc.EncodeToString(n.Bytes()) + `","e":"` + enc.EncodeToString(big.NewInt(e).Bytes()) + `"}]}`
}

// FuzzDecodeJSON: the decoder never panics, and whatever it accepts is a
// valid, bounded event.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"id":"1","time":"2026-11-29T10:00:00Z","userID":"u","issuer":"https://i","claims":{"groups":["a"]}}`))
	f.Add([]byte(`{"id":"1","time":"2026-11-29T10:00:00Z","userID":"u","email":"a@b.c","issuer":"https://i","claims":{}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"claims":{"a":{"b":[1,2,{"c":null}]}}}`))
	f.Add([]byte("{\"userID\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeJSON(data)
		if err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		if ev.Claims == nil {
			t.Fatal("accepted an event without claims")
		}
	})
}

func TestReplayCacheExpiresInOrderAndRefusesWhenFull(t *testing.T) {
	c := NewReplayCache()
	c.limit = 3
	t0 := time.Unix(1000, 0)
	for i, id := range []string{"a", "b", "c"} {
		if got := c.Reserve(id, t0.Add(time.Duration(i)*time.Second)); got != Reserved {
			t.Fatalf("%s: %v", id, got)
		}
	}
	if got := c.Reserve("a", t0.Add(time.Minute)); got != Replayed {
		t.Fatalf("replay within the window: %v", got)
	}
	if got := c.Reserve("d", t0.Add(time.Minute)); got != CacheFull {
		t.Fatalf("full cache: %v (evicting early would re-open replays)", got)
	}
	// a and b expire; c is still remembered.
	later := t0.Add(ReplayWindow + 1500*time.Millisecond)
	if got := c.Reserve("d", later); got != Reserved {
		t.Fatalf("after expiry: %v", got)
	}
	if got := c.Reserve("c", later); got != Replayed {
		t.Fatalf("c expired early: %v", got)
	}
	if got := c.Reserve("a", later); got != Reserved {
		t.Fatalf("a after its window: %v", got)
	}
	c.Release("a")
	if got := c.Reserve("a", later); got != Reserved {
		t.Fatalf("released id: %v", got)
	}
}

// BenchmarkReplayReserve measures reserve at a nearly full cache: the cost
// must not grow with the fill level.
//
//	go test ./internal/login -run '^$' -bench ReplayReserve -benchmem
func BenchmarkReplayReserve(b *testing.B) {
	for _, fill := range []int{0, maxRemembered / 2, maxRemembered - 1} {
		b.Run(fmt.Sprintf("fill=%d", fill), func(b *testing.B) {
			c := NewReplayCache()
			c.limit = maxRemembered + b.N
			now := time.Now()
			for i := range fill {
				c.Reserve(fmt.Sprintf("pre-%d", i), now)
			}
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("id-%d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c.Reserve(ids[i], now)
			}
		})
	}
}

// TestForgedTokenCostsNoMoreThanItsSize: a token whose signature does not
// verify is refused before its payload is decoded, so it allocates a small
// multiple of its size (it cost 28-45× before the payload was verified first).
func TestForgedTokenCostsNoMoreThanItsSize(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyFor("rsa", &key.PublicKey, "")
	if err != nil {
		t.Fatal(err)
	}
	v := &JWTVerifier{Keys: func() ([]VerificationKey, error) { return []VerificationKey{k}, nil }, Issuer: "i", Audience: "a", Now: time.Now}
	// A payload built to be expensive to decode: a deep tree of many keys.
	var b strings.Builder
	b.WriteString(`{"claims":{`)
	for i := 0; b.Len() < 700<<10; i++ {
		fmt.Fprintf(&b, `"k%d":[[[[{"a":1,"b":[1,2,3]}]]]],`, i)
	}
	b.WriteString(`"z":1}}`)
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString([]byte(`{"alg":"RS256","kid":"rsa"}`)) + "." + enc.EncodeToString([]byte(b.String())) + "." +
		enc.EncodeToString(make([]byte, 256))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = v.Verify(tok)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadToken) {
		t.Fatalf("forged token: %v", err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a forged %d-byte token allocated %d bytes (%.2f×)", len(tok), allocated, float64(allocated)/float64(len(tok)))
	if allocated > 2*uint64(len(tok)) {
		t.Fatalf("a forged %d-byte token allocated %d bytes: more than twice its size", len(tok), allocated)
	}
}

func TestLoginTimeIsNeverLaterThanReceived(t *testing.T) {
	received := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if got := LoginTime(received.Add(4*time.Minute), received); !got.Equal(received) {
		t.Fatalf("a future time is ordered at %v, not when received", got)
	}
	if past := received.Add(-time.Second); !LoginTime(past, received).Equal(past) {
		t.Fatal("a past time must be kept")
	}
}
