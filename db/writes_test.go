package db_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"registrar/db"
	"registrar/db/dbtest"
)

// batchEnv is an SQLite store with a table of names, and a first write
// that holds the queue until released, so that the writes started
// meanwhile queue up and run as one batch.
type batchEnv struct {
	t       *testing.T
	d       dbtest.Database
	s       *db.Store
	release chan struct{}
	held    chan error
}

func newBatchEnv(t *testing.T) *batchEnv {
	d := dbtest.New(t)
	if dbtest.Postgres() {
		t.Skip("writes are group-committed on SQLite only")
	}
	s := d.Open(t, nil)
	if err := s.Exec(`CREATE TABLE batch_names (name TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	e := &batchEnv{t: t, d: d, s: s, release: make(chan struct{}), held: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		e.held <- s.Transaction(context.Background(), func(tx *gorm.DB) error {
			close(started)
			<-e.release
			return insertName(tx, "first")
		})
	}()
	<-started
	return e
}

func insertName(tx *gorm.DB, name string) error {
	return tx.Exec(`INSERT INTO batch_names (name) VALUES (?)`, name).Error
}

// queue starts writes while the first one holds the queue, waits until
// all are queued, releases the queue and returns each write's outcome
// (a panic as an error starting "panic: ").
func (e *batchEnv) queue(ctxs []context.Context, fns []func(tx *gorm.DB) error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("panic: %v", p)
				}
			}()
			errs[i] = e.s.Transaction(ctxs[i], fn)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.s.QueuedWrites() < len(fns) {
		if time.Now().After(deadline) {
			e.t.Fatalf("only %d of %d writes queued", e.s.QueuedWrites(), len(fns))
		}
		time.Sleep(time.Millisecond)
	}
	close(e.release)
	if err := <-e.held; err != nil {
		e.t.Fatalf("the first write: %v", err)
	}
	wg.Wait()
	return errs
}

// names are the names written, sorted.
func (e *batchEnv) names() string {
	var names []string
	for _, f := range strings.Fields(e.d.Dump(e.t, "batch_names")) {
		names = append(names, strings.TrimPrefix(f, "name="))
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func background(n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = context.Background()
	}
	return ctxs
}

// TestQueuedWritesCommitTogether: writes queued behind a running one
// commit in one transaction; one that fails (a duplicate) is rolled back
// alone.
func TestQueuedWritesCommitTogether(t *testing.T) {
	e := newBatchEnv(t)
	var fns []func(tx *gorm.DB) error
	for _, name := range []string{"a", "b", "first", "c", "a"} {
		fns = append(fns, func(tx *gorm.DB) error { return insertName(tx, name) })
	}
	errs := e.queue(background(len(fns)), fns)
	for i, want := range []bool{true, false, true} {
		if (errs[i+1] == nil) != want {
			t.Errorf("write %d: %v", i+1, errs[i+1])
		}
	}
	if (errs[0] == nil) == (errs[4] == nil) {
		t.Errorf("the two writes of a: %v, %v (one must win)", errs[0], errs[4])
	}
	if got := e.s.Batches(); got != 1 {
		t.Errorf("%d batches, want 1", got)
	}
	if got, want := e.names(), "a b c first"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

// TestAPanickingWriteFailsAlone: a write that panics in a batch panics
// in its caller; the others commit.
func TestAPanickingWriteFailsAlone(t *testing.T) {
	e := newBatchEnv(t)
	errs := e.queue(background(3), []func(tx *gorm.DB) error{
		func(tx *gorm.DB) error { return insertName(tx, "a") },
		func(tx *gorm.DB) error { _ = insertName(tx, "p"); panic("boom") },
		func(tx *gorm.DB) error { return insertName(tx, "b") },
	})
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the other writes: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil || !strings.HasPrefix(errs[1].Error(), "panic: boom") {
		t.Errorf("the panicking write: %v", errs[1])
	}
	if got, want := e.names(), "a b first"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

// TestACancelledWriteDoesNotRun: a write whose request went away before
// its turn is not run.
func TestACancelledWriteDoesNotRun(t *testing.T) {
	e := newBatchEnv(t)
	ctxs := background(3)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ctxs[1] = cancelled
	errs := e.queue(ctxs, []func(tx *gorm.DB) error{
		func(tx *gorm.DB) error { return insertName(tx, "a") },
		func(tx *gorm.DB) error { return insertName(tx, "x") },
		func(tx *gorm.DB) error { return insertName(tx, "b") },
	})
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], context.Canceled) {
		t.Errorf("outcomes: %v", errs)
	}
	if got, want := e.names(), "a b first"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

// TestABrokenBatchRunsEachWriteAlone: a write that ends the batch's
// transaction makes the batch fail as a whole; every write then runs
// again in its own transaction, with its own outcome.
func TestABrokenBatchRunsEachWriteAlone(t *testing.T) {
	e := newBatchEnv(t)
	errs := e.queue(background(3), []func(tx *gorm.DB) error{
		func(tx *gorm.DB) error { return insertName(tx, "a") },
		func(tx *gorm.DB) error { return tx.Exec("ROLLBACK").Error },
		func(tx *gorm.DB) error { return insertName(tx, "b") },
	})
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the other writes: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Error("the write that ended its transaction succeeded")
	}
	if got, want := e.names(), "a b first"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

// TestConcurrentWritesAllLand: many writes at once, some batched, each
// committed once.
func TestConcurrentWritesAllLand(t *testing.T) {
	d := dbtest.New(t)
	s := d.Open(t, nil)
	if err := s.Exec(`CREATE TABLE batch_names (name TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	together(64, func(i int) {
		if err := s.Transaction(context.Background(), func(tx *gorm.DB) error { return insertName(tx, fmt.Sprint("n", i)) }); err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	})
	if n := strings.Count(d.Dump(t, "batch_names"), "\n"); n != 64 {
		t.Errorf("%d rows, want 64", n)
	}
}
