// Package statebackup backs up and restores Rampart's state directory
// (the local CA, ACME account and certificates, the users file and the
// bbolt store) as one .tar.gz, consistently while rampart serve runs: the
// running instance copies its bbolt file in one read transaction and
// hands it over its control socket.
package statebackup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/rampartproxy/rampart/internal/atomicfile"
	"github.com/rampartproxy/rampart/internal/store"
)

// ControlSocket is the name of the control socket in state_dir: how the
// command line reaches a running serve whose embedded store it cannot
// open (bbolt holds the file locked). It is mode 0600 in the 0700 state
// directory, so only the user Rampart runs as can use it.
const ControlSocket = "control.sock"

// StorePath is the control socket's path that streams the store's copy.
const StorePath = "/state/db"

// Skipped reports the state_dir entries a backup leaves out: the running
// instance's socket and its response spool, which mean nothing later.
func Skipped(rel string) bool {
	return rel == ControlSocket || rel == "spool" || strings.HasPrefix(rel, "spool/")
}

// Backup writes stateDir into the archive file, encrypted with age to
// every recipient of to when there are any; it returns how many files it
// holds and where the store's copy came from.
func Backup(stateDir, file string, force bool, to []age.Recipient) (n int, from string, err error) {
	if _, err := os.Stat(stateDir); err != nil {
		return 0, "", fmt.Errorf("state_dir: %w", err)
	}
	if dir, err := filepath.Abs(filepath.Dir(file)); err == nil {
		if sd, err := filepath.Abs(stateDir); err == nil && (dir == sd || strings.HasPrefix(dir, sd+string(filepath.Separator))) {
			return 0, "", fmt.Errorf("%s is inside the state directory it would copy: write it elsewhere", file)
		}
	}
	if _, err := os.Lstat(file); err == nil && !force {
		return 0, "", fmt.Errorf("%s exists: nothing written (--force overwrites it)", file)
	}
	out, err := atomicfile.Create(file, 0o600)
	if err != nil {
		return 0, "", err
	}
	defer out.Abort() // nothing once it is committed
	// The store first, into a private temporary file: tar needs its size.
	db, err := os.CreateTemp(filepath.Dir(file), ".state-db.*")
	if err != nil {
		return 0, "", err
	}
	defer os.Remove(db.Name())
	defer db.Close()
	from, err = copyStore(stateDir, db)
	if err != nil {
		return 0, "", err
	}

	var sink io.Writer = out
	var sealed io.WriteCloser
	if len(to) > 0 {
		if sealed, err = age.Encrypt(out, to...); err != nil {
			return 0, "", err
		}
		sink = sealed
	}
	gz := gzip.NewWriter(sink)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stateDir, path)
		rel = filepath.ToSlash(rel)
		if rel == "." || Skipped(rel) {
			if d.IsDir() && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
		case !info.Mode().IsRegular(), rel == store.StateFile:
			return nil // sockets and the like; the store comes from its copy
		}
		n++
		return addFile(tw, rel, path, info)
	})
	if err == nil && from != "absent" {
		var info os.FileInfo
		if info, err = db.Stat(); err == nil {
			n++
			err = addFile(tw, store.StateFile, db.Name(), info)
		}
	}
	if err != nil {
		return 0, "", err
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		return 0, "", err
	}
	if sealed != nil {
		if err := sealed.Close(); err != nil {
			return 0, "", err
		}
	}
	return n, from, out.Commit()
}

// copyStore copies the bbolt file into w consistently: from the running
// serve through its control socket, or from the file when none holds it.
func copyStore(stateDir string, w io.Writer) (from string, err error) {
	if _, err := os.Stat(filepath.Join(stateDir, store.StateFile)); errors.Is(err, fs.ErrNotExist) {
		return "absent", nil
	}
	sock := filepath.Join(stateDir, ControlSocket)
	if _, err := os.Stat(sock); err == nil {
		err := fetchStore(sock, w)
		if err == nil {
			return "copied by the running rampart serve", nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return "", err
		}
		// A socket left by a serve that did not stop cleanly.
	}
	if _, err := store.BackupFile(stateDir, w); err != nil {
		if errors.Is(err, store.ErrInUse) {
			return "", fmt.Errorf("%w, and its control socket did not answer: stop it, or back up while it runs normally", err)
		}
		return "", err
	}
	return "copied from its file", nil
}

// ControlClient is an HTTP client of the control socket at sock; its
// requests go to http://rampart/PATH.
func ControlClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func fetchStore(sock string, w io.Writer) error {
	resp, err := ControlClient(sock).Get("http://rampart" + StorePath)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the running rampart serve did not copy its store: %s", resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("copying the store from the running rampart serve: %w", err)
	}
	return nil
}

func addFile(tw *tar.Writer, name, path string, info os.FileInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: info.Size(), Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, info.Size())
	return err
}

// Restore unpacks the archive file as stateDir, decrypting it with ids
// when it is encrypted; it returns how many files it held and where the
// state it replaced went ("" if none).
func Restore(stateDir, file string, force bool, ids []age.Identity) (n int, old string, err error) {
	if Running(stateDir) {
		return 0, "", fmt.Errorf("a rampart serve is running on %s: stop it first (systemctl stop rampart)", stateDir)
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, "", err
	}
	if len(entries) > 0 && !force {
		return 0, "", fmt.Errorf("%s is not empty: restore into a fresh state_dir, or --force to replace it (the old one is kept beside it)", stateDir)
	}
	archive, closeArchive, err := openArchive(file, ids)
	if err != nil {
		return 0, "", fmt.Errorf("%w (nothing restored)", err)
	}
	defer closeArchive()
	parent := filepath.Dir(filepath.Clean(stateDir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return 0, "", err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(stateDir)+".restore-*")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(tmp) // a no-op once it is renamed
	if n, err = unpack(archive, tmp); err != nil {
		return 0, "", fmt.Errorf("%s: %w (nothing restored)", file, err)
	}
	if err := store.CheckFile(tmp); err != nil {
		return 0, "", fmt.Errorf("%s: the store in it is damaged: %w (nothing restored)", file, err)
	}
	if len(entries) > 0 {
		old = fmt.Sprintf("%s.replaced-%s", filepath.Clean(stateDir), time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(stateDir, old); err != nil {
			return 0, "", err
		}
	} else if err := os.Remove(stateDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, "", err
	}
	if err := os.Rename(tmp, stateDir); err != nil {
		if old != "" {
			_ = os.Rename(old, stateDir)
		}
		return 0, "", err
	}
	return n, old, nil
}

// Running reports whether a rampart serve holds stateDir: its control
// socket answers, or its store is locked.
func Running(stateDir string) bool {
	if c, err := net.DialTimeout("unix", filepath.Join(stateDir, ControlSocket), time.Second); err == nil {
		c.Close()
		return true
	}
	return store.InUse(stateDir)
}

// unpack writes the archive r into dir, refusing anything but plain files
// and directories inside it.
func unpack(r io.Reader, dir string) (n int, err error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("not a rampart state backup: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("not a rampart state backup: %w", err)
		}
		name := filepath.FromSlash(strings.TrimSuffix(h.Name, "/"))
		if !filepath.IsLocal(name) || Skipped(filepath.ToSlash(name)) {
			return 0, fmt.Errorf("%q: a path outside the state directory", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return 0, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return 0, err
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return 0, err
			}
			_, err = io.Copy(f, tr)
			// The modes it had, never more than rw-r--r--: keys stay 0600.
			if err = errors.Join(err, f.Chmod(os.FileMode(h.Mode).Perm()&0o644|0o400), f.Sync(), f.Close()); err != nil {
				return 0, err
			}
			n++
		default:
			return 0, fmt.Errorf("%q: not a plain file or directory", h.Name)
		}
	}
}
