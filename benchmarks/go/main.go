// Command echbench times in-memory TLS 1.3 handshakes with Encrypted Client
// Hello (RFC 9849) between Go's crypto/tls client and server, and prints one
// JSON object with the per-handshake CPU time of each side.
//
// Both sides run in this process over net.Pipe: X25519 key exchange only, an
// ECDSA P-256 leaf for the inner name (secret.example) and one for the
// public name (public.example) issued by a P-256 CA the client trusts, an
// X25519 / HKDF-SHA256 / AES-128-GCM ECH config built here, TLS 1.3 only and
// no session tickets. Each side is a long-lived goroutine pinned to its own OS
// thread (runtime.LockOSThread); the thread CPU clock
// (CLOCK_THREAD_CPUTIME_ID) read around tls.Client/Server + Handshake gives
// that side's CPU. Work the runtime does on those threads for others (GC
// assists, scheduling) leaks in, and GC work on other threads leaks out; the
// process CPU total (getrusage) is reported for comparison. Linux only.
package main

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

const (
	publicName = "public.example"
	secretName = "secret.example"

	echVersion      = 0xfe0d
	kemX25519       = 0x0020 // DHKEM(X25519, HKDF-SHA256)
	kdfHKDFSHA256   = 0x0001
	aeadAES128GCM   = 0x0001
	clockThreadCPU  = 3 // CLOCK_THREAD_CPUTIME_ID
	echConfigIDByte = 0x2a
)

// threadCPU returns the CPU time consumed by the calling OS thread, in ns.
func threadCPU() int64 {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPU, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(fmt.Sprintf("clock_gettime(CLOCK_THREAD_CPUTIME_ID): %v", errno))
	}
	return ts.Nano()
}

// processCPU returns the user+system CPU time of the whole process, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// u16 appends a big-endian uint16.
func u16(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }

// marshalECHConfig serializes an ECHConfig (RFC 9849 §4) for an X25519 HPKE
// public key with the single suite HKDF-SHA256 / AES-128-GCM.
func marshalECHConfig(configID byte, publicKey []byte, name string) []byte {
	var c []byte
	c = append(c, configID)
	c = u16(c, kemX25519)
	c = u16(c, len(publicKey))
	c = append(c, publicKey...)
	c = u16(c, 4) // cipher_suites<4..2^16-4>
	c = u16(c, kdfHKDFSHA256)
	c = u16(c, aeadAES128GCM)
	c = append(c, 0) // maximum_name_length
	c = append(c, byte(len(name)))
	c = append(c, name...)
	c = u16(c, 0) // extensions
	out := u16(nil, echVersion)
	out = u16(out, len(c))
	return append(out, c...)
}

// issue makes a P-256 certificate signed by parent (self-signed if nil).
func issue(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.DNSNames = []string{name}
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert, nil
}

// configs builds the client and server configurations.
func configs() (client, server *tls.Config, err error) {
	caPair, caCert, err := issue("echbench CA", nil, nil)
	if err != nil {
		return nil, nil, err
	}
	caKey := caPair.PrivateKey.(*ecdsa.PrivateKey)
	public, _, err := issue(publicName, caCert, caKey)
	if err != nil {
		return nil, nil, err
	}
	secret, _, err := issue(secretName, caCert, caKey)
	if err != nil {
		return nil, nil, err
	}
	echKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	echConfig := marshalECHConfig(echConfigIDByte, echKey.PublicKey().Bytes(), publicName)
	configList := u16(nil, len(echConfig))
	configList = append(configList, echConfig...)

	curves := []tls.CurveID{tls.X25519}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	server = &tls.Config{
		Certificates:           []tls.Certificate{public, secret},
		CurvePreferences:       curves,
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
		EncryptedClientHelloKeys: []tls.EncryptedClientHelloKey{{
			Config:      echConfig,
			PrivateKey:  echKey.Bytes(),
			SendAsRetry: true,
		}},
	}
	client = &tls.Config{
		RootCAs:                        roots,
		ServerName:                     secretName,
		CurvePreferences:               curves,
		MinVersion:                     tls.VersionTLS13,
		MaxVersion:                     tls.VersionTLS13,
		EncryptedClientHelloConfigList: configList,
	}
	return client, server, nil
}

// sideResult is what one side reports for one handshake.
type sideResult struct {
	cpuNs int64
	state tls.ConnectionState
	err   error
}

// worker runs handshakes for one side on its own locked OS thread.
func worker(conns <-chan net.Conn, results chan<- sideResult, handshake func(net.Conn) (tls.ConnectionState, error)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for conn := range conns {
		start := threadCPU()
		state, err := handshake(conn)
		results <- sideResult{cpuNs: threadCPU() - start, state: state, err: err}
	}
}

// firstFlight counts the bytes a conn writes before it first reads.
type firstFlight struct {
	net.Conn
	written int
	reading bool
}

func (f *firstFlight) Write(b []byte) (int, error) {
	if !f.reading {
		f.written += len(b)
	}
	return f.Conn.Write(b)
}

func (f *firstFlight) Read(b []byte) (int, error) {
	f.reading = true
	return f.Conn.Read(b)
}

// report is the JSON printed on stdout.
type report struct {
	GoVersion         string  `json:"go_version"`
	Count             int     `json:"count"`
	Warmup            int     `json:"warmup"`
	ClientNs          []int64 `json:"client_ns"`
	ServerNs          []int64 `json:"server_ns"`
	WallNs            []int64 `json:"wall_ns"`
	ProcessCPUNs      int64   `json:"process_cpu_ns"`
	NumGC             uint32  `json:"num_gc"`
	GOMAXPROCS        int     `json:"gomaxprocs"`
	CipherSuite       string  `json:"cipher_suite"`
	Curve             string  `json:"curve"`
	ServerName        string  `json:"server_name"`
	ClientHelloBytes  int     `json:"client_hello_bytes"`
	ECHAcceptedClient bool    `json:"ech_accepted_client"`
	ECHAcceptedServer bool    `json:"ech_accepted_server"`
}

func run(count, warmup int) (*report, error) {
	clientCfg, serverCfg, err := configs()
	if err != nil {
		return nil, err
	}
	clientConns, serverConns := make(chan net.Conn), make(chan net.Conn)
	clientResults, serverResults := make(chan sideResult), make(chan sideResult)
	defer close(clientConns)
	defer close(serverConns)
	go worker(clientConns, clientResults, func(c net.Conn) (tls.ConnectionState, error) {
		tc := tls.Client(c, clientCfg)
		err := tc.Handshake()
		return tc.ConnectionState(), err
	})
	go worker(serverConns, serverResults, func(c net.Conn) (tls.ConnectionState, error) {
		tc := tls.Server(c, serverCfg)
		err := tc.Handshake()
		return tc.ConnectionState(), err
	})

	rep := &report{GoVersion: runtime.Version(), Count: count, Warmup: warmup, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	var gcBefore runtime.MemStats
	var cpuBefore int64
	for i := 0; i < warmup+count; i++ {
		if i == warmup {
			runtime.GC()
			runtime.ReadMemStats(&gcBefore)
			cpuBefore = processCPU()
		}
		c, s := net.Pipe()
		var clientConn net.Conn = c
		var flight *firstFlight
		if i == 0 {
			flight = &firstFlight{Conn: c}
			clientConn = flight
		}
		start := time.Now()
		clientConns <- clientConn
		serverConns <- s
		cr, sr := <-clientResults, <-serverResults
		wall := time.Since(start)
		_ = c.Close()
		_ = s.Close()
		if err := errors.Join(cr.err, sr.err); err != nil {
			return nil, fmt.Errorf("handshake %d: %w", i, err)
		}
		if !cr.state.ECHAccepted || !sr.state.ECHAccepted {
			return nil, fmt.Errorf("handshake %d: ECH not accepted (client %v, server %v)", i, cr.state.ECHAccepted, sr.state.ECHAccepted)
		}
		if flight != nil {
			rep.ClientHelloBytes = flight.written
			rep.CipherSuite = tls.CipherSuiteName(cr.state.CipherSuite)
			rep.Curve = cr.state.CurveID.String()
			rep.ServerName = sr.state.ServerName
			rep.ECHAcceptedClient = cr.state.ECHAccepted
			rep.ECHAcceptedServer = sr.state.ECHAccepted
		}
		if i >= warmup {
			rep.ClientNs = append(rep.ClientNs, cr.cpuNs)
			rep.ServerNs = append(rep.ServerNs, sr.cpuNs)
			rep.WallNs = append(rep.WallNs, wall.Nanoseconds())
		}
	}
	rep.ProcessCPUNs = processCPU() - cpuBefore
	var gcAfter runtime.MemStats
	runtime.ReadMemStats(&gcAfter)
	rep.NumGC = gcAfter.NumGC - gcBefore.NumGC
	return rep, nil
}

func main() {
	count := flag.Int("n", 300, "timed handshakes")
	warmup := flag.Int("warmup", 20, "untimed handshakes first")
	flag.Parse()
	if *count < 1 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "echbench: -n must be positive and -warmup not negative")
		os.Exit(2)
	}
	rep, err := run(*count, *warmup)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echbench:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "echbench:", err)
		os.Exit(1)
	}
}
