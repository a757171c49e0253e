package db_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"registrar/db"
	"registrar/db/dbtest"
)

// BenchmarkConcurrentRegistrations registers accounts (with a device and
// tokens) from 64 goroutines at once: the database's write throughput,
// without password hashing. ns/op is per registration.
func BenchmarkConcurrentRegistrations(b *testing.B) {
	s := dbtest.New(b).Open(b, nil)
	var n atomic.Int64
	b.SetParallelism(32) // x GOMAXPROCS goroutines
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			name := fmt.Sprint("u", i)
			reg := db.Registration{Account: db.Account{UserID: "@" + name + ":x", LocalpartLower: name, Kind: db.KindUser},
				Login: &db.Login{DeviceID: "D", AccessTokenHash: "a" + name, RefreshTokenHash: "r" + name}}
			if _, err := s.Register(context.Background(), reg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
