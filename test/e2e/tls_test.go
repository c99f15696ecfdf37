package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portcullis test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return h.WriteFile(t, dir, "tls.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		h.WriteFile(t, dir, "tls.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))), pool
}

// TestTLSAndHTTP2 serves the main listener over TLS with HTTP/2 and checks
// that the scheme reaches the upstream and the CSRF rule.
func TestTLSAndHTTP2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	up := h.NewUpstream(t)
	keys := h.NewES256(t, dir, "idp")
	cfg := h.Config(t, jwtConfig, map[string]any{"Key": keys.Public, "Up": up.URL})
	cfg = strings.Replace(cfg, "  max_header_bytes: 8192\n", "  max_header_bytes: 8192\n  tls: {cert_file: \""+certFile+"\", key_file: \""+keyFile+"\"}\n", 1)
	gw := h.Start(t, dir, cfg)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
	}}
	tok := keys.Token(t, mint.Dev{Issuer: "https://idp.test/", Audience: []string{"api"}, Subject: "alice", Roles: []string{"admin"}})
	req, _ := http.NewRequest("GET", "https://"+gw.Addr+"/api/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	got := up.Last(t)
	if got.Header.Get("X-Forwarded-Proto") != "https" || got.Header.Get("X-Auth-Subject") != "alice" {
		t.Fatalf("upstream X-Forwarded-Proto %q subject %q", got.Header.Get("X-Forwarded-Proto"), got.Header.Get("X-Auth-Subject"))
	}
	// Plain HTTP to the TLS listener is not served.
	if resp, err := http.Get("http://" + gw.Addr + "/api/orders"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was served on the TLS listener")
		}
	}
}
