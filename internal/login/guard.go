package login

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ReplayWindow is how long an event id is remembered.
const ReplayWindow = 10 * time.Minute

// maxRemembered bounds the replay cache; beyond it new events are refused
// (503) rather than letting a flood grow memory without limit.
const maxRemembered = 1 << 20

// replayCache remembers event ids for ReplayWindow.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // id -> expiry
}

func newReplayCache() *replayCache { return &replayCache{seen: map[string]time.Time{}} }

type reserveResult int

const (
	reserved reserveResult = iota
	replayed
	cacheFull
)

// reserve records id unless it was seen within the window.
func (c *replayCache) reserve(id string, now time.Time) reserveResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[id]; ok && now.Before(exp) {
		return replayed
	}
	if len(c.seen) >= maxRemembered/2 {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= maxRemembered {
			return cacheFull
		}
	}
	c.seen[id] = now.Add(ReplayWindow)
	return reserved
}

// release forgets id: the event failed in a way the client should retry.
func (c *replayCache) release(id string) {
	c.mu.Lock()
	delete(c.seen, id)
	c.mu.Unlock()
}

// clientLimiter is a token bucket per client address.
type clientLimiter struct {
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

func newClientLimiter(perSecond float64, burst int) *clientLimiter {
	return &clientLimiter{rate: rate.Limit(perSecond), burst: max(1, burst), clients: map[string]*clientBucket{}}
}

// allow takes a token for the client at remoteAddr (host:port).
func (l *clientLimiter) allow(remoteAddr string, now time.Time) bool {
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
