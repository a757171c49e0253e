package db_test

import (
	"context"
	"fmt"
	"testing"

	"registrar/db"
	"registrar/db/dbtest"
)

// BenchmarkRecordSeen writes batches of 500 device uses (500 devices of
// 50 accounts), as the recorder does every few seconds; ns/op is per
// batch.
func BenchmarkRecordSeen(b *testing.B) {
	ctx := context.Background()
	s := dbtest.New(b).Open(b, nil)
	var batch []db.Seen
	for u := 0; u < 50; u++ {
		user := fmt.Sprintf("@u%d:x", u)
		reg := db.Registration{Account: db.Account{UserID: user, LocalpartLower: fmt.Sprintf("u%d", u), Kind: db.KindUser}}
		if _, err := s.Register(ctx, reg); err != nil {
			b.Fatal(err)
		}
		for d := 0; d < 10; d++ {
			dev := fmt.Sprintf("D%d", d)
			if _, err := s.CreateDevice(ctx, user, dev, ""); err != nil {
				b.Fatal(err)
			}
			batch = append(batch, db.Seen{UserID: user, DeviceID: dev, IP: "192.0.2.1", UserAgent: "Element/1.0"})
		}
	}
	at := int64(0)
	for b.Loop() {
		at++
		for i := range batch {
			batch[i].At = at
		}
		if err := s.RecordSeen(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRecordSeenKeepsTheNewestAndDropsDeletedDevices(t *testing.T) {
	ctx := context.Background()
	s := dbtest.New(t).Open(t, nil)
	if _, err := s.Register(ctx, db.Registration{Account: db.Account{UserID: "@a:x", LocalpartLower: "a", Kind: db.KindUser}}); err != nil {
		t.Fatal(err)
	}
	s.CreateDevice(ctx, "@a:x", "D", "")
	err := s.RecordSeen(ctx, []db.Seen{
		{UserID: "@a:x", DeviceID: "D", IP: "192.0.2.1", UserAgent: "new", At: 200},
		{UserID: "@a:x", DeviceID: "D", IP: "192.0.2.2", UserAgent: "old", At: 100},
		{UserID: "@a:x", DeviceID: "GONE", IP: "192.0.2.3", UserAgent: "x", At: 300},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Device(ctx, "@a:x", "D")
	if err != nil || d.LastSeenIP != "192.0.2.1" || d.LastSeenUserAgent != "new" || *d.LastSeenAt != 200 {
		t.Fatalf("device %+v %v", d, err)
	}
	// The account was seen when the deleted device was last used.
	a, _ := s.AccountByUserID(ctx, "@a:x")
	if a.LastSeenAt == nil || *a.LastSeenAt != 300 {
		t.Fatalf("account last seen %v", a.LastSeenAt)
	}
	ips, _ := s.ClientIPs(ctx, "@a:x", 10)
	if len(ips) != 2 || ips[0].IP != "192.0.2.1" {
		t.Fatalf("client ips %+v", ips)
	}
}
