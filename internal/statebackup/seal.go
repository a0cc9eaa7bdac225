package statebackup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
)

// ageHeader begins every age-encrypted file.
const ageHeader = "age-encryption.org/v1\n"

// ParseRecipients reads what --encrypt-to names: each value an age
// recipient (age1...), an SSH public key (ssh-ed25519 or ssh-rsa, as in
// authorized_keys), or a file of either, one a line, # for comments.
func ParseRecipients(values []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, v := range values {
		if r, err := parseRecipient(v); err == nil {
			out = append(out, r)
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("--encrypt-to %q: neither a recipient (age1... or ssh-ed25519 ...) nor a file of them", v)
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			r, err := parseRecipient(line)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", v, i+1, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func parseRecipient(s string) (age.Recipient, error) {
	if strings.HasPrefix(s, "ssh-") {
		return agessh.ParseRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}

// ReadIdentities reads what --identity names: an age identity file
// (AGE-SECRET-KEY-1..., as age-keygen writes) or an SSH private key
// without a passphrase.
func ReadIdentities(file string) ([]age.Identity, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte("-----BEGIN")) {
		id, err := agessh.ParseIdentity(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return []age.Identity{id}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ids, nil
}

// errNeedIdentity is an encrypted backup restored without an identity.
var errNeedIdentity = errors.New("the backup is encrypted (age): give the identity it was encrypted to with --identity FILE")

// openArchive opens the archive file for reading, decrypted with ids
// when it is encrypted; close it with the func it returns.
func openArchive(file string, ids []age.Identity) (io.Reader, func(), error) {
	in, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	r, err := opened(in, ids)
	if err != nil {
		in.Close()
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return r, func() { in.Close() }, nil
}

// opened is the archive r, decrypted with ids when it is encrypted.
func opened(r io.Reader, ids []age.Identity) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(ageHeader))
	if string(head) != ageHeader {
		return br, nil
	}
	if len(ids) == 0 {
		return nil, errNeedIdentity
	}
	d, err := age.Decrypt(br, ids...)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt it with the identity given: %w", err)
	}
	return d, nil
}
