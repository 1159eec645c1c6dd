// Command echload is a load generator for TLS 1.3 servers: many goroutines
// each repeat connect, full handshake (offering Encrypted Client Hello, RFC
// 9849, when given a config list), one request, read the answer, close, for
// a fixed time; it prints one JSON object with the handshakes per second and
// the latency percentiles.
//
// It is written in Go so that it is not the bottleneck: a Go client
// handshake costs a fraction of a millisecond of CPU, where the servers it
// measures (ech serve, Python's ssl module on asyncio) spend milliseconds.
// Its own CPU time is reported (cpu_ms_per_handshake) so a reader can see
// what share of the machine it took.
//
// Usage:
//
//	echload -connect 127.0.0.1:8443 -sni secret.example -ca ca.pem
//	        [-ech-config-list B64] [-c 32] [-d 5s] [-warmup 1s]
//	        [-request "GET / ..."] [-echo]
//
// Every connection uses X25519 only, TLS 1.3 only, no session cache (so
// every handshake is a full one) and ALPN http/1.1, and verifies the
// certificate against -ca. With -ech-config-list each handshake must end
// with ECH accepted (ConnectionState.ECHAccepted) or it counts as an error.
// After the handshake it sends -request (a GET with "Connection: close" by
// default) and reads until the server closes; with -echo it reads back as
// many bytes as it sent instead (for an echo server, which never closes
// first).
//
// A handshake is counted when its connection finished inside the measured
// window (after -warmup, for -d). Latency is from the start of the TCP
// connect to the end of the TLS handshake (handshake_*), and to the last
// byte of the answer (exchange_*).
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	connect    string
	sni        string
	ca         string
	echList    string
	clients    int
	duration   time.Duration
	warmup     time.Duration
	timeout    time.Duration
	request    string
	echo       bool
	insecure   bool
	maxSamples int
}

// sample is one finished connection.
type sample struct {
	handshake time.Duration
	exchange  time.Duration
}

// worker is what one goroutine measured.
type worker struct {
	samples     []sample
	errors      int
	firstErrors []string
}

// report is the JSON printed on stdout.
type report struct {
	GoVersion         string   `json:"go_version"`
	GOMAXPROCS        int      `json:"gomaxprocs"`
	Clients           int      `json:"clients"`
	ECH               bool     `json:"ech"`
	Seconds           float64  `json:"seconds"`
	Handshakes        int      `json:"handshakes"`
	Errors            int      `json:"errors"`
	FirstErrors       []string `json:"first_errors"`
	PerSecond         float64  `json:"per_second"`
	HandshakeP50Ms    float64  `json:"handshake_p50_ms"`
	HandshakeP99Ms    float64  `json:"handshake_p99_ms"`
	ExchangeP50Ms     float64  `json:"exchange_p50_ms"`
	ExchangeP99Ms     float64  `json:"exchange_p99_ms"`
	CPUMsPerHandshake float64  `json:"cpu_ms_per_handshake"`
}

// processCPU returns the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clientConfig builds the TLS configuration every connection shares.
func clientConfig(o *options) (*tls.Config, error) {
	pemData, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("no certificate in %s", o.ca)
	}
	cfg := &tls.Config{
		ServerName:         o.sni,
		RootCAs:            roots,
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: nil, // every handshake a full one
		InsecureSkipVerify: o.insecure,
	}
	if o.echList != "" {
		list, err := base64.StdEncoding.DecodeString(strings.TrimSpace(o.echList))
		if err != nil {
			return nil, fmt.Errorf("-ech-config-list: %w", err)
		}
		cfg.EncryptedClientHelloConfigList = list
	}
	return cfg, nil
}

// once makes one connection: connect, handshake, request, answer, close.
func once(o *options, cfg *tls.Config, request []byte, buf []byte) (sample, error) {
	start := time.Now()
	raw, err := net.DialTimeout("tcp", o.connect, o.timeout)
	if err != nil {
		return sample{}, err
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if err := conn.SetDeadline(start.Add(o.timeout)); err != nil {
		return sample{}, err
	}
	if err := conn.Handshake(); err != nil {
		return sample{}, err
	}
	handshake := time.Since(start)
	if cfg.EncryptedClientHelloConfigList != nil && !conn.ConnectionState().ECHAccepted {
		return sample{}, errors.New("ECH not accepted")
	}
	if _, err := conn.Write(request); err != nil {
		return sample{}, err
	}
	if o.echo {
		if _, err := io.ReadFull(conn, buf[:len(request)]); err != nil {
			return sample{}, err
		}
		if !bytes.Equal(buf[:len(request)], request) {
			return sample{}, errors.New("the echo differs from the request")
		}
	} else {
		n, err := io.CopyBuffer(io.Discard, conn, buf)
		if err != nil {
			return sample{}, err
		}
		if n == 0 {
			return sample{}, errors.New("no answer")
		}
	}
	return sample{handshake: handshake, exchange: time.Since(start)}, nil
}

// run drives the server with o.clients goroutines.
func run(o *options) (*report, error) {
	cfg, err := clientConfig(o)
	if err != nil {
		return nil, err
	}
	request := []byte(strings.ReplaceAll(o.request, "\\r\\n", "\r\n"))
	begin := time.Now()
	measureFrom := begin.Add(o.warmup)
	end := measureFrom.Add(o.duration)
	workers := make([]worker, o.clients)
	var cpuStart time.Duration
	cpuOnce := sync.Once{}
	cpuTimer := time.AfterFunc(o.warmup, func() { cpuOnce.Do(func() { cpuStart = processCPU() }) })
	defer cpuTimer.Stop()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			buf := make([]byte, 64*1024)
			for time.Now().Before(end) {
				s, err := once(o, cfg, request, buf)
				now := time.Now()
				counted := now.After(measureFrom) && !now.After(end)
				if err != nil {
					if counted {
						w.errors++
						if len(w.firstErrors) < 3 {
							w.firstErrors = append(w.firstErrors, err.Error())
						}
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if counted && len(w.samples) < o.maxSamples {
					w.samples = append(w.samples, s)
				}
			}
		}(&workers[i])
	}
	wg.Wait()
	cpuOnce.Do(func() { cpuStart = processCPU() })
	cpu := processCPU() - cpuStart
	rep := &report{
		GoVersion:   runtime.Version(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		Clients:     o.clients,
		ECH:         cfg.EncryptedClientHelloConfigList != nil,
		Seconds:     o.duration.Seconds(),
		FirstErrors: []string{},
	}
	var handshakes, exchanges []time.Duration
	for _, w := range workers {
		rep.Errors += w.errors
		for _, e := range w.firstErrors {
			if len(rep.FirstErrors) < 5 {
				rep.FirstErrors = append(rep.FirstErrors, e)
			}
		}
		for _, s := range w.samples {
			handshakes = append(handshakes, s.handshake)
			exchanges = append(exchanges, s.exchange)
		}
	}
	rep.Handshakes = len(handshakes)
	rep.PerSecond = float64(rep.Handshakes) / o.duration.Seconds()
	rep.HandshakeP50Ms, rep.HandshakeP99Ms = percentiles(handshakes)
	rep.ExchangeP50Ms, rep.ExchangeP99Ms = percentiles(exchanges)
	if rep.Handshakes > 0 {
		rep.CPUMsPerHandshake = float64(cpu.Microseconds()) / 1000 / float64(rep.Handshakes)
	}
	return rep, nil
}

// percentiles returns the 50th and 99th percentiles in milliseconds
// (nearest rank), or zeros without samples.
func percentiles(values []time.Duration) (p50, p99 float64) {
	if len(values) == 0 {
		return 0, 0
	}
	slices.Sort(values)
	rank := func(q float64) float64 {
		i := int(q*float64(len(values))+0.999999) - 1
		i = max(0, min(i, len(values)-1))
		return float64(values[i].Microseconds()) / 1000
	}
	return rank(0.50), rank(0.99)
}

func main() {
	o := &options{}
	flag.StringVar(&o.connect, "connect", "", "HOST:PORT of the server")
	flag.StringVar(&o.sni, "sni", "", "server name (the inner one with ECH)")
	flag.StringVar(&o.ca, "ca", "", "PEM file of the CA to trust")
	flag.StringVar(&o.echList, "ech-config-list", "", "base64 ECHConfigList: offer ECH, require acceptance")
	flag.IntVar(&o.clients, "c", 32, "concurrent connections")
	flag.DurationVar(&o.duration, "d", 5*time.Second, "measured time")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time first")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-connection deadline")
	flag.StringVar(&o.request, "request", `GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, `what to send after the handshake ("\r\n" allowed)`)
	flag.BoolVar(&o.echo, "echo", false, "read back the request (an echo server) instead of reading to the end")
	flag.BoolVar(&o.insecure, "insecure", false, "skip certificate verification (a cheaper client)")
	flag.IntVar(&o.maxSamples, "max-samples", 1_000_000, "latency samples kept per goroutine")
	flag.Parse()
	if o.connect == "" || o.sni == "" || o.ca == "" || o.clients < 1 || o.duration <= 0 || o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "echload: -connect, -sni and -ca are required; -c and -d must be positive")
		os.Exit(2)
	}
	rep, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echload:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "echload:", err)
		os.Exit(1)
	}
}
