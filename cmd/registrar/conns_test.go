package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// startServe runs the real serve path on a loopback port with the given
// environment and returns its address; it stops with the test.
func startServe(t *testing.T, env map[string]string) string {
	t.Helper()
	if env["REGISTRAR_DATA_DIRECTORY"] == "" {
		env["REGISTRAR_DATA_DIRECTORY"] = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-listen", "127.0.0.1:0"}, envFrom(env), nil, io.Discard, io.Discard, ready)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case addr := <-ready:
		return addr
	case err := <-done:
		t.Fatalf("serve exited early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return ""
}

const versionsRequest = "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"

// answered reports whether conn gets a response within d.
func answered(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

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
