package ratelimit

import (
	"hash/maphash"
	"math"
	"time"
)

// The drained-key sketch's shape: sketchDepth rows of sketchWidth cells,
// 1 MiB in all, allocated only once a limiter first evicts a bucket that
// had not refilled.
const (
	sketchDepth = 4
	sketchWidth = 1 << 16
)

// drainedSketch remembers when the buckets evicted before they refilled
// will be full again: a count-min sketch whose cells keep the latest
// "full at" time (seconds after epoch, rounded up) of the keys hashed to
// them. A key's answer is the earliest of its cells, never earlier than
// its own time: a collision can only make a key wait longer, never let an
// evicted key start again with a full bucket. Old times simply pass.
type drainedSketch struct {
	seed  maphash.Seed
	epoch time.Time
	cells [sketchDepth][sketchWidth]uint32
}

func newDrainedSketch(now time.Time) *drainedSketch {
	return &drainedSketch{seed: maphash.MakeSeed(), epoch: now}
}

// indexes are key's cell in each row (double hashing of one 64-bit hash
// under a per-process seed, so that nobody can aim keys at another's
// cells).
func (d *drainedSketch) indexes(key string) [sketchDepth]uint32 {
	h := maphash.String(d.seed, key)
	h1, h2 := uint32(h), uint32(h>>32)|1
	var idx [sketchDepth]uint32
	for i := range idx {
		idx[i] = (h1 + uint32(i)*h2) % sketchWidth
	}
	return idx
}

func (d *drainedSketch) seconds(t time.Time) uint32 {
	s := math.Ceil(t.Sub(d.epoch).Seconds())
	switch {
	case s <= 0:
		return 0
	case s >= math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// record notes that key's bucket is full again at fullAt.
func (d *drainedSketch) record(key string, fullAt time.Time) {
	at := d.seconds(fullAt)
	for row, i := range d.indexes(key) {
		if d.cells[row][i] < at {
			d.cells[row][i] = at
		}
	}
}

// fullAt is when key's bucket, if it was evicted drained, is full again
// (a time not after now when it is, or was never recorded).
func (d *drainedSketch) fullAt(key string) time.Time {
	at := uint32(math.MaxUint32)
	for row, i := range d.indexes(key) {
		at = min(at, d.cells[row][i])
	}
	return d.epoch.Add(time.Duration(at) * time.Second)
}
