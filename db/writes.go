package db

import (
	"context"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// writeQueue group-commits this process's SQLite write transactions.
// SQLite writes one transaction at a time; rather than each waiting its
// turn to begin and commit alone, the writes queued while one batch runs
// run next as one transaction, each inside its own savepoint, and commit
// together. A write that fails is rolled back to its savepoint alone; a
// write is reported done only once its batch has committed. The first
// writer to find the queue idle runs the batches (no goroutine of its
// own): a write that finds no other runs as its own transaction, as it
// would without the queue.
type writeQueue struct {
	mu      sync.Mutex
	pending []*writeJob
	running bool
	// batches counts the transactions that held more than one write (for
	// tests).
	batches int
}

// maxBatch bounds the writes committed together.
const maxBatch = 32

type writeJob struct {
	ctx      context.Context
	fn       func(tx *gorm.DB) error
	err      error
	panicked any
	done     chan struct{}
}

// run queues fn and returns once it committed or failed. A panic in fn
// is raised again in the caller.
func (q *writeQueue) run(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	job := &writeJob{ctx: ctx, fn: fn, done: make(chan struct{})}
	q.mu.Lock()
	q.pending = append(q.pending, job)
	lead := !q.running
	q.running = true
	q.mu.Unlock()
	if lead {
		q.lead(db)
	}
	<-job.done
	if job.panicked != nil {
		panic(job.panicked)
	}
	return job.err
}

// lead runs batches until the queue is empty.
func (q *writeQueue) lead(db *gorm.DB) {
	for {
		q.mu.Lock()
		n := min(len(q.pending), maxBatch)
		if n == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := q.pending[:n:n]
		q.pending = q.pending[n:]
		if n > 1 {
			q.batches++
		}
		q.mu.Unlock()
		runBatch(db, batch)
		for _, job := range batch {
			close(job.done)
		}
	}
}

// runBatch runs jobs, as one transaction when there are several.
func runBatch(db *gorm.DB, jobs []*writeJob) {
	if len(jobs) == 1 {
		runAlone(db, jobs[0])
		return
	}
	if err := runTogether(db, jobs); err != nil {
		// The transaction failed as a whole (a write panicked, a savepoint
		// or the commit failed): nothing of it was written, so every write
		// but one that panicked runs again, alone.
		for _, job := range jobs {
			if job.panicked == nil {
				runAlone(db, job)
			}
		}
	}
}

// runAlone runs one job in its own transaction.
func runAlone(db *gorm.DB, job *writeJob) {
	job.err = nil
	if err := job.ctx.Err(); err != nil {
		job.err = err
		return
	}
	job.err = protect(job, func() error { return db.WithContext(job.ctx).Transaction(job.fn) })
}

// runTogether runs jobs in one transaction, each in a savepoint; it
// returns an error when the transaction has to be given up.
func runTogether(db *gorm.DB, jobs []*writeJob) error {
	// A request that goes away must not interrupt the statement of a
	// batch: SQLite rolls back the whole transaction on an interrupt.
	tx := db.WithContext(context.WithoutCancel(jobs[0].ctx)).Begin()
	if tx.Error != nil {
		return tx.Error
	}
	for _, job := range jobs {
		if err := job.ctx.Err(); err != nil {
			job.err = err
			continue
		}
		if err := tx.Exec("SAVEPOINT batch_write").Error; err != nil {
			tx.Rollback()
			return err
		}
		job.err = protect(job, func() error { return job.fn(tx.WithContext(context.WithoutCancel(job.ctx))) })
		if job.panicked != nil {
			tx.Rollback()
			return fmt.Errorf("write panicked: %v", job.panicked)
		}
		if job.err != nil {
			if err := tx.Exec("ROLLBACK TO batch_write").Error; err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Exec("RELEASE batch_write").Error; err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit().Error; err != nil {
		tx.Rollback()
		return err
	}
	return nil
}

// protect runs f, turning a panic into job.panicked.
func protect(job *writeJob, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			job.panicked = p
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return f()
}
