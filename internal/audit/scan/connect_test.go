package scan

import (
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestConnectTo reaches a target by its name at another address, as
// serve's self audit reaches its own sites over loopback: the TLS name
// and the Host header stay the target's, and the connection goes where
// ConnectTo says.
func TestConnectTo(t *testing.T) {
	t.Parallel()
	var host string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host = r.Host }))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate()) // its certificate names example.com
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "https://example.com:" + port + "/"
	tg, err := NewTarget(target, Options{Roots: roots, ConnectTo: map[string]string{"example.com:" + port: srv.Listener.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tg.Get(t.Context(), "/")
	if err != nil || p.Status != 200 || host != "example.com:"+port || p.TLS == nil {
		t.Fatalf("GET through ConnectTo: %v %+v, Host %q", err, p, host)
	}
}
