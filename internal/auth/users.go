package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/rampartproxy/rampart/internal/atomicfile"
	"github.com/rampartproxy/rampart/internal/config"
)

// User is one account of the users file.
type User struct {
	Name string `yaml:"name"`
	// Password is an argon2id PHC string (Hash).
	Password string   `yaml:"password"`
	Groups   []string `yaml:"groups,omitempty"`
	// DisplayName and Email, when set, go to the app as Remote-Name and
	// Remote-Email.
	DisplayName string `yaml:"display_name,omitempty"`
	Email       string `yaml:"email,omitempty"`
	// TOTP is the base32 secret of the user's authenticator app; empty
	// until enrolled.
	TOTP string `yaml:"totp,omitempty"`
	// Recovery holds the SHA-256 hashes of the unused recovery codes.
	Recovery []string `yaml:"recovery,omitempty"`
	// Passkeys are the user's WebAuthn credentials.
	Passkeys []Passkey `yaml:"passkeys,omitempty"`
}

// Passkey is one WebAuthn credential, as go-webauthn stores it.
type Passkey struct {
	Name string `yaml:"name"`
	// Credential is webauthn.Credential, JSON-encoded.
	Credential string `yaml:"credential"`
}

// HasSecondFactor reports whether the user has enrolled TOTP or a passkey.
func (u *User) HasSecondFactor() bool { return u.TOTP != "" || len(u.Passkeys) > 0 }

// InAny reports whether the user is in one of groups; every user is when
// groups is empty.
func (u *User) InAny(groups []string) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		if slices.Contains(u.Groups, g) {
			return true
		}
	}
	return false
}

type usersFile struct {
	Users []User `yaml:"users"`
}

const usersHeader = "# Rampart's accounts, written by `rampart user`. Keep this file mode 0600:\n# it holds password hashes and TOTP secrets.\n"

// ReadUsers reads the users file at path. A missing file is no users. A
// file that others than its owner may read, or that is not valid, is an
// error naming what to do.
func ReadUsers(path string) ([]User, error) {
	data, err := readPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && len(bytes.TrimSpace(data)) > 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, u := range f.Users {
		switch {
		case !config.ValidName(u.Name):
			return nil, fmt.Errorf("%s: users[%d]: %q is not a user name (letters, digits, . _ - @; up to 64)", path, i, u.Name)
		case seen[u.Name]:
			return nil, fmt.Errorf("%s: users[%d]: %q is listed twice", path, i, u.Name)
		}
		seen[u.Name] = true
		if _, _, _, err := parsePHC(u.Password); err != nil {
			return nil, fmt.Errorf("%s: user %s: password: %w", path, u.Name, err)
		}
		for _, g := range u.Groups {
			if !config.ValidName(g) {
				return nil, fmt.Errorf("%s: user %s: %q is not a group name", path, u.Name, g)
			}
		}
		if strings.ContainsFunc(u.DisplayName+u.Email, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fmt.Errorf("%s: user %s: display_name and email must be one line of text", path, u.Name)
		}
		if u.TOTP != "" {
			if _, err := decodeSecret(u.TOTP); err != nil {
				return nil, fmt.Errorf("%s: user %s: totp: %w", path, u.Name, err)
			}
		}
	}
	return f.Users, nil
}

// readPrivate reads a file that must not be readable by group or others.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is mode %04o, readable by others than its owner: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}

// UpdateUsers changes the users file at path under an exclusive lock
// (users.yaml.lock beside it, so two `rampart user` commands or a
// command and the portal cannot lose each other's change): it reads the
// file, calls change, and writes the result with mode 0600 through
// atomicfile.Write. Nothing is written when change fails.
func UpdateUsers(path string, change func([]User) ([]User, error)) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	users, err := ReadUsers(path)
	if err != nil {
		return err
	}
	users, err = change(users)
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(usersFile{Users: users})
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append([]byte(usersHeader), out...), 0o600)
}

// ErrNoUser is a user name the file does not have.
var ErrNoUser = errors.New("no such user")

// ChangeUser is UpdateUsers for one user, which must exist.
func ChangeUser(path, name string, change func(*User) error) error {
	return UpdateUsers(path, func(users []User) ([]User, error) {
		i := slices.IndexFunc(users, func(u User) bool { return u.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("%s: %w", name, ErrNoUser)
		}
		return users, change(&users[i])
	})
}

// Directory is the users file as the portal reads it: re-read whenever
// the file changes (checked with one stat per lookup), so that `rampart
// user remove` ends a user's access at the next request. A file that
// turns bad keeps the last good one, reported once through OnError.
type Directory struct {
	path    string
	onError func(error)

	mu    sync.Mutex
	users map[string]*User
	stamp fileStamp
	bad   fileStamp // the stamp whose error was reported
}

type fileStamp struct {
	ino, size, mtime int64
	exists           bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), exists: true}
	if st != nil {
		s.ino = int64(st.Ino)
	}
	return s
}

// OpenDirectory reads the users file at path; onError hears of later
// failures to re-read it.
func OpenDirectory(path string, onError func(error)) (*Directory, error) {
	d := &Directory{path: path, onError: onError}
	stamp := stampOf(path)
	users, err := ReadUsers(path)
	if err != nil {
		return nil, err
	}
	d.set(users, stamp)
	return d, nil
}

// Path is the users file's path.
func (d *Directory) Path() string { return d.path }

func (d *Directory) set(users []User, stamp fileStamp) {
	m := make(map[string]*User, len(users))
	for i := range users {
		m[users[i].Name] = &users[i]
	}
	d.users, d.stamp = m, stamp
}

// Lookup returns a copy of the user named name, as the file says now.
func (d *Directory) Lookup(name string) (User, bool) {
	stamp := stampOf(d.path)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refresh(stamp)
	u, ok := d.users[name]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Find returns a copy of the first user, as the file says now, that
// match reports true for (a passkey's user handle is no name).
func (d *Directory) Find(match func(User) bool) (User, bool) {
	stamp := stampOf(d.path)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refresh(stamp)
	for _, u := range d.users {
		if match(*u) {
			return *u, true
		}
	}
	return User{}, false
}

// refresh re-reads the file when stamp says it changed. d.mu is held.
func (d *Directory) refresh(stamp fileStamp) {
	if stamp != d.stamp && stamp != d.bad {
		if users, err := ReadUsers(d.path); err != nil {
			d.bad = stamp
			if d.onError != nil {
				d.onError(err)
			}
		} else {
			d.set(users, stamp)
		}
	}
}

// Len is how many users the directory holds.
func (d *Directory) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.users)
}

// Change changes one user in the file, and reads it back.
func (d *Directory) Change(name string, change func(*User) error) error {
	if err := ChangeUser(d.path, name, change); err != nil {
		return err
	}
	d.Lookup(name) // re-read now
	return nil
}
