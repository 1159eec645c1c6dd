package main

// Encrypted Client Hello (RFC 9849) support for tlspeer: loading RFC 9934
// ECH key files for the server and handling ECH rejection on the client.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// exitECHRejected is the client's exit status when the server rejected ECH
// and no retry was made (or the retry was rejected too).
const exitECHRejected = 3

// exitError makes main exit with a specific status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// echVersion is ECHConfig.version for RFC 9849 configs.
const echVersion = 0xfe0d

// hpkeKEMs maps the DHKEM ids Go's ECH server supports to the ecdh curve
// that DeserializePrivateKey (RFC 9180 §7.1.2) expects.
var hpkeKEMs = map[uint16]ecdh.Curve{
	0x0010: ecdh.P256(),
	0x0011: ecdh.P384(),
	0x0012: ecdh.P521(),
	0x0020: ecdh.X25519(),
}

// splitECHConfigList splits a serialized ECHConfigList (with its 2-byte
// length) into the serialized ECHConfigs it holds (RFC 9849 §4).
func splitECHConfigList(list []byte) ([][]byte, error) {
	if len(list) < 2 {
		return nil, errors.New("ECHConfigList too short")
	}
	n := int(binary.BigEndian.Uint16(list))
	body := list[2:]
	if n != len(body) || n < 4 {
		return nil, fmt.Errorf("ECHConfigList length %d does not match its %d bytes", n, len(body))
	}
	var out [][]byte
	for len(body) > 0 {
		if len(body) < 4 {
			return nil, errors.New("truncated ECHConfig header")
		}
		size := 4 + int(binary.BigEndian.Uint16(body[2:]))
		if size > len(body) {
			return nil, errors.New("truncated ECHConfig")
		}
		out = append(out, body[:size:size])
		body = body[size:]
	}
	return out, nil
}

// echConfigKey returns the kem_id and public_key of a version 0xfe0d
// ECHConfig; ok is false for other versions.
func echConfigKey(config []byte) (kemID uint16, publicKey []byte, ok bool, err error) {
	if binary.BigEndian.Uint16(config) != echVersion {
		return 0, nil, false, nil
	}
	// contents: config_id(1) kem_id(2) public_key<1..2^16-1> ...
	c := config[4:]
	if len(c) < 5 {
		return 0, nil, false, errors.New("truncated ECHConfigContents")
	}
	kemID = binary.BigEndian.Uint16(c[1:])
	n := int(binary.BigEndian.Uint16(c[3:]))
	if 5+n > len(c) {
		return 0, nil, false, errors.New("truncated ECHConfig public_key")
	}
	return kemID, c[5 : 5+n], true, nil
}

// loadECHKeyFile reads an RFC 9934 ECH key file: a PKCS#8 "PRIVATE KEY"
// block and an "ECHCONFIG" block holding the base64 ECHConfigList. It
// returns one EncryptedClientHelloKey per config in the list that matches
// the private key (other versions are skipped; a config with a different
// key is an error, as crypto/tls would fail the handshake on it).
func loadECHKeyFile(path string, sendAsRetry bool) ([]tls.EncryptedClientHelloKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keyDER, configList []byte
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
			if keyDER != nil {
				return nil, fmt.Errorf("%s: repeated PRIVATE KEY block", path)
			}
			keyDER = block.Bytes
		case "ECHCONFIG":
			if configList != nil {
				return nil, fmt.Errorf("%s: repeated ECHCONFIG block", path)
			}
			// The block body is the base64 of the ECHConfigList (with
			// its length), so the decoded block is the list itself.
			configList = block.Bytes
		}
	}
	if keyDER == nil || configList == nil {
		return nil, fmt.Errorf("%s: need a PRIVATE KEY and an ECHCONFIG PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var priv *ecdh.PrivateKey
	switch k := parsed.(type) {
	case *ecdh.PrivateKey: // X25519
		priv = k
	case *ecdsa.PrivateKey: // NIST curves come back as ECDSA keys
		if priv, err = k.ECDH(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("%s: unsupported ECH private key type %T", path, parsed)
	}
	configs, err := splitECHConfigList(configList)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var keys []tls.EncryptedClientHelloKey
	for _, config := range configs {
		kemID, pub, ok, err := echConfigKey(config)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !ok {
			continue
		}
		if curve, known := hpkeKEMs[kemID]; !known || curve != priv.Curve() {
			return nil, fmt.Errorf("%s: ECHConfig KEM 0x%04x does not match the %v private key", path, kemID, priv.Curve())
		}
		if !bytes.Equal(pub, priv.PublicKey().Bytes()) {
			return nil, fmt.Errorf("%s: ECHConfig public_key does not match the private key", path)
		}
		keys = append(keys, tls.EncryptedClientHelloKey{
			Config:      bytes.Clone(config),
			PrivateKey:  priv.Bytes(),
			SendAsRetry: sendAsRetry,
		})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no usable ECHConfig in the ECHCONFIG block", path)
	}
	return keys, nil
}

// loadECHKeys loads every -ech-key (sent as retry) and -ech-key-no-retry
// file, in that order.
func loadECHKeys(retry, noRetry []string) ([]tls.EncryptedClientHelloKey, error) {
	var keys []tls.EncryptedClientHelloKey
	for _, group := range []struct {
		paths       []string
		sendAsRetry bool
	}{{retry, true}, {noRetry, false}} {
		for _, path := range group.paths {
			k, err := loadECHKeyFile(path, group.sendAsRetry)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k...)
		}
	}
	return keys, nil
}

// decodeConfigList decodes the client's -ech-config-list flag (standard
// base64 of an ECHConfigList with its length, as in the DNS "ech" SvcParam).
func decodeConfigList(b64 string) ([]byte, error) {
	list, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("-ech-config-list: %w", err)
	}
	if _, err := splitECHConfigList(list); err != nil {
		return nil, fmt.Errorf("-ech-config-list: %w", err)
	}
	return list, nil
}

// echRejected is the JSON line printed when the server rejects ECH.
type echRejected struct {
	Event        string `json:"event"` // "ech_rejected"
	Connection   int    `json:"connection"`
	RetryConfigs string `json:"retry_configs"` // base64 RetryConfigList; "" if none
}

// reportRejection prints the "ech_rejected" line for connection index.
func reportRejection(index int, rejection *tls.ECHRejectionError) {
	emitJSON(echRejected{
		Event:        "ech_rejected",
		Connection:   index,
		RetryConfigs: base64.StdEncoding.EncodeToString(rejection.RetryConfigList),
	})
}
