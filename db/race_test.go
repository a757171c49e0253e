package db_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"registrar/db"
	"registrar/db/dbtest"
)

// together runs f(0..n-1) at once and waits.
func together(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			f(i)
		}(i)
	}
	close(start)
	wg.Wait()
}

// TestConcurrentRotationsLeaveOnePair rotates one refresh token from many
// requests at once (a client retrying): whatever the order, the device
// ends with the old token and exactly one successor.
func TestConcurrentRotationsLeaveOnePair(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	s := d.Open(t, nil)
	reg := db.Registration{Account: db.Account{UserID: "@r:x", LocalpartLower: "r", Kind: db.KindUser},
		Login: &db.Login{DeviceID: "D", AccessTokenHash: "a0", RefreshTokenHash: "r0"}}
	if _, err := s.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	together(8, func(i int) {
		_, err := s.RotateRefreshToken(ctx, "r0", db.Login{AccessTokenHash: fmt.Sprintf("a%d", i+1), RefreshTokenHash: fmt.Sprintf("r%d", i+1)})
		if err != nil && err != db.ErrConflict {
			t.Errorf("rotation %d: %v", i, err)
		}
	})
	if n := strings.Count(d.Dump(t, "refresh_tokens"), "\n"); n != 2 {
		t.Fatalf("%d refresh tokens on the device, want the old one and one successor:\n%s", n, d.Dump(t, "refresh_tokens"))
	}
}

// TestTwoInstancesSweepingGiveEachUseBackOnce: reservations of abandoned
// sessions are given back once, however many instances sweep at once.
func TestTwoInstancesSweepingGiveEachUseBackOnce(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	now := time.Now()
	a, b := d.Open(t, func() time.Time { return now }), d.Open(t, func() time.Time { return now })
	if err := a.CreateRegistrationToken(ctx, db.RegistrationToken{Token: "tok"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := a.ReserveRegistrationToken(ctx, "tok", fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Hour)
	var released [2]int64
	together(2, func(i int) {
		n, err := []*db.Store{a, b}[i].ReleaseAbandonedReservations(ctx, time.Minute.Milliseconds())
		if err != nil {
			t.Error(err)
		}
		released[i] = n
	})
	tok, _ := a.RegistrationToken(ctx, "tok")
	if released[0]+released[1] != 20 || tok.Pending != 0 {
		t.Fatalf("released %v, pending now %d", released, tok.Pending)
	}
}

// TestConcurrentReservationsOfOneSessionTakeOneUse: the same session
// reserving at once takes one use.
func TestConcurrentReservationsOfOneSessionTakeOneUse(t *testing.T) {
	ctx := context.Background()
	s := dbtest.New(t).Open(t, nil)
	if err := s.CreateRegistrationToken(ctx, db.RegistrationToken{Token: "tok"}); err != nil {
		t.Fatal(err)
	}
	together(6, func(int) {
		if err := s.ReserveRegistrationToken(ctx, "tok", "same"); err != nil && err != db.ErrConflict {
			t.Error(err)
		}
	})
	if tok, _ := s.RegistrationToken(ctx, "tok"); tok.Pending != 1 {
		t.Fatalf("pending %d", tok.Pending)
	}
}
