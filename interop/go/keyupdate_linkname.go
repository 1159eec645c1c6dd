//go:build tlspeer_keyupdate

// Initiating a TLS 1.3 KeyUpdate. crypto/tls only *responds* to KeyUpdate
// (it answers update_requested); it has no public API to send one. For
// interop testing we reach into crypto/tls with go:linkname, which requires
// building with -ldflags=-checklinkname=0. Internal signatures are checked
// against Go 1.27 only; other versions refuse at runtime.

package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

const keyUpdateSupported = true

const recordTypeHandshake = 22

//go:linkname tlsWriteRecordLocked crypto/tls.(*Conn).writeRecordLocked
func tlsWriteRecordLocked(c *tls.Conn, typ uint8, data []byte) (int, error)

//go:linkname tlsCipherSuiteTLS13ByID crypto/tls.cipherSuiteTLS13ByID
func tlsCipherSuiteTLS13ByID(id uint16) unsafe.Pointer

//go:linkname tlsNextTrafficSecret crypto/tls.(*cipherSuiteTLS13).nextTrafficSecret
func tlsNextTrafficSecret(suite unsafe.Pointer, secret []byte) []byte

//go:linkname tlsSetTrafficSecret crypto/tls.(*halfConn).setTrafficSecret
func tlsSetTrafficSecret(hc unsafe.Pointer, suite unsafe.Pointer, level tls.QUICEncryptionLevel, secret []byte)

var (
	layoutOnce sync.Once
	layoutErr  error
	outOffset  uintptr // offset of Conn.out (a halfConn)
	secretOff  uintptr // offset of halfConn.trafficSecret
)

func checkLayout() error {
	layoutOnce.Do(func() {
		if !strings.HasPrefix(runtime.Version(), "go1.27") {
			layoutErr = fmt.Errorf("KeyUpdate hack only validated for go1.27, running %s", runtime.Version())
			return
		}
		ct := reflect.TypeFor[tls.Conn]()
		out, ok := ct.FieldByName("out")
		if !ok {
			layoutErr = errors.New("tls.Conn has no field out")
			return
		}
		hc := out.Type
		if hc.Kind() != reflect.Struct || hc.NumField() == 0 ||
			hc.Field(0).Type != reflect.TypeFor[sync.Mutex]() || hc.Field(0).Offset != 0 {
			layoutErr = errors.New("unexpected halfConn layout (mutex)")
			return
		}
		ts, ok := hc.FieldByName("trafficSecret")
		if !ok || ts.Type != reflect.TypeFor[[]byte]() {
			layoutErr = errors.New("unexpected halfConn layout (trafficSecret)")
			return
		}
		outOffset, secretOff = out.Offset, ts.Offset
	})
	return layoutErr
}

// sendKeyUpdate sends a KeyUpdate message on conn (which must have completed
// a TLS 1.3 handshake) and switches conn's write keys, exactly as crypto/tls
// does when answering a peer's update_requested. It must not run
// concurrently with conn.Write.
func sendKeyUpdate(conn *tls.Conn, requestUpdate bool) error {
	if err := checkLayout(); err != nil {
		return err
	}
	st := conn.ConnectionState()
	if !st.HandshakeComplete || st.Version != tls.VersionTLS13 {
		return errors.New("KeyUpdate needs a completed TLS 1.3 handshake")
	}
	suite := tlsCipherSuiteTLS13ByID(st.CipherSuite)
	if suite == nil {
		return fmt.Errorf("unknown TLS 1.3 cipher suite %#04x", st.CipherSuite)
	}
	hc := unsafe.Add(unsafe.Pointer(conn), outOffset)
	mu := (*sync.Mutex)(hc)
	mu.Lock()
	defer mu.Unlock()

	var req byte
	if requestUpdate {
		req = 1
	}
	msg := []byte{24, 0, 0, 1, req} // HandshakeType key_update(24), length 1
	if _, err := tlsWriteRecordLocked(conn, recordTypeHandshake, msg); err != nil {
		return fmt.Errorf("writing KeyUpdate: %w", err)
	}
	secret := *(*[]byte)(unsafe.Add(hc, secretOff))
	next := tlsNextTrafficSecret(suite, secret)
	tlsSetTrafficSecret(hc, suite, tls.QUICEncryptionLevelInitial, next)
	return nil
}
