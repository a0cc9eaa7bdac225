package cli

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
)

const userUsage = `Usage: rampart user COMMAND [NAME] [flags]

Manages the accounts of the login portal (routes with auth: {require:
true}) in the users file: auth.users_file of the config, by default
state_dir/users.yaml. The file is written with mode 0600, and a running
rampart serve reads every change at the next request: a removed user's
sessions end at once.

Commands:
  add NAME        add a user; asks for the password twice (or reads one
                  line from stdin with --password-stdin) and refuses weak ones
  list            list the users, their groups and second factors
  remove NAME     remove a user
  totp NAME       enrol an authenticator app: shows a QR code, checks a first
                  code, then prints 10 recovery codes once
  reset-mfa NAME  remove a user's TOTP, passkeys and recovery codes (with
                  mfa: required, the user enrols again at the next sign-in)
  passwd NAME     set a new password

Examples:
  rampart user add alice --groups admins
  rampart user add deploy --password-stdin < password.txt
  rampart user totp alice
  rampart user list --config /etc/rampart/rampart.yaml
`

func (e env) user(args []string) int {
	if code, done := e.groupHelp(args, userUsage); done {
		return code
	}
	cmd := args[0]
	fs := e.flags("user "+cmd, userUsage)
	cfgPath := fs.String("config", "", "config file, for auth.users_file (default ./rampart.yaml when it exists)")
	usersFile := fs.String("users-file", "", "the users file itself (default: the config's auth.users_file)")
	var groups *string
	var stdinPassword *bool
	if cmd == "add" {
		groups = fs.String("groups", "", "comma-separated groups, such as admins,ops")
	}
	if cmd == "add" || cmd == "passwd" {
		stdinPassword = fs.Bool("password-stdin", false, "read the password from one line of stdin instead of asking")
	}
	names, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	hint := "run 'rampart user --help' for the commands"
	if err != nil {
		return e.usageError(err.Error(), hint)
	}
	want := 1
	if cmd == "list" {
		want = 0
	}
	switch {
	case !slices.Contains([]string{"add", "list", "remove", "totp", "reset-mfa", "passwd"}, cmd):
		return e.usageError(fmt.Sprintf("unknown command %q", "user "+cmd), hint)
	case len(names) < want:
		return e.usageError("user "+cmd+" needs a user name", hint)
	case len(names) > want:
		return e.usageError(fmt.Sprintf("unexpected argument %q", names[want]), hint)
	}
	path, issuer, err := userConfig(*cfgPath, *usersFile)
	if err != nil {
		return e.fail(err, "run 'rampart validate --config FILE' to see every problem")
	}
	if cmd == "list" {
		return e.userList(path)
	}
	name := names[0]
	if cmd == "add" && !config.ValidName(name) {
		return e.usageError(fmt.Sprintf("%q is not a user name", name), "use letters, digits, . _ - and @, up to 64, starting with a letter or digit")
	}
	switch cmd {
	case "add":
		return e.userAdd(path, name, *groups, *stdinPassword)
	case "passwd":
		return e.userPasswd(path, name, *stdinPassword)
	case "remove":
		err = auth.UpdateUsers(path, func(us []auth.User) ([]auth.User, error) {
			i := slices.IndexFunc(us, func(u auth.User) bool { return u.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("%s: %w", name, auth.ErrNoUser)
			}
			return slices.Delete(us, i, i+1), nil
		})
		if err == nil {
			fmt.Fprintf(e.stdout, "Removed %s from %s. A running rampart ends their sessions at their next request.\n", name, path)
		}
	case "reset-mfa":
		err = auth.ChangeUser(path, name, func(u *auth.User) error {
			u.TOTP, u.Passkeys, u.Recovery = "", nil, nil
			return nil
		})
		if err == nil {
			fmt.Fprintf(e.stdout, "Removed %s's second factors. With mfa: required they enrol again at their next sign-in.\n", name)
		}
	case "totp":
		return e.userTOTP(path, name, issuer)
	}
	if err != nil {
		return e.fail(err, userHint(err))
	}
	return exitOK
}

func userHint(err error) string {
	if errors.Is(err, auth.ErrNoUser) {
		return "run 'rampart user list' to see the users"
	}
	return ""
}

// parseInterspersed parses flags wherever they are among the arguments
// (rampart user add alice --groups admins) and returns the others.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// userConfig reads the config once for the user commands (the one from
// --config, else ./rampart.yaml): the users file is --users-file, else
// the config's auth.users_file (the default state directory's users.yaml
// without a config file); issuer is the name authenticator apps show for a
// secret made here, the config's (auth.issuer, or the first host of its
// first site with a login), "Rampart" without a config file. A config
// that cannot be read is an error only when the users file comes from it.
func userConfig(cfgPath, usersFile string) (path, issuer string, err error) {
	cfg, err := loadFor(cfgPath)
	if err != nil {
		if usersFile == "" {
			return "", "", err
		}
		return usersFile, "Rampart", nil
	}
	path, issuer = cmp.Or(usersFile, cfg.Auth.UsersFile), "Rampart"
	if (cfgPath != "" || fileExists("rampart.yaml")) && cfg.TOTPIssuer() != "" {
		issuer = cfg.TOTPIssuer()
	}
	return path, issuer, nil
}

func (e env) userList(path string) int {
	users, err := auth.ReadUsers(path)
	if err != nil {
		return e.fail(err, "")
	}
	if len(users) == 0 {
		fmt.Fprintf(e.stdout, "No users in %s. Add one with: rampart user add NAME\n", path)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tGROUPS\tSECOND FACTOR\tRECOVERY CODES LEFT")
	for _, u := range users {
		var f []string
		if u.TOTP != "" {
			f = append(f, "totp")
		}
		if n := len(u.Passkeys); n > 0 {
			f = append(f, fmt.Sprintf("%d passkey(s)", n))
		}
		if len(f) == 0 {
			f = append(f, "none")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", u.Name, cmp.Or(strings.Join(u.Groups, ","), "-"), strings.Join(f, ", "), len(u.Recovery))
	}
	tw.Flush()
	return exitOK
}

func (e env) userAdd(path, name, groups string, fromStdin bool) int {
	var gs []string
	for _, g := range strings.Split(groups, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if !config.ValidName(g) {
			return e.usageError(fmt.Sprintf("%q is not a group name", g), "use letters, digits, . _ - and @, up to 64")
		}
		gs = append(gs, g)
	}
	if users, err := auth.ReadUsers(path); err != nil {
		return e.fail(err, "")
	} else if slices.ContainsFunc(users, func(u auth.User) bool { return u.Name == name }) {
		return e.fail(fmt.Errorf("%s is already a user in %s", name, path), "rampart user passwd "+name+" sets a new password")
	}
	hash, code := e.newPassword(name, fromStdin)
	if hash == "" {
		return code
	}
	err := auth.UpdateUsers(path, func(us []auth.User) ([]auth.User, error) {
		if slices.ContainsFunc(us, func(u auth.User) bool { return u.Name == name }) {
			return nil, fmt.Errorf("%s is already a user in %s", name, path)
		}
		return append(us, auth.User{Name: name, Password: hash, Groups: gs}), nil
	})
	if err != nil {
		return e.fail(err, "")
	}
	fmt.Fprintf(e.stdout, "Added %s to %s.\n", name, path)
	fmt.Fprintf(e.stdout, "Next: rampart user totp %s (or they enrol a second factor at their first sign-in).\n", name)
	return exitOK
}

func (e env) userPasswd(path, name string, fromStdin bool) int {
	if _, err := findUser(path, name); err != nil {
		return e.fail(err, userHint(err))
	}
	hash, code := e.newPassword(name, fromStdin)
	if hash == "" {
		return code
	}
	if err := auth.ChangeUser(path, name, func(u *auth.User) error { u.Password = hash; return nil }); err != nil {
		return e.fail(err, userHint(err))
	}
	fmt.Fprintf(e.stdout, "Set a new password for %s. Sessions already open stay open: end them with rampart sessions revoke --user %s.\n", name, name)
	return exitOK
}

func findUser(path, name string) (auth.User, error) {
	users, err := auth.ReadUsers(path)
	if err != nil {
		return auth.User{}, err
	}
	for _, u := range users {
		if u.Name == name {
			return u, nil
		}
	}
	return auth.User{}, fmt.Errorf("%s: %w", name, auth.ErrNoUser)
}

// newPassword reads a password (twice from a terminal, once from stdin),
// checks it, and hashes it; "" and the exit code when it cannot.
func (e env) newPassword(name string, fromStdin bool) (string, int) {
	var password string
	switch {
	case fromStdin:
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", e.fail(errors.New("no password on stdin"), "pipe one line: printf '%s\\n' \"$PASSWORD\" | rampart user ...")
		}
		password = strings.TrimRight(line, "\r\n")
	case term.IsTerminal(int(e.stdin.Fd())):
		fmt.Fprintf(e.stderr, "Password for %s: ", name)
		first, err := term.ReadPassword(int(e.stdin.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", e.fail(err, "")
		}
		if err := auth.CheckPassword(string(first), name); err != nil {
			return "", e.fail(err, "")
		}
		fmt.Fprint(e.stderr, "Again: ")
		second, err := term.ReadPassword(int(e.stdin.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", e.fail(err, "")
		}
		if string(first) != string(second) {
			return "", e.fail(errors.New("the two passwords differ"), "")
		}
		password = string(first)
	default:
		return "", e.usageError("stdin is not a terminal, so the password cannot be asked for", "add --password-stdin to read it from one line of stdin")
	}
	if err := auth.CheckPassword(password, name); err != nil {
		return "", e.fail(err, "")
	}
	p := auth.DefaultParams
	hash, err := auth.Hash(password, p)
	if err != nil {
		return "", e.fail(err, "")
	}
	fmt.Fprintf(e.stdout, "Hashed with argon2id: memory %d KiB, %d passes, %d lane (the OWASP Password Storage Cheat Sheet's first choice).\n", p.MemoryKiB, p.Time, p.Threads)
	return hash, exitOK
}

func (e env) userTOTP(path, name, issuer string) int {
	u, err := findUser(path, name)
	if err != nil {
		return e.fail(err, userHint(err))
	}
	if u.TOTP != "" {
		return e.fail(fmt.Errorf("%s has TOTP already", name), "rampart user reset-mfa "+name+" removes it first")
	}
	key, err := auth.NewTOTP(issuer, name)
	if err != nil {
		return e.fail(err, "")
	}
	qr, err := auth.QRText(key.URL())
	if err != nil {
		return e.fail(err, "")
	}
	fmt.Fprintf(e.stdout, "Scan this with the authenticator app (Aegis, Google Authenticator, 1Password, Bitwarden...):\n\n%s\n", qr)
	fmt.Fprintf(e.stdout, "Or add it by hand: %s\nKey: %s\n\n", key.URL(), key.Secret())
	fmt.Fprint(e.stdout, "Enter the 6-digit code the app shows: ")
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return e.fail(errors.New("no code given: nothing saved"), "")
	}
	if _, ok := auth.TOTPStep(key.Secret(), line, time.Now()); !ok {
		return e.fail(errors.New("that code is not right: nothing saved"), "check the phone's clock, and type the newest code")
	}
	codes, hashes := auth.NewRecoveryCodes()
	if err := auth.ChangeUser(path, name, func(u *auth.User) error {
		if u.TOTP != "" {
			return fmt.Errorf("%s got TOTP meanwhile", name)
		}
		u.TOTP, u.Recovery = key.Secret(), hashes
		return nil
	}); err != nil {
		return e.fail(err, userHint(err))
	}
	fmt.Fprintf(e.stdout, "\nTOTP is on for %s. Recovery codes, each good once; they are not shown again:\n\n", name)
	for _, c := range codes {
		fmt.Fprintf(e.stdout, "  %s\n", c)
	}
	return exitOK
}
