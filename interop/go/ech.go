package main

// Encrypted Client Hello (RFC 9849) support for tlspeer: loading RFC 9934
// ECH key files for the server and handling ECH rejection on the client.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hpke"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
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

// pqAlgorithms maps the DER of a PKCS#8 AlgorithmIdentifier (parameters
// absent) to the draft-ietf-hpke-pq KEM whose private key it holds, as
// ech.hpke.PrivateKey.to_pkcs8_pem writes them:
//
//   - ML-KEM-768/1024 (RFC 9935, OIDs 2.16.840.1.101.3.4.4.2/.3): the
//     privateKey is an ML-KEM-PrivateKey CHOICE; we take the 64-byte seed.
//   - X-Wing, id-XWing 1.3.6.1.4.1.62253.25722
//     (draft-connolly-cfrg-xwing-kem): the privateKey is the raw 32-byte seed.
//   - MLKEM768-P256 and MLKEM1024-P384: no registered OID for this
//     construction; ech uses UUID OIDs under 2.25 and the raw 32-byte seed.
//
// crypto/x509.ParsePKCS8PrivateKey knows none of them (Go 1.27), hence the
// byte comparison: the UUID arcs do not even fit encoding/asn1's OID type.
var pqAlgorithms = map[string]uint16{
	"300b0609608648016503040402":                       0x0041,
	"300b0609608648016503040403":                       0x0042,
	"300d060b2b0601040183e62d81c87a":                   0x647a,
	"301606146982878fa0dfdba7cab2af89c8e3ffa6e09ba50f": 0x0050,
	"301606146983d19decbdb1ecf2a9afaf9591bbababaf8b57": 0x0051,
}

// oneAsymmetricKey is PKCS#8 / RFC 5958 with the algorithm kept as raw DER.
type oneAsymmetricKey struct {
	Version    int
	Algorithm  asn1.RawValue
	PrivateKey []byte
	Attributes asn1.RawValue  `asn1:"optional,tag:0"`
	PublicKey  asn1.BitString `asn1:"optional,tag:1"`
}

// mlkemSeed extracts the 64-byte seed from an RFC 9935 ML-KEM-PrivateKey:
// the seed choice ([0] IMPLICIT OCTET STRING) or the both choice
// (SEQUENCE { seed OCTET STRING, expandedKey OCTET STRING }).
func mlkemSeed(inner []byte) ([]byte, error) {
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(inner, &raw); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("bad ML-KEM-PrivateKey: %v", err)
	}
	switch {
	case raw.Class == asn1.ClassContextSpecific && raw.Tag == 0 && !raw.IsCompound:
		return raw.Bytes, nil
	case raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSequence:
		var both struct {
			Seed     []byte
			Expanded []byte
		}
		if rest, err := asn1.Unmarshal(inner, &both); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("bad ML-KEM-PrivateKey both: %v", err)
		}
		return both.Seed, nil
	}
	return nil, errors.New("ML-KEM-PrivateKey without a seed is not supported")
}

// echPrivateKey is an ECH private key: its KEM and its RFC 9180
// SerializePrivateKey / SerializePublicKey forms.
type echPrivateKey struct {
	kemID uint16
	priv  []byte
	pub   []byte
}

// parseECHPrivateKey reads the PKCS#8 private key of an ECH key file: a
// draft-ietf-hpke-pq key (see pqAlgorithms) or an X25519 / NIST-curve key.
func parseECHPrivateKey(der []byte) (echPrivateKey, error) {
	var info oneAsymmetricKey
	if rest, err := asn1.Unmarshal(der, &info); err == nil && len(rest) == 0 {
		if kemID, ok := pqAlgorithms[hex.EncodeToString(info.Algorithm.FullBytes)]; ok {
			seed := info.PrivateKey
			if kemID == 0x0041 || kemID == 0x0042 {
				var err error
				if seed, err = mlkemSeed(info.PrivateKey); err != nil {
					return echPrivateKey{}, err
				}
			}
			kem, err := hpke.NewKEM(kemID)
			if err != nil {
				return echPrivateKey{}, err
			}
			priv, err := kem.NewPrivateKey(seed)
			if err != nil {
				return echPrivateKey{}, fmt.Errorf("KEM 0x%04x private key: %w", kemID, err)
			}
			privBytes, err := priv.Bytes()
			if err != nil {
				return echPrivateKey{}, err
			}
			return echPrivateKey{kemID, privBytes, priv.PublicKey().Bytes()}, nil
		}
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return echPrivateKey{}, err
	}
	var priv *ecdh.PrivateKey
	switch k := parsed.(type) {
	case *ecdh.PrivateKey: // X25519
		priv = k
	case *ecdsa.PrivateKey: // NIST curves come back as ECDSA keys
		if priv, err = k.ECDH(); err != nil {
			return echPrivateKey{}, err
		}
	default:
		return echPrivateKey{}, fmt.Errorf("unsupported ECH private key type %T", parsed)
	}
	for kemID, curve := range hpkeKEMs {
		if curve == priv.Curve() {
			return echPrivateKey{kemID, priv.Bytes(), priv.PublicKey().Bytes()}, nil
		}
	}
	return echPrivateKey{}, fmt.Errorf("no HPKE KEM for curve %v", priv.Curve())
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
// block (any KEM of parseECHPrivateKey) and an "ECHCONFIG" block holding the
// base64 ECHConfigList. It
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
	priv, err := parseECHPrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
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
		if kemID != priv.kemID {
			return nil, fmt.Errorf("%s: ECHConfig KEM 0x%04x does not match the KEM 0x%04x private key", path, kemID, priv.kemID)
		}
		if !bytes.Equal(pub, priv.pub) {
			return nil, fmt.Errorf("%s: ECHConfig public_key does not match the private key", path)
		}
		keys = append(keys, tls.EncryptedClientHelloKey{
			Config:      bytes.Clone(config),
			PrivateKey:  bytes.Clone(priv.priv),
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
