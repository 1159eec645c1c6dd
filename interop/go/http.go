package main

// HTTP mode of tlspeer server (-http): Go's net/http over the same TLS and
// ECH configuration, HTTP/2 or HTTP/1.1 as ALPN chose, so HTTP clients (our
// httpx transport) can be tested against Go's ECH server. Every connection's
// handshake is still reported as a {"event":"handshake",...} line, so tests
// can count connections (pooling) and read Go's view of ECH.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// handshakeListener completes each TLS handshake itself and reports it,
// then hands the connection to net/http (whose own Handshake is a no-op).
type handshakeListener struct {
	net.Listener
	cfg *tls.Config
}

func (l handshakeListener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		conn := tls.Server(raw, l.cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = conn.HandshakeContext(ctx)
		cancel()
		remote := raw.RemoteAddr().String()
		if err != nil {
			emitJSON(map[string]any{"event": "error", "stage": "handshake", "error": err.Error(), "remote": remote})
			conn.Close()
			continue
		}
		info := describe("handshake", conn.ConnectionState())
		info.Remote = remote
		emitJSON(info)
		return conn, nil
	}
}

// serveHTTP answers every request with Go's view of the connection as JSON.
func serveHTTP(ln net.Listener, cfg *tls.Config) error {
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := r.TLS
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"ech_accepted": st.ECHAccepted,
			"server_name":  st.ServerName,
			"alpn":         st.NegotiatedProtocol,
			"proto":        r.Proto,
			"host":         r.Host,
		})
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	return srv.Serve(handshakeListener{ln, cfg})
}
