package authn

import (
	"crypto/sha256"
	"encoding/base64"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ReplayWindow is how long an event id is remembered.
const ReplayWindow = 10 * time.Minute

// maxRemembered bounds the replay cache; beyond it new events are refused
// (503): evicting ids early would re-open them to replay. An id costs about
// 65 bytes (a 16-byte digest and an expiry in the map, about 40 bytes with
// the map's overhead, plus 24 bytes in the FIFO), so 2^18 ids take about
// 16 MiB of the manager's 256 MiB limit, and hold 10 minutes of 437 events
// per second — more than one apiserver absorbs in ProxyUser writes.
const maxRemembered = 1 << 18

type digest [16]byte

// ReplayCache remembers event ids (as digests) for ReplayWindow. Ids
// expire in arrival order from a FIFO, so every reserve costs the same at
// any fill level (no sweep of the whole map under the lock).
type ReplayCache struct {
	mu    sync.Mutex
	seen  map[digest]int64 // digest -> expiry (unix nanoseconds)
	queue []queued         // arrival order; a ring would save the slice's regrowth, a slice re-sliced from the front is enough
	limit int
}

type queued struct {
	d   digest
	exp int64
}

// NewReplayCache returns an empty cache holding up to 2^18 ids.
func NewReplayCache() *ReplayCache {
	return &ReplayCache{seen: map[digest]int64{}, limit: maxRemembered}
}

// ReserveResult says what Reserve did with an id.
type ReserveResult int

// Reserve outcomes.
const (
	Reserved  ReserveResult = iota // new: remembered for ReplayWindow
	Replayed                       // seen within the window
	CacheFull                      // full: refused, never evicting early
)

func digestOf(id string) digest {
	sum := sha256.Sum256([]byte(id))
	var d digest
	copy(d[:], sum[:16])
	return d
}

// ReplayDigest is what a ProxyUser records of an accepted login
// (spec.recentLogins): the base64url of the first 16 bytes of the SHA-256
// of its replay id, the digest this cache keys on too.
func ReplayDigest(id string) string {
	d := digestOf(id)
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// Reserve records id unless it was seen within the window.
func (c *ReplayCache) Reserve(id string, now time.Time) ReserveResult {
	d, t := digestOf(id), now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && c.queue[0].exp <= t { // expire in arrival order
		q := c.queue[0]
		if exp, ok := c.seen[q.d]; ok && exp == q.exp {
			delete(c.seen, q.d)
		}
		c.queue[0] = queued{}
		c.queue = c.queue[1:]
	}
	if exp, ok := c.seen[d]; ok && t < exp {
		return Replayed
	}
	if len(c.seen) >= c.limit {
		return CacheFull
	}
	exp := now.Add(ReplayWindow).UnixNano()
	c.seen[d] = exp
	c.queue = append(c.queue, queued{d, exp})
	return Reserved
}

// Release forgets id: the event failed in a way the client should retry.
// Its FIFO entry stays and is skipped when it expires.
func (c *ReplayCache) Release(id string) {
	d := digestOf(id)
	c.mu.Lock()
	delete(c.seen, d)
	c.mu.Unlock()
}

// ClientLimiter is a token bucket per client address.
type ClientLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*clientBucket
	swept   time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewClientLimiter allows perSecond events per client (0: unlimited), burst at once.
func NewClientLimiter(perSecond float64, burst int) *ClientLimiter {
	return &ClientLimiter{rate: rate.Limit(perSecond), burst: max(1, burst), clients: map[string]*clientBucket{}}
}

// Allow takes a token for the client at remoteAddr (host:port).
func (l *ClientLimiter) Allow(remoteAddr string, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.clients {
			if now.Sub(b.seen) > 5*time.Minute {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	b := l.clients[host]
	if b == nil {
		b = &clientBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.clients[host] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
