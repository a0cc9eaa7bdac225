package gateway

import (
	"crypto/tls"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	tests := []struct {
		name   string
		cfg    *tls.Config
		ok     bool
		wantH2 bool
	}{
		{"tls 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true, false},
		{"tls 1.2 aead", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true, false},
		{"tls 1.2 chacha", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true, false},
		{"tls 1.1 refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false, false},
		{"tls 1.2 cbc refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, false, false},
		{"tls 1.2 static rsa refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}, false, false},
		{"alpn h2", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, true, true},
		{"unknown sni", &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg.Clone()
			cfg.RootCAs = tg.roots
			if cfg.ServerName == "" {
				cfg.ServerName = "localhost"
			}
			c, err := tls.Dial("tcp", tg.httpsAddr, cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol == "h2"; got != tt.wantH2 {
				t.Errorf("h2 negotiated = %v, want %v", got, tt.wantH2)
			}
			if cert := c.ConnectionState().PeerCertificates[0]; cert.PublicKeyAlgorithm.String() != "ECDSA" {
				t.Errorf("leaf key %v, want ECDSA P-256", cert.PublicKeyAlgorithm)
			}
		})
	}
}

func TestIPWithoutSNIGetsItsSite(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	// Go's client sends no SNI for an IP address, like curl and browsers.
	c, err := tls.Dial("tcp", tg.httpsAddr, &tls.Config{RootCAs: tg.roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake to an IP listed by a site: %v", err)
	}
	c.Close()
}
