package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"filippo.io/age"

	"github.com/rampartproxy/rampart/internal/statebackup"
)

const stateUsage = `Usage: rampart state backup FILE [flags]
       rampart state restore FILE [flags]
       rampart state verify FILE [flags]

Backs up and restores the embedded state in state_dir: the local CA, the
ACME account and certificates, the users file and the bbolt store
(sessions, lockouts). A backup is a .tar.gz, written with mode 0600 (it
holds private keys); keep it as you keep the keys.

--encrypt-to encrypts it with age (filippo.io/age) to each recipient
given: an age public key (age1..., from age-keygen), an SSH public key
(ssh-ed25519 or ssh-rsa), or a file of them. Only the holder of one of
the matching private keys can restore it (--identity FILE); a backup
kept off the machine should be encrypted.

backup works while rampart serve runs: the bbolt file is copied in one
read transaction by the running instance (through its control socket),
so the copy is consistent. Nothing is written unless all of it is.

restore refuses a state_dir a running rampart serve uses, and one that
is not empty unless --force (the old one is then kept beside it, renamed
DIR.replaced-TIME). It unpacks into a new directory and puts it in place
at once: a restore that fails changes nothing. Run it as the user
rampart serve runs as (sudo -u rampart ...), so the files are its own.

verify is the restore test, for a backup kept anywhere: it unpacks FILE
into a temporary directory, checks every page of the store, that the
local CA's key matches its certificate and that the ACME certificates
parse and match their keys, says what it checked, and exits 1 on the
first failure. It changes nothing.

With store: redis://..., ACME certificates and sessions live in Redis:
back Redis up with its own tools.

Examples:
  rampart state backup /root/rampart-$(date +%F).tar.gz --config /etc/rampart/rampart.yaml
  rampart state backup rampart.tar.gz.age --encrypt-to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
  rampart state backup rampart.tar.gz.age --encrypt-to ~/.ssh/id_ed25519.pub
  sudo -u rampart rampart state restore rampart-2026-11-22.tar.gz --state-dir /var/lib/rampart
  sudo -u rampart rampart state restore rampart.tar.gz.age --identity key.txt --state-dir /var/lib/rampart
  rampart state verify rampart.tar.gz.age --identity key.txt
`

func (e env) state(args []string) int {
	if code, done := e.groupHelp(args, stateUsage); done {
		return code
	}
	cmd := args[0]
	if cmd != "backup" && cmd != "restore" && cmd != "verify" {
		return e.usageError(fmt.Sprintf("unknown command %q", "state "+cmd), "run 'rampart state --help'")
	}
	fs := e.flags("state "+cmd, stateUsage)
	cfgPath, stateDir, force := new(string), new(string), new(bool)
	if cmd != "verify" { // which reads FILE alone
		cfgPath = fs.String("config", "", "config file, for state_dir (default ./rampart.yaml when it exists)")
		stateDir = fs.String("state-dir", "", "the state directory itself (default: the config's state_dir)")
		force = fs.Bool("force", false, map[string]string{"backup": "overwrite FILE if it exists", "restore": "replace a state_dir that is not empty"}[cmd])
	}
	var encryptTo repeated
	identity := new(string)
	if cmd == "backup" {
		fs.Var(&encryptTo, "encrypt-to", "encrypt with age to this recipient (age1..., an SSH public key, or a file of them); repeatable")
	} else {
		identity = fs.String("identity", "", "the age identity file, or SSH private key, an encrypted backup was made for")
	}
	// FILE before the flags or after them.
	var file string
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); errors.Is(err, flag.ErrHelp) {
		return exitOK
	} else if err != nil {
		return e.usageError(err.Error(), "run 'rampart state --help'")
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
		rest = fs.Args()[1:]
	} else {
		rest = fs.Args()
	}
	if len(rest) > 0 {
		return e.usageError(fmt.Sprintf("unexpected argument %q", rest[0]), "run 'rampart state --help'")
	}
	if file == "" {
		return e.usageError("rampart state "+cmd+" needs a FILE", "for example: rampart state "+cmd+" rampart-state.tar.gz")
	}
	if cmd == "verify" {
		return e.stateVerify(file, *identity)
	}
	if *stateDir == "" {
		cfg, err := loadFor(*cfgPath)
		if err != nil {
			return e.fail(err, "pass the state directory with --state-dir DIR")
		}
		*stateDir = cfg.StateDir
	}
	if cmd == "backup" {
		to, err := statebackup.ParseRecipients(encryptTo)
		if err != nil {
			return e.usageError(err.Error(), "an age recipient starts age1 (age-keygen -y key.txt prints it); an SSH one, ssh-ed25519")
		}
		n, from, err := statebackup.Backup(*stateDir, file, *force, to)
		if err != nil {
			return e.fail(err, "")
		}
		sealed := ""
		if len(to) > 0 {
			sealed = fmt.Sprintf(", encrypted to %s", plural(len(to), "recipient"))
		}
		fmt.Fprintf(e.stdout, "backed up %s of %s (the store %s) to %s, mode 0600%s\n", plural(n, "file"), *stateDir, from, file, sealed)
		return exitOK
	}
	ids, err := identities(*identity)
	if err != nil {
		return e.fail(err, identityHint)
	}
	n, old, err := statebackup.Restore(*stateDir, file, *force, ids)
	if err != nil {
		return e.fail(err, "")
	}
	fmt.Fprintf(e.stdout, "restored %s into %s\n", plural(n, "file"), *stateDir)
	if old != "" {
		fmt.Fprintf(e.stdout, "the state it replaced is in %s\n", old)
	}
	return exitOK
}

// repeated is a flag given any number of times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ", ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

const identityHint = "--identity takes an age identity file (age-keygen) or an SSH private key without a passphrase"

// identities reads the --identity file, none when it is "".
func identities(file string) ([]age.Identity, error) {
	if file == "" {
		return nil, nil
	}
	return statebackup.ReadIdentities(file)
}

// stateVerify is rampart state verify FILE.
func (e env) stateVerify(file, identity string) int {
	ids, err := identities(identity)
	if err != nil {
		return e.fail(err, identityHint)
	}
	checked, err := statebackup.Verify(file, ids)
	for _, line := range checked {
		fmt.Fprintln(e.stdout, "ok   "+line)
	}
	if err != nil {
		return e.fail(fmt.Errorf("%s does not restore: %w", file, err), "restore an older backup, and take a new one now")
	}
	fmt.Fprintf(e.stdout, "%s restores: everything checked is whole\n", file)
	return exitOK
}
