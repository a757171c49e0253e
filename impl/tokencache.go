package impl

import (
	"sync"
	"time"

	"registrar/db"
)

// tokenCache remembers resolved access tokens for a short time so that
// authenticating a request usually needs no database query. Every change
// this process makes to a user's tokens or account calls revokeUser, which
// invalidates that user's entries at once; changes by other processes
// sharing the database take effect within tokenCacheTTL.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[string]cachedToken
	// seq counts revocations; revoked holds each user's latest one.
	seq     uint64
	revoked map[string]uint64
	max     int
}

type cachedToken struct {
	owner   db.TokenOwner
	readSeq uint64
	fetched time.Time
}

const tokenCacheTTL = 10 * time.Second

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: map[string]cachedToken{}, revoked: map[string]uint64{}, max: max}
}

// get returns a cached owner that is fresh and was read after the user's
// last revocation.
func (c *tokenCache) get(hash string, now time.Time) (db.TokenOwner, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[hash]
	if !ok || now.Sub(e.fetched) > tokenCacheTTL || now.Before(e.fetched) || c.revoked[e.owner.UserID] > e.readSeq {
		return db.TokenOwner{}, false
	}
	return e.owner, true
}

// readSeq is taken before a database read; put stores the result under it,
// so a revocation racing with the read makes the entry stale.
func (c *tokenCache) readSeq() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

func (c *tokenCache) put(hash string, owner db.TokenOwner, readSeq uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k := range c.entries { // evict about a tenth, arbitrarily
			delete(c.entries, k)
			if len(c.entries) < c.max*9/10 {
				break
			}
		}
	}
	c.entries[hash] = cachedToken{owner: owner, readSeq: readSeq, fetched: now}
}

// revokeUser invalidates every cached token of the user.
func (c *tokenCache) revokeUser(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.revoked[userID] = c.seq
}
