package main

import (
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/netutil"
)

// connectionGuard bounds the connections the server holds open
// (max_connections, so that idle keep-alive connections cannot exhaust
// the file descriptors) and, once the bound is reached, closes the idle
// ones so that new clients get a slot.
type connectionGuard struct {
	max  int
	mu   sync.Mutex
	open int
	idle map[net.Conn]struct{}
}

func newConnectionGuard(max int) *connectionGuard {
	return &connectionGuard{max: max, idle: map[net.Conn]struct{}{}}
}

// listener limits ln to max connections at once; an Accept past the bound
// waits for a connection to close.
func (g *connectionGuard) listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, g.max)
}

// track is the http.Server's ConnState hook.
func (g *connectionGuard) track(c net.Conn, state http.ConnState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch state {
	case http.StateNew:
		g.open++
		if g.open >= g.max {
			g.reapLocked()
		}
	case http.StateIdle:
		if g.open >= g.max {
			_ = c.Close() // under pressure an idle connection makes way at once
			return
		}
		g.idle[c] = struct{}{}
	case http.StateActive:
		delete(g.idle, c)
	case http.StateClosed, http.StateHijacked:
		delete(g.idle, c)
		g.open--
	}
}

// reapLocked closes every idle connection; their clients reconnect.
func (g *connectionGuard) reapLocked() {
	for c := range g.idle {
		_ = c.Close()
		delete(g.idle, c)
	}
}
