// Command tlspeer is a small crypto/tls (TLS 1.3 only) peer used to test the
// pure-Python `ech` implementation for interoperability.
//
// Usage:
//
//	tlspeer server -listen 127.0.0.1:0 -cert C.pem -key K.pem [-cert ... -key ...]
//	               [-curves LIST] [-alpn LIST] [-ciphers LIST] [-tickets=BOOL] [-keyupdate]
//	               [-ech-key ECH.pem ...] [-ech-key-no-retry ECH.pem ...]
//	               [-client-ca CA.pem [-client-auth require|request]] [-http] [-quiet]
//	tlspeer client -connect HOST:PORT -sni NAME -ca CA.pem [-curves LIST] [-alpn LIST]
//	               [-send-bytes N] [-resume] [-keyupdate] [-timeout DUR]
//	               [-ech-config-list B64 [-ech-retry]] [-client-cert C.pem -client-key K.pem]
//	tlspeer quic-server ... / tlspeer quic-client ...  (QUIC-TLS over stdin/stdout, see quic.go)
//
// Both subcommands print one JSON object per line on stdout (see connInfo).
// The server first prints "LISTENING host:port".
//
// ECH (RFC 9849): -ech-key and -ech-key-no-retry take RFC 9934 key files
// (PKCS#8 PRIVATE KEY + ECHCONFIG blocks; DHKEM or draft-ietf-hpke-pq KEMs,
// see parseECHPrivateKey); the configs of -ech-key files are
// also sent as retry_configs. With -ech-config-list the client offers ECH;
// when the server rejects it the client prints
// {"event":"ech_rejected","connection":N,"retry_configs":"<b64>"} and, with
// -ech-retry and a non-empty list, reconnects once with those configs;
// otherwise it exits with status 3.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// stdoutMu serialises writes of whole lines to stdout.
var stdoutMu sync.Mutex

func emitLine(s string) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	os.Stdout.WriteString(s + "\n") // os.Stdout is unbuffered
}

func emitJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fatalf("json: %v", err)
	}
	emitLine(string(b))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tlspeer: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlspeer server|client|quic-server|quic-client [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	case "quic-server":
		err = runQUICServer(os.Args[2:])
	case "quic-client":
		err = runQUICClient(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "tlspeer: unknown subcommand %q (want server, client, quic-server or quic-client)\n", os.Args[1])
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	var exit *exitError
	if errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "tlspeer: %v\n", err)
		os.Exit(exit.code)
	}
	if err != nil {
		fatalf("%v", err)
	}
}

// ---------------------------------------------------------------------------
// Shared option parsing

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// curveNames maps accepted -curves spellings (case-insensitive) to CurveIDs.
var curveNames = map[string]tls.CurveID{
	"x25519mlkem768":     tls.X25519MLKEM768,
	"secp256r1mlkem768":  tls.SecP256r1MLKEM768,
	"secp384r1mlkem1024": tls.SecP384r1MLKEM1024,
	"mlkem1024":          tls.MLKEM1024,
	"x25519":             tls.X25519,
	"p256":               tls.CurveP256,
	"p-256":              tls.CurveP256,
	"secp256r1":          tls.CurveP256,
	"curvep256":          tls.CurveP256,
	"p384":               tls.CurveP384,
	"p-384":              tls.CurveP384,
	"secp384r1":          tls.CurveP384,
	"curvep384":          tls.CurveP384,
	"p521":               tls.CurveP521,
	"p-521":              tls.CurveP521,
	"secp521r1":          tls.CurveP521,
	"curvep521":          tls.CurveP521,
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseCurves parses a comma-separated list of group names. Empty means Go's
// defaults. Note that crypto/tls ignores the order (it uses a fixed internal
// preference order).
func parseCurves(s string) ([]tls.CurveID, error) {
	var out []tls.CurveID
	for _, name := range splitList(s) {
		id, ok := curveNames[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("unknown curve %q", name)
		}
		out = append(out, id)
	}
	return out, nil
}

// tlsOptions are the options common to client and server. The ECH flags
// are role-specific (serverOptions, clientOptions).
type tlsOptions struct {
	curves    string
	alpn      string
	ciphers   string
	keyUpdate bool
}

func (o *tlsOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.curves, "curves", "", "comma-separated key exchange groups, e.g. X25519MLKEM768,X25519,P256,P384 (default: Go defaults)")
	fs.StringVar(&o.alpn, "alpn", "", "comma-separated ALPN protocols, e.g. h2,http/1.1")
	fs.StringVar(&o.ciphers, "ciphers", "", "accepted for compatibility; ignored (TLS 1.3 suites are not configurable in crypto/tls)")
	fs.BoolVar(&o.keyUpdate, "keyupdate", false, "after the handshake send a KeyUpdate(update_requested) (needs build tag tlspeer_keyupdate)")
}

// apply fills the shared fields of cfg.
func (o *tlsOptions) apply(cfg *tls.Config) error {
	curves, err := parseCurves(o.curves)
	if err != nil {
		return err
	}
	cfg.MinVersion = tls.VersionTLS13
	cfg.MaxVersion = tls.VersionTLS13
	cfg.CurvePreferences = curves
	cfg.NextProtos = splitList(o.alpn)
	if o.keyUpdate && !keyUpdateSupported {
		return sendKeyUpdate(nil, true) // returns the explanatory error
	}
	return nil
}

// connInfo is the JSON line printed for each connection.
type connInfo struct {
	Event       string `json:"event"`
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	Group       string `json:"group"`
	GroupID     uint16 `json:"group_id"`
	ALPN        string `json:"alpn"`
	ServerName  string `json:"server_name"`
	Resumed     bool   `json:"resumed"`
	HRR         bool   `json:"hrr"`
	ECHAccepted bool   `json:"ech_accepted"`
	Remote      string `json:"remote,omitempty"`
	// Client-only fields.
	Connection int   `json:"connection,omitempty"`
	EchoOK     *bool `json:"echo_ok,omitempty"`
	Bytes      *int  `json:"bytes,omitempty"`
	KeyUpdate  bool  `json:"key_update_sent,omitempty"`
	// ECHRetried: this connection used the server's retry_configs.
	ECHRetried bool `json:"ech_retried,omitempty"`
	// PeerSubject: the subject of the peer's leaf certificate (the server
	// reports the client's when it asked for one).
	PeerSubject string `json:"peer_subject,omitempty"`
}

// groupName returns a stable name for a key exchange group.
func groupName(id tls.CurveID) string {
	switch id {
	case tls.CurveP256:
		return "P256"
	case tls.CurveP384:
		return "P384"
	case tls.CurveP521:
		return "P521"
	case 0:
		return ""
	}
	return id.String() // X25519, X25519MLKEM768, SecP256r1MLKEM768, ...
}

func describe(event string, st tls.ConnectionState) connInfo {
	subject := ""
	if len(st.PeerCertificates) > 0 {
		subject = st.PeerCertificates[0].Subject.String()
	}
	return connInfo{
		PeerSubject: subject,
		Event:       event,
		Version:     tls.VersionName(st.Version),
		CipherSuite: tls.CipherSuiteName(st.CipherSuite),
		Group:       groupName(st.CurveID),
		GroupID:     uint16(st.CurveID),
		ALPN:        st.NegotiatedProtocol,
		ServerName:  st.ServerName,
		Resumed:     st.DidResume,
		HRR:         st.HelloRetryRequest,
		ECHAccepted: st.ECHAccepted,
	}
}

// ---------------------------------------------------------------------------
// Server

type serverOptions struct {
	tlsOptions
	listen       string
	certs        stringList
	keys         stringList
	tickets      bool
	echKeys      stringList
	echKeysQuiet stringList
	clientCA     string
	clientAuth   string
	http         bool
	quiet        bool
}

func buildServerConfig(o *serverOptions) (*tls.Config, error) {
	if len(o.certs) == 0 || len(o.certs) != len(o.keys) {
		return nil, errors.New("need at least one -cert and exactly one -key per -cert")
	}
	cfg := &tls.Config{}
	if err := o.tlsOptions.apply(cfg); err != nil {
		return nil, err
	}
	for i := range o.certs {
		pair, err := tls.LoadX509KeyPair(o.certs[i], o.keys[i])
		if err != nil {
			return nil, fmt.Errorf("loading %s / %s: %w", o.certs[i], o.keys[i], err)
		}
		// pair.Leaf is populated (Go >= 1.23), so with several certificates
		// crypto/tls selects by SNI via SupportsCertificate, falling back to
		// the first one.
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	cfg.SessionTicketsDisabled = !o.tickets
	echKeys, err := loadECHKeys(o.echKeys, o.echKeysQuiet)
	if err != nil {
		return nil, err
	}
	cfg.EncryptedClientHelloKeys = echKeys
	if o.clientCA != "" {
		pool, err := loadPool(o.clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		switch o.clientAuth {
		case "require":
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		case "request":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		default:
			return nil, fmt.Errorf("-client-auth must be require or request, not %q", o.clientAuth)
		}
	}
	return cfg, nil
}

// loadPool reads PEM CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	pemData, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("no certificates found in %s", path)
	}
	return pool, nil
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("tlspeer server", flag.ContinueOnError)
	o := &serverOptions{}
	o.register(fs)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to listen on")
	fs.Var(&o.certs, "cert", "PEM certificate chain (repeatable; pair with -key)")
	fs.Var(&o.keys, "key", "PEM private key (repeatable; pair with -cert)")
	fs.BoolVar(&o.tickets, "tickets", true, "issue session tickets (enables resumption)")
	fs.Var(&o.echKeys, "ech-key", "RFC 9934 ECH key file; its configs are accepted and sent as retry_configs (repeatable)")
	fs.Var(&o.echKeysQuiet, "ech-key-no-retry", "RFC 9934 ECH key file; accepted but not sent as retry_configs (repeatable)")
	fs.StringVar(&o.clientCA, "client-ca", "", "PEM CA certificates for client certificates (asks for one)")
	fs.StringVar(&o.clientAuth, "client-auth", "require", "with -client-ca: require or request a client certificate")
	fs.BoolVar(&o.http, "http", false, "serve HTTP (net/http, h2 or http/1.1 by ALPN) instead of echoing; see http.go")
	fs.BoolVar(&o.quiet, "quiet", false, "print no line per echoed connection (load tests)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := buildServerConfig(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	emitLine("LISTENING " + ln.Addr().String())
	if o.http {
		return serveHTTP(ln, cfg)
	}
	for {
		raw, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveConn(tls.Server(raw, cfg), o)
	}
}

func serveConn(conn *tls.Conn, o *serverOptions) {
	defer conn.Close()
	remote := conn.RemoteAddr().String()
	fail := func(stage string, err error) {
		if !o.quiet {
			emitJSON(map[string]any{"event": "error", "stage": stage, "error": err.Error(), "remote": remote})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		fail("handshake", err)
		return
	}
	if !o.quiet {
		info := describe("handshake", conn.ConnectionState())
		info.Remote = remote
		emitJSON(info)
	}
	if o.keyUpdate {
		if err := sendKeyUpdate(conn, true); err != nil {
			fail("keyupdate", err)
			return
		}
	}
	n, err := io.Copy(conn, conn)
	if o.quiet {
		return
	}
	ev := map[string]any{"event": "closed", "bytes": n, "remote": remote}
	if err != nil {
		ev["error"] = err.Error()
	}
	emitJSON(ev)
}

// ---------------------------------------------------------------------------
// Client

type clientOptions struct {
	tlsOptions
	connect   string
	sni       string
	ca        string
	sendBytes int
	resume    bool
	timeout   time.Duration
	echList   string
	echRetry  bool
	certFile  string
	keyFile   string
}

func buildClientConfig(o *clientOptions) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: o.sni}
	if err := o.tlsOptions.apply(cfg); err != nil {
		return nil, err
	}
	pemData, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("no certificates found in %s", o.ca)
	}
	cfg.RootCAs = pool
	if o.certFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading %s / %s: %w", o.certFile, o.keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	}
	if o.echList != "" {
		if cfg.EncryptedClientHelloConfigList, err = decodeConfigList(o.echList); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// pattern returns n deterministic pseudo-random bytes (xorshift32).
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(0x9e3779b9)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// clientOnce performs one connection: handshake, optional KeyUpdate, send
// the pattern while concurrently reading the echo, then close_notify and read
// to EOF (expecting nothing more).
// Reading also processes the server's post-handshake NewSessionTickets.
func clientOnce(o *clientOptions, cfg *tls.Config, index int) (connInfo, error) {
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: o.timeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	nc, err := dialer.DialContext(ctx, "tcp", o.connect)
	if err != nil {
		return connInfo{}, fmt.Errorf("connection %d: %w", index, err)
	}
	conn := nc.(*tls.Conn)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(o.timeout)); err != nil {
		return connInfo{}, err
	}
	info := describe("result", conn.ConnectionState())
	info.Connection = index
	if o.keyUpdate {
		if err := sendKeyUpdate(conn, true); err != nil {
			return info, fmt.Errorf("connection %d: keyupdate: %w", index, err)
		}
		info.KeyUpdate = true
	}
	// Send while concurrently reading the echo (large N would otherwise
	// deadlock on TCP buffers). close_notify is sent only after the whole
	// echo has been read: crypto/tls drops a pending KeyUpdate response
	// after CloseWrite and then fails to install the new read key.
	data := pattern(o.sendBytes)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	_, rerr := io.ReadFull(conn, got)
	if err := <-werr; err != nil {
		return info, fmt.Errorf("connection %d: write: %w", index, err)
	}
	if rerr != nil {
		return info, fmt.Errorf("connection %d: read: %w", index, rerr)
	}
	if err := conn.CloseWrite(); err != nil {
		return info, fmt.Errorf("connection %d: close_notify: %w", index, err)
	}
	extra, err := io.ReadAll(conn)
	if err != nil {
		return info, fmt.Errorf("connection %d: reading to EOF: %w", index, err)
	}
	got = append(got, extra...)
	ok := bytes.Equal(got, data)
	n := len(got)
	info.EchoOK, info.Bytes = &ok, &n
	if !ok {
		return info, fmt.Errorf("connection %d: echo mismatch: sent %d bytes, got %d", index, len(data), len(got))
	}
	return info, nil
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("tlspeer client", flag.ContinueOnError)
	o := &clientOptions{}
	o.register(fs)
	fs.StringVar(&o.connect, "connect", "", "host:port to connect to")
	fs.StringVar(&o.sni, "sni", "", "server name (SNI and certificate verification)")
	fs.StringVar(&o.ca, "ca", "", "PEM file with trusted root certificate(s)")
	fs.IntVar(&o.sendBytes, "send-bytes", 1024, "number of bytes to send and expect echoed")
	fs.BoolVar(&o.resume, "resume", false, "connect twice; the second connection must resume")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-connection timeout")
	fs.StringVar(&o.echList, "ech-config-list", "", "offer ECH with this base64 ECHConfigList (with its 2-byte length)")
	fs.BoolVar(&o.echRetry, "ech-retry", false, "on ECH rejection, reconnect once with the server's retry_configs")
	fs.StringVar(&o.certFile, "client-cert", "", "PEM client certificate chain, sent when the server asks")
	fs.StringVar(&o.keyFile, "client-key", "", "PEM private key of -client-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.connect == "" || o.sni == "" || o.ca == "" {
		return errors.New("client needs -connect, -sni and -ca")
	}
	if o.sendBytes < 0 {
		return errors.New("-send-bytes must be >= 0")
	}
	if o.echRetry && o.echList == "" {
		return errors.New("-ech-retry needs -ech-config-list")
	}
	cfg, err := buildClientConfig(o)
	if err != nil {
		return err
	}
	rounds := 1
	if o.resume {
		rounds = 2
	}
	for i := 1; i <= rounds; i++ {
		info, err := clientWithECHRetry(o, cfg, i)
		if err != nil {
			return err
		}
		emitJSON(info)
		if o.resume && i == 2 && !info.Resumed {
			return errors.New("second connection did not resume")
		}
	}
	return nil
}

// clientWithECHRetry runs clientOnce and handles an ECH rejection: it prints
// an "ech_rejected" line and, with -ech-retry and a non-empty
// RetryConfigList, reconnects once with that list (RFC 9849 §6.1.6). A
// rejection that is not retried is an exitError with exitECHRejected. On a
// successful retry cfg keeps the new list, so a -resume round uses it too.
func clientWithECHRetry(o *clientOptions, cfg *tls.Config, index int) (connInfo, error) {
	info, err := clientOnce(o, cfg, index)
	var rejection *tls.ECHRejectionError
	if !errors.As(err, &rejection) {
		return info, err
	}
	reportRejection(index, rejection)
	if !o.echRetry || len(rejection.RetryConfigList) == 0 {
		return info, &exitError{exitECHRejected, err}
	}
	cfg.EncryptedClientHelloConfigList = rejection.RetryConfigList
	info, err = clientOnce(o, cfg, index)
	info.ECHRetried = true
	if errors.As(err, &rejection) {
		reportRejection(index, rejection)
		return info, &exitError{exitECHRejected, fmt.Errorf("retry: %w", err)}
	}
	return info, err
}
