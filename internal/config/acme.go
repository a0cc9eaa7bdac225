package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"slices"
)

// ACME configures automatic certificates for sites in tls mode acme.
type ACME struct {
	// Email is the ACME account's contact, for expiry warnings from the
	// CA. Recommended.
	Email string `yaml:"email"`
	// CA is the directory URL. Default Let's Encrypt's production CA;
	// use https://acme-staging-v02.api.letsencrypt.org/directory while
	// trying things out.
	CA string `yaml:"ca"`
	// CARoot is a PEM file of extra roots to trust when talking to the CA
	// itself (private CAs, tests). Default: none, the system's roots.
	CARoot string `yaml:"ca_root"`
	// Challenges are the challenge types offered: http-01 (answered on
	// the http listener) and tls-alpn-01 (on the https listener). Default
	// both.
	Challenges []string `yaml:"challenges"`
}

// DefaultACMECA is Let's Encrypt's production directory.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

// Challenge names.
const (
	ChallengeHTTP    = "http-01"
	ChallengeTLSALPN = "tls-alpn-01"
)

func (c *Config) applyACMEDefaults() {
	if c.ACME.CA == "" {
		c.ACME.CA = DefaultACMECA
	}
	if c.ACME.Challenges == nil {
		c.ACME.Challenges = []string{ChallengeHTTP, ChallengeTLSALPN}
	}
}

func (c *Config) validateACME(bad func(path, format string, args ...any)) {
	if u, err := url.Parse(c.ACME.CA); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("acme.ca", "%q is not an https:// ACME directory URL", c.ACME.CA)
	}
	if c.ACME.Email != "" {
		if _, err := mail.ParseAddress(c.ACME.Email); err != nil {
			bad("acme.email", "%q is not an email address", c.ACME.Email)
		}
	}
	if c.ACME.CARoot != "" {
		if _, err := os.Stat(c.ACME.CARoot); err != nil {
			bad("acme.ca_root", "%v", err)
		}
	}
	if len(c.ACME.Challenges) == 0 {
		bad("acme.challenges", "at least one of http-01 and tls-alpn-01 is needed")
	}
	for i, ch := range c.ACME.Challenges {
		if !slices.Contains([]string{ChallengeHTTP, ChallengeTLSALPN}, ch) {
			bad(fmt.Sprintf("acme.challenges[%d]", i), "%q is not http-01 or tls-alpn-01", ch)
		}
	}
	if slices.Contains(c.ACME.Challenges, ChallengeHTTP) && len(c.ACME.Challenges) == 1 && c.Listen.HTTP == "off" && c.UsesACME() {
		bad("acme.challenges", "http-01 alone needs the http listener, which is off")
	}
}

// UsesACME reports whether any site takes its certificate from ACME.
func (c *Config) UsesACME() bool {
	for _, s := range c.Sites {
		if s.TLS.Mode == TLSACME {
			return true
		}
	}
	return false
}
