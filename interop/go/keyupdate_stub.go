//go:build !tlspeer_keyupdate

package main

import (
	"crypto/tls"
	"errors"
)

// keyUpdateSupported reports whether this binary can initiate KeyUpdate.
const keyUpdateSupported = false

// sendKeyUpdate is unavailable without the tlspeer_keyupdate build tag:
// crypto/tls has no public API to initiate a KeyUpdate.
func sendKeyUpdate(_ *tls.Conn, _ bool) error {
	return errors.New("tlspeer built without -tags tlspeer_keyupdate " +
		"(and -ldflags=-checklinkname=0); cannot initiate KeyUpdate")
}
