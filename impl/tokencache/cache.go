// Package tokencache keeps resolved access tokens for a short time so
// that authenticating a request usually needs no database query, and
// keeps that cache correct by construction: Store wraps the database so
// that every write that can revoke a user's tokens invalidates them.
package tokencache

import (
	"sync"
	"sync/atomic"
	"time"

	"registrar/db"
)

// TTL bounds how long a cached token is believed; revocations by other
// processes sharing the database that are not announced to this one take
// effect within it.
const TTL = 10 * time.Second

// Cache maps token hashes to their owners.
type Cache struct {
	mu      sync.RWMutex
	entries map[string]entry
	// seq counts revocations; revoked holds each user's latest one, and
	// all the latest revocation of everyone.
	seq     uint64
	revoked map[string]uint64
	all     uint64
	max     int

	hits, misses, evictions atomic.Uint64
}

// Stats are a cache's counts since it was made.
type Stats struct {
	// Hits and Misses count lookups answered from the cache and not.
	Hits, Misses uint64
	// Evictions counts tokens dropped to make room.
	Evictions uint64
}

// Stats returns the cache's counts.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
}

type entry struct {
	owner   db.TokenOwner
	readSeq uint64
	fetched time.Time
}

// New returns a cache of at most max tokens.
func New(max int) *Cache {
	return &Cache{entries: map[string]entry{}, revoked: map[string]uint64{}, max: max}
}

// get returns a cached owner that is fresh and was read after the user's
// last revocation.
func (c *Cache) get(hash string, now time.Time) (db.TokenOwner, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[hash]
	if !ok || now.Sub(e.fetched) > TTL || now.Before(e.fetched) || c.revoked[e.owner.UserID] > e.readSeq || c.all > e.readSeq {
		c.misses.Add(1)
		return db.TokenOwner{}, false
	}
	c.hits.Add(1)
	return e.owner, true
}

// readSeq is taken before a database read; put stores the result under it,
// so a revocation racing with the read makes the entry stale.
func (c *Cache) readSeq() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

func (c *Cache) put(hash string, owner db.TokenOwner, readSeq uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k := range c.entries { // evict about a tenth, arbitrarily
			delete(c.entries, k)
			c.evictions.Add(1)
			if len(c.entries) < c.max*9/10 {
				break
			}
		}
	}
	c.entries[hash] = entry{owner: owner, readSeq: readSeq, fetched: now}
}

// RevokeUser invalidates every cached token of the user.
func (c *Cache) RevokeUser(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.revoked[userID] = c.seq
}

// RevokeAll invalidates every cached token (revocations may have been
// missed).
func (c *Cache) RevokeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.all = c.seq
	clear(c.revoked)
}
