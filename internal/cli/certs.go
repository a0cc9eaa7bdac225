package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/store"
)

const certsUsage = `Usage: rampart certs [[--config] FILE] [--state-dir DIR]

Lists the certificates Rampart manages: ACME certificates in the store,
certificate files named in the config, the local CA and the certificates it
issued, with their names, issuer, expiry and where each is kept. Safe to
run next to rampart serve.

Examples:
  rampart certs
  rampart certs /etc/rampart/rampart.yaml
  rampart certs --state-dir /var/lib/rampart
`

// certRow is one line of the listing.
type certRow struct {
	names, issuer, source, where string
	notAfter                     time.Time
}

func (e env) certs(args []string) int {
	fs := e.flags("certs", certsUsage)
	cfgPath := fs.String("config", "", "config file (default ./rampart.yaml when it exists)")
	stateDir := fs.String("state-dir", "", "state directory (default: the config's state_dir, else $XDG_DATA_HOME/rampart or ~/.local/share/rampart)")
	if ok, code := e.parse(fs, args, cfgPath); !ok {
		return code
	}
	cfg, err := loadFor(*cfgPath)
	if err != nil {
		return e.fail(err, "run 'rampart validate --config FILE' to see every problem")
	}
	if *stateDir != "" {
		cfg.StateDir = *stateDir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var storage certmagic.Storage = &certmagic.FileStorage{Path: filepath.Join(cfg.StateDir, "acme")}
	where := filepath.Join(cfg.StateDir, "acme")
	if cfg.Store != config.StoreEmbedded {
		r, err := store.OpenRedisWith(cfg.Store, store.Timeout, cfg.StoreCA)
		if err != nil {
			return e.fail(err, "")
		}
		defer r.Close()
		if storage, err = certs.NewSharedStorage(r); err != nil {
			return e.fail(err, "")
		}
		where = cfg.Store
	}
	rows, err := storedCerts(ctx, storage, where)
	if err != nil {
		return e.fail(fmt.Errorf("read ACME certificates: %w", err), "")
	}
	for _, s := range cfg.Sites {
		if s.TLS.Mode == config.TLSFiles {
			if leaf, err := readLeaf(s.TLS.Cert); err == nil {
				rows = append(rows, row(leaf, "files", s.TLS.Cert))
			} else {
				rows = append(rows, certRow{names: strings.Join(s.Hosts, ","), source: "files", where: s.TLS.Cert, issuer: "unreadable: " + err.Error()})
			}
		}
	}
	if leaf, err := readLeaf(certs.RootPath(cfg.StateDir)); err == nil {
		rows = append(rows, row(leaf, "local CA root", certs.RootPath(cfg.StateDir)))
	}
	issued, _ := filepath.Glob(filepath.Join(certs.IssuedDir(cfg.StateDir), "*.pem"))
	for _, path := range issued {
		if leaf, err := readLeaf(path); err == nil {
			rows = append(rows, row(leaf, "local CA", path))
		}
	}
	writeRows(e.stdout, rows, time.Now())
	return exitOK
}

// storedCerts lists the certificates in certmagic storage.
func storedCerts(ctx context.Context, storage certmagic.Storage, where string) ([]certRow, error) {
	keys, err := storage.List(ctx, "certificates", true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	slices.Sort(keys)
	var rows []certRow
	for _, k := range keys {
		if !strings.HasSuffix(k, ".crt") {
			continue
		}
		data, err := storage.Load(ctx, k)
		if err != nil {
			continue
		}
		if leaf, err := parseLeaf(data); err == nil {
			rows = append(rows, row(leaf, "acme", where+"/"+k))
		}
	}
	return rows, nil
}

func row(leaf *x509.Certificate, source, where string) certRow {
	names := leaf.DNSNames
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	return certRow{names: strings.Join(names, ","), issuer: leaf.Issuer.CommonName, source: source, where: where, notAfter: leaf.NotAfter}
}

func readLeaf(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseLeaf(data)
}

func parseLeaf(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func writeRows(w io.Writer, rows []certRow, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMES\tSOURCE\tISSUER\tEXPIRES\tSTORED AT")
	for _, r := range rows {
		expires := ""
		if !r.notAfter.IsZero() {
			expires = fmt.Sprintf("%s (%d days)", r.notAfter.UTC().Format("2006-01-02"), int(r.notAfter.Sub(now).Hours()/24))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.names, r.source, r.issuer, expires, r.where)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(none yet)")
	}
	tw.Flush()
}
