package statebackup

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/rampartproxy/rampart/internal/store"
)

// Verify is the restore test: it unpacks the archive file (decrypted
// with ids when it is encrypted) into a temporary directory that it
// removes after, and checks what a restore would put in place: every
// page of the store, that the local CA's key matches its certificate,
// and that every ACME certificate parses (and matches its key, where the
// key is there). It returns a line for each thing checked, and an error
// naming the first that failed.
func Verify(file string, ids []age.Identity) ([]string, error) {
	archive, closeArchive, err := openArchive(file, ids)
	if err != nil {
		return nil, err
	}
	defer closeArchive()
	tmp, err := os.MkdirTemp("", "rampart-verify-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	n, err := unpack(archive, tmp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	checked := []string{fmt.Sprintf("%d files unpack", n)}
	if _, err := os.Stat(filepath.Join(tmp, store.StateFile)); err == nil {
		if err := store.CheckFile(tmp); err != nil {
			return checked, fmt.Errorf("the store: %w", err)
		}
		checked = append(checked, "the store: every page reads")
	}
	if line, err := verifyCA(tmp); err != nil {
		return checked, err
	} else if line != "" {
		checked = append(checked, line)
	}
	lines, err := verifyACME(tmp)
	return append(checked, lines...), err
}

// verifyCA checks that the local CA's key is its certificate's; "" when
// the backup holds no CA. The files are those certs.OpenLocalCA reads
// (TestVerify holds the names to certs.RootPath).
func verifyCA(dir string) (string, error) {
	cert, err := os.ReadFile(filepath.Join(dir, "ca", "root.pem"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	key, err := os.ReadFile(filepath.Join(dir, "ca", "root-key.pem"))
	if err != nil {
		return "", fmt.Errorf("the local CA: its key: %w", err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return "", fmt.Errorf("the local CA: %w", err)
	}
	return fmt.Sprintf("the local CA: its key matches %q", pair.Leaf.Subject.CommonName), nil
}

// verifyACME checks every certificate certmagic stored (acme/**/*.crt):
// it parses, and matches the .key beside it when there is one.
func verifyACME(dir string) ([]string, error) {
	var lines []string
	err := filepath.WalkDir(filepath.Join(dir, "acme"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".crt") {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		certPEM, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		block, _ := pem.Decode(certPEM)
		if block == nil {
			return fmt.Errorf("%s: no PEM certificate", rel)
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		keyPEM, err := os.ReadFile(strings.TrimSuffix(path, ".crt") + ".key")
		switch {
		case errors.Is(err, fs.ErrNotExist):
			lines = append(lines, fmt.Sprintf("%s: %v parses (no key beside it)", rel, leaf.DNSNames))
		case err != nil:
			return err
		default:
			if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			lines = append(lines, fmt.Sprintf("%s: %v parses and matches its key", rel, leaf.DNSNames))
		}
		return nil
	})
	return lines, err
}
