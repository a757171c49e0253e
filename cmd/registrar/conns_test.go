package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestMaxConnectionsBoundsOpenConnections holds max_connections busy
// connections (half-sent requests): a further client is not served until
// one of them closes.
func TestMaxConnectionsBoundsOpenConnections(t *testing.T) {
	addr := startServe(t, map[string]string{"REGISTRAR_MAX_CONNECTIONS": "4"})
	var busy []net.Conn
	for i := 0; i < 4; i++ {
		c := dial(t, addr)
		if _, err := io.WriteString(c, "GET /_matrix/client/versions HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		busy = append(busy, c)
	}
	time.Sleep(100 * time.Millisecond)
	late := dial(t, addr)
	if _, err := io.WriteString(late, versionsRequest); err != nil {
		t.Fatal(err)
	}
	if answered(t, late, 500*time.Millisecond) {
		t.Fatal("a connection past max_connections was served")
	}
	busy[0].Close()
	late2 := dial(t, addr)
	_, _ = io.WriteString(late2, versionsRequest)
	if !answered(t, late, 5*time.Second) && !answered(t, late2, 5*time.Second) {
		t.Fatal("no waiting client was served once a slot freed")
	}
}

// TestIdleConnectionsMakeWayForNewClients fills max_connections with idle
// keep-alive connections: a new client is still served at once.
func TestIdleConnectionsMakeWayForNewClients(t *testing.T) {
	addr := startServe(t, map[string]string{"REGISTRAR_MAX_CONNECTIONS": "4"})
	for i := 0; i < 4; i++ {
		c := dial(t, addr)
		_, _ = io.WriteString(c, versionsRequest)
		if !answered(t, c, 5*time.Second) {
			t.Fatalf("keep-alive connection %d not served", i)
		}
	}
	c := dial(t, addr)
	_, _ = io.WriteString(c, versionsRequest)
	if !answered(t, c, 5*time.Second) {
		t.Fatal("idle connections kept a new client out")
	}
}
