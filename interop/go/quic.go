package main

// QUIC-TLS (RFC 9001) for tlspeer: the quic-client and quic-server
// subcommands drive crypto/tls's QUICConn (tls.QUICClient / tls.QUICServer)
// for a test on the other end of stdin/stdout. The standard library has no
// QUIC packets, so the exchange is what QUIC carries for TLS: the CRYPTO
// stream bytes of each encryption level, the traffic secrets and the
// transport parameters (RFC 9001 §4, §5, §8.2).
//
// Usage:
//
//	tlspeer quic-server -cert C.pem -key K.pem [-cert ... -key ...] -alpn LIST
//	                    [-curves LIST] [-ech-key ECH.pem ...] [-ech-key-no-retry ECH.pem ...]
//	                    [-transport-params HEX] [-tickets=BOOL] [-timeout DUR]
//	tlspeer quic-client -sni NAME -ca CA.pem -alpn LIST [-curves LIST]
//	                    [-ech-config-list B64] [-transport-params HEX] [-timeout DUR]
//
// The flags mean what they mean for server and client (the ECH key files
// are RFC 9934 files, PQ KEMs included); -alpn is required (RFC 9001 §8.1)
// and -transport-params is our quic_transport_parameters extension body,
// set before Start (RFC 9001 §8.2), empty by default.
//
// # Framing
//
// Both directions carry frames
//
//	kind(1) | level(1) | length(4, big endian) | payload(length)
//
// where level is a tls.QUICEncryptionLevel (0 Initial, 1 Early,
// 2 Handshake, 3 Application) and is 0 where it does not apply.
//
// Test → tlspeer:
//
//	0x01 CRYPTO  CRYPTO stream bytes the test's endpoint sent at level,
//	             passed to QUICConn.HandleData(level, payload).
//	0x05 CLOSE   the test's endpoint closed the connection, as a QUIC
//	             CONNECTION_CLOSE would: payload = error code (8 bytes, big
//	             endian; CRYPTO_ERROR is 0x100 + alert, RFC 9001 §4.8) then
//	             a UTF-8 reason. tlspeer calls QUICConn.Close, reports
//	             "closed" and exits.
//
// End of input also closes the QUICConn and makes tlspeer exit.
//
// tlspeer → test:
//
//	0x01 CRYPTO      a QUICWriteData event: bytes to send at level.
//	0x02 PARAMS      a QUICTransportParameters event: the peer's
//	                 quic_transport_parameters, raw.
//	0x03 REPORT      one JSON object (see below).
//	0x04 IDLE        tlspeer has handled the last frame (or Start) and
//	                 drained QUICConn.NextEvent; it waits for the next one.
//
// Every input frame is answered by zero or more frames and exactly one IDLE,
// and Start by the first IDLE, so the test can run the exchange in lock
// step. The JSON reports, by "event":
//
//	"secret"          {"direction": "read"|"write", "level": N, "suite":
//	                   NAME, "suite_id": N, "secret": HEX}: a
//	                   QUICSetReadSecret / QUICSetWriteSecret event.
//	"handshake_done"  QUICHandshakeDone, with ConnectionState(): "version",
//	                   "cipher_suite", "cipher_suite_id", "group",
//	                   "group_id", "alpn", "server_name", "ech_accepted",
//	                   "hrr", "resumed", "peer_transport_parameters" (hex).
//	"session_ticket"  the client stored a NewSessionTicket (QUICStoreSession;
//	                   "early_data" per RFC 9001 §4.6.1).
//	"ticket_sent"     the server called SendSessionTicket after the handshake.
//	"error"           a QUICErrorEvent or a HandleData error: "error" (text),
//	                   "alert" and "alert_name" (the tls.AlertError it
//	                   wraps), "quic_error_code" (0x100 + alert), and for
//	                   a tls.ECHRejectionError "ech_rejected": true and
//	                   "retry_configs" (base64 RetryConfigList, "" if none).
//	                   Later CRYPTO frames are ignored.
//	"closed"          after a CLOSE frame: "error_code", "reason",
//	                   "handshake_complete".
//	"event"           any other QUICConn event: "kind" (its number).

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Frame kinds of the stdin/stdout protocol (see the comment above).
const (
	quicFrameCrypto = 0x01
	quicFrameParams = 0x02
	quicFrameReport = 0x03
	quicFrameIdle   = 0x04
	quicFrameClose  = 0x05
)

// maxQUICFrame bounds a frame's payload (a certificate chain fits easily).
const maxQUICFrame = 1 << 24

// quicOptions are the flags common to quic-client and quic-server.
type quicOptions struct {
	params  string
	timeout time.Duration
}

func (o *quicOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.params, "transport-params", "", "our quic_transport_parameters extension body, in hex (RFC 9001 §8.2)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "handshake timeout")
}

func (o *quicOptions) transportParameters() ([]byte, error) {
	params, err := hex.DecodeString(o.params)
	if err != nil {
		return nil, fmt.Errorf("-transport-params: %w", err)
	}
	return params, nil
}

func runQUICServer(args []string) error {
	fs := flag.NewFlagSet("tlspeer quic-server", flag.ContinueOnError)
	o := &serverOptions{}
	q := &quicOptions{}
	o.register(fs)
	q.register(fs)
	fs.Var(&o.certs, "cert", "PEM certificate chain (repeatable; pair with -key)")
	fs.Var(&o.keys, "key", "PEM private key (repeatable; pair with -cert)")
	fs.BoolVar(&o.tickets, "tickets", true, "send a NewSessionTicket after the handshake (QUICConn.SendSessionTicket)")
	fs.Var(&o.echKeys, "ech-key", "RFC 9934 ECH key file; its configs are accepted and sent as retry_configs (repeatable)")
	fs.Var(&o.echKeysQuiet, "ech-key-no-retry", "RFC 9934 ECH key file; accepted but not sent as retry_configs (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.alpn == "" {
		return errors.New("quic-server needs -alpn (RFC 9001 §8.1)")
	}
	cfg, err := buildServerConfig(o)
	if err != nil {
		return err
	}
	params, err := q.transportParameters()
	if err != nil {
		return err
	}
	conn := tls.QUICServer(&tls.QUICConfig{TLSConfig: cfg})
	return (&quicSession{conn: conn, server: true, tickets: o.tickets}).run(params, q.timeout)
}

func runQUICClient(args []string) error {
	fs := flag.NewFlagSet("tlspeer quic-client", flag.ContinueOnError)
	o := &clientOptions{}
	q := &quicOptions{}
	o.register(fs)
	q.register(fs)
	fs.StringVar(&o.sni, "sni", "", "server name (SNI and certificate verification)")
	fs.StringVar(&o.ca, "ca", "", "PEM file with trusted root certificate(s)")
	fs.StringVar(&o.echList, "ech-config-list", "", "offer ECH with this base64 ECHConfigList (with its 2-byte length)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.sni == "" || o.ca == "" || o.alpn == "" {
		return errors.New("quic-client needs -sni, -ca and -alpn (RFC 9001 §8.1)")
	}
	cfg, err := buildClientConfig(o)
	if err != nil {
		return err
	}
	// A cache makes crypto/tls parse NewSessionTicket (RFC 9001 §4.6.1);
	// with session events it hands them to us instead of storing them.
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	params, err := q.transportParameters()
	if err != nil {
		return err
	}
	conn := tls.QUICClient(&tls.QUICConfig{TLSConfig: cfg, EnableSessionEvents: true})
	return (&quicSession{conn: conn}).run(params, q.timeout)
}

// quicSession runs one QUICConn against the frames on stdin.
type quicSession struct {
	conn    *tls.QUICConn
	server  bool
	tickets bool
	out     *bufio.Writer
	// peerParams is the peer's quic_transport_parameters, once received.
	peerParams []byte
	done       bool
	failed     bool
}

func (s *quicSession) run(params []byte, timeout time.Duration) error {
	in := bufio.NewReader(os.Stdin)
	s.out = bufio.NewWriter(os.Stdout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.conn.SetTransportParameters(params)
	startErr := s.conn.Start(ctx)
	if !s.drain() && startErr != nil {
		s.reportError(startErr)
	}
	if err := s.idle(); err != nil {
		return err
	}
	for {
		kind, level, payload, err := readQUICFrame(in)
		if errors.Is(err, io.EOF) {
			s.conn.Close()
			return nil
		}
		if err != nil {
			return err
		}
		switch kind {
		case quicFrameCrypto:
			if !s.failed {
				dataErr := s.conn.HandleData(tls.QUICEncryptionLevel(level), payload)
				if !s.drain() && dataErr != nil {
					s.reportError(dataErr)
				}
			}
		case quicFrameClose:
			if len(payload) < 8 {
				return errors.New("CLOSE frame shorter than its error code")
			}
			s.conn.Close()
			s.report(map[string]any{
				"event":              "closed",
				"error_code":         binary.BigEndian.Uint64(payload),
				"reason":             string(payload[8:]),
				"handshake_complete": s.done,
			})
			return s.idle()
		default:
			return fmt.Errorf("unknown frame kind 0x%02x", kind)
		}
		if err := s.idle(); err != nil {
			return err
		}
	}
}

// drain passes on every pending QUICConn event; it tells whether one of
// them was a QUICErrorEvent (already reported).
func (s *quicSession) drain() (sawError bool) {
	for {
		e := s.conn.NextEvent()
		switch e.Kind {
		case tls.QUICNoEvent:
			return sawError
		case tls.QUICSetReadSecret, tls.QUICSetWriteSecret:
			direction := "read"
			if e.Kind == tls.QUICSetWriteSecret {
				direction = "write"
			}
			s.report(map[string]any{
				"event":     "secret",
				"direction": direction,
				"level":     int(e.Level),
				"suite":     tls.CipherSuiteName(e.Suite),
				"suite_id":  e.Suite,
				"secret":    hex.EncodeToString(e.Data),
			})
		case tls.QUICWriteData:
			// e.Data is valid until the next NextEvent: writeFrame copies it.
			s.writeFrame(quicFrameCrypto, byte(e.Level), e.Data)
		case tls.QUICTransportParameters:
			s.peerParams = append([]byte{}, e.Data...)
			s.writeFrame(quicFrameParams, 0, e.Data)
		case tls.QUICHandshakeDone:
			s.done = true
			s.report(s.handshakeReport())
			if s.server && s.tickets {
				if err := s.conn.SendSessionTicket(tls.QUICSessionTicketOptions{}); err != nil {
					s.reportError(err)
				} else {
					s.report(map[string]any{"event": "ticket_sent"})
				}
			}
		case tls.QUICStoreSession:
			s.report(map[string]any{"event": "session_ticket", "early_data": e.SessionState.EarlyData})
		case tls.QUICErrorEvent:
			s.reportError(e.Err)
			sawError = true
		default:
			s.report(map[string]any{"event": "event", "kind": int(e.Kind)})
		}
	}
}

func (s *quicSession) handshakeReport() map[string]any {
	st := s.conn.ConnectionState()
	return map[string]any{
		"event":                     "handshake_done",
		"version":                   tls.VersionName(st.Version),
		"cipher_suite":              tls.CipherSuiteName(st.CipherSuite),
		"cipher_suite_id":           st.CipherSuite,
		"group":                     groupName(st.CurveID),
		"group_id":                  uint16(st.CurveID),
		"alpn":                      st.NegotiatedProtocol,
		"server_name":               st.ServerName,
		"ech_accepted":              st.ECHAccepted,
		"hrr":                       st.HelloRetryRequest,
		"resumed":                   st.DidResume,
		"peer_transport_parameters": hex.EncodeToString(s.peerParams),
	}
}

// reportError reports a QUICConn error with the alert it wraps (crypto/tls
// hands QUIC the alert instead of sending it, RFC 9001 §4.8).
func (s *quicSession) reportError(err error) {
	s.failed = true
	r := map[string]any{"event": "error", "error": err.Error()}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		r["alert"] = int(alert)
		r["alert_name"] = alert.Error()
		r["quic_error_code"] = 0x100 + int(alert)
	}
	var rejection *tls.ECHRejectionError
	if errors.As(err, &rejection) {
		r["ech_rejected"] = true
		r["retry_configs"] = base64.StdEncoding.EncodeToString(rejection.RetryConfigList)
	}
	s.report(r)
}

func (s *quicSession) report(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		fatalf("json: %v", err)
	}
	s.writeFrame(quicFrameReport, 0, b)
}

func (s *quicSession) idle() error {
	s.writeFrame(quicFrameIdle, 0, nil)
	return s.out.Flush()
}

func (s *quicSession) writeFrame(kind, level byte, payload []byte) {
	var header [6]byte
	header[0], header[1] = kind, level
	binary.BigEndian.PutUint32(header[2:], uint32(len(payload)))
	s.out.Write(header[:])
	s.out.Write(payload)
}

func readQUICFrame(in *bufio.Reader) (kind, level byte, payload []byte, err error) {
	var header [6]byte
	if _, err = io.ReadFull(in, header[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("truncated frame header")
		}
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(header[2:])
	if n > maxQUICFrame {
		return 0, 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(in, payload); err != nil {
		return 0, 0, nil, fmt.Errorf("truncated frame: %w", err)
	}
	return header[0], header[1], payload, nil
}
