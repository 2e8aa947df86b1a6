// Package freeport finds free loopback ports for the servers tests start
// (PostgreSQL, the manager's login and probe servers, the demo).
package freeport

import (
	"fmt"
	"net"
	"strconv"
)

// Addr returns a free "127.0.0.1:port".
func Addr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("freeport: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// Port returns a free loopback port.
func Port() (int, error) {
	a, err := Addr()
	if err != nil {
		return 0, err
	}
	_, p, _ := net.SplitHostPort(a)
	return strconv.Atoi(p)
}
