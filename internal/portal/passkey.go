package portal

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Passkeys (WebAuthn, go-webauthn) as a second factor: enrolled on the
// portal after the password, and used instead of a code. The browser's
// side is passkeyScript, the portal's only script.
const (
	PasskeyEnrolBegin  = Prefix + "passkey/enrol-begin"
	PasskeyEnrolFinish = Prefix + "passkey/enrol-finish"
	PasskeyLoginBegin  = Prefix + "passkey/login-begin"
	PasskeyLoginFinish = Prefix + "passkey/login-finish"
	// The sign-in with a passkey alone, from the login page.
	PasskeySigninBegin  = Prefix + "passkey/signin-begin"
	PasskeySigninFinish = Prefix + "passkey/signin-finish"
	RecoveryPath        = Prefix + "recovery"
)

// passkeyScript runs a ceremony when the passkey button is pressed: the
// options from the begin endpoint, the browser's credential API, the
// answer to the finish endpoint, then where it says to go. It is inline
// (under the response's nonce), with no handler attributes.
const passkeyScript = template.JS(`(() => {
  const button = document.getElementById("passkey");
  const error = document.getElementById("passkey-error");
  if (!button) return;
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
    button.disabled = true;
    error.textContent = "This browser cannot use passkeys here.";
    error.hidden = false;
    return;
  }
  button.addEventListener("click", async () => {
    const op = button.dataset.op;
    error.hidden = true;
    button.disabled = true;
    try {
      const next = button.dataset.next ? "?next=" + encodeURIComponent(button.dataset.next) : "";
      const begin = await fetch("/.rampart/passkey/" + op + "-begin" + next, {method: "POST"});
      const options = await begin.json();
      if (!begin.ok) throw new Error(options.error);
      const credential = op === "enrol"
        ? await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey)})
        : await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)});
      const finish = await fetch("/.rampart/passkey/" + op + "-finish", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(credential.toJSON())});
      const result = await finish.json();
      if (!finish.ok) throw new Error(result.error);
      location.assign(result.redirect);
    } catch (e) {
      error.textContent = e.name === "NotAllowedError" ? "The passkey was not used. Try again." : (e.message || "The passkey did not work.");
      error.hidden = false;
      button.disabled = false;
    }
  });
})();`)

// passkeysFor reports whether the browser can use a passkey on r's host:
// WebAuthn scopes credentials to a domain, never an IP address.
func passkeysFor(r *http.Request) bool {
	_, err := netip.ParseAddr(reqinfo.Host(r.Host))
	return err != nil
}

// relyingParty is the site as WebAuthn knows it: its host, and the origin
// the browser is on.
func relyingParty(r *http.Request) (*webauthn.WebAuthn, error) {
	host := reqinfo.Host(r.Host)
	return webauthn.New(&webauthn.Config{RPID: host, RPDisplayName: host, RPOrigins: []string{"https://" + r.Host},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: 2 * time.Minute},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: 2 * time.Minute},
		}})
}

// webUser is an auth.User as go-webauthn asks of it.
type webUser struct {
	auth.User
	creds []webauthn.Credential
}

func newWebUser(u auth.User) webUser {
	w := webUser{User: u}
	for _, p := range u.Passkeys {
		var c webauthn.Credential
		if json.Unmarshal([]byte(p.Credential), &c) == nil {
			w.creds = append(w.creds, c)
		}
	}
	return w
}

// WebAuthnID is an opaque handle of the user, not the name itself.
func (w webUser) WebAuthnID() []byte {
	h := sha256.Sum256([]byte("rampart-user:" + w.Name))
	return h[:]
}
func (w webUser) WebAuthnName() string                       { return w.Name }
func (w webUser) WebAuthnDisplayName() string                { return cmp.Or(w.DisplayName, w.Name) }
func (w webUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

// writeJSON answers a ceremony's fetch.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// ceremony checks a ceremony request: a same-origin POST of a half-done
// login (at enrolment, or at the second step), on a host passkeys work on.
func (p *Portal) ceremony(w http.ResponseWriter, r *http.Request, enrol bool) (*auth.Session, auth.User, *webauthn.WebAuthn, bool) {
	stage := auth.StageMFA
	if enrol {
		stage = auth.StageEnrol
	}
	if r.Method != http.MethodPost || p.origin.Check(r) != nil {
		jsonError(w, http.StatusForbidden, "This request was refused.")
		return nil, auth.User{}, nil, false
	}
	sess, user, err := p.halfDone(r, stage)
	switch {
	case errors.Is(err, errGone):
		jsonError(w, http.StatusUnauthorized, msgExpired)
		return nil, auth.User{}, nil, false
	case err != nil:
		jsonError(w, http.StatusServiceUnavailable, storeFailed.Message)
		return nil, auth.User{}, nil, false
	}
	rp, err := relyingParty(r)
	if err != nil || !passkeysFor(r) {
		jsonError(w, http.StatusBadRequest, "Passkeys cannot be used on this address.")
		return nil, auth.User{}, nil, false
	}
	if wait, _, err := p.lockout.Locked(r.Context(), p.attempt(r, user.Name)); err != nil || wait > 0 {
		jsonError(w, http.StatusTooManyRequests, lockedOut.Message)
		return nil, auth.User{}, nil, false
	}
	return sess, user, rp, true
}

func (p *Portal) servePasskeyBegin(w http.ResponseWriter, r *http.Request, enrol bool) {
	sess, user, rp, ok := p.ceremony(w, r, enrol)
	if !ok {
		return
	}
	wu := newWebUser(user)
	var options any
	var data *webauthn.SessionData
	var err error
	if enrol {
		var exclude []protocol.CredentialDescriptor
		for _, c := range wu.creds {
			exclude = append(exclude, c.Descriptor())
		}
		options, data, err = rp.BeginRegistration(wu, webauthn.WithExclusions(exclude),
			webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationPreferred}))
	} else {
		options, data, err = rp.BeginLogin(wu)
	}
	if err != nil {
		jsonError(w, http.StatusBadRequest, "This account has no passkey here.")
		return
	}
	if sess.Ceremony, err = json.Marshal(data); err == nil {
		err = p.sessions.Save(r.Context(), sess)
	}
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, storeFailed.Message)
		return
	}
	writeJSON(w, http.StatusOK, options)
}

// errPasskey is a ceremony the browser answered wrongly.
var errPasskey = errors.New("passkey refused")

func (p *Portal) servePasskeyFinish(w http.ResponseWriter, r *http.Request, enrol bool) {
	sess, user, rp, ok := p.ceremony(w, r, enrol)
	if !ok {
		return
	}
	var data webauthn.SessionData
	err := json.Unmarshal(sess.Ceremony, &data)
	// One answer per challenge, whatever it is.
	sess.Ceremony = nil
	_ = p.sessions.Save(r.Context(), sess)
	var cred *webauthn.Credential
	if err == nil {
		wu := newWebUser(user)
		if enrol {
			cred, err = rp.FinishRegistration(wu, data, r)
		} else {
			cred, err = rp.FinishLogin(wu, data, r)
		}
	}
	if err != nil || cred == nil {
		p.failed(r, p.attempt(r, user.Name), true, "passkey")
		jsonError(w, http.StatusUnauthorized, "The passkey did not work. Try again.")
		return
	}
	codes, ok := p.savePasskey(user.Name, cred, enrol)
	if !ok {
		jsonError(w, http.StatusServiceUnavailable, storeFailed.Message)
		return
	}
	if enrol {
		p.event(r, telemetry.MFAEnrolled, "passkey", user.Name)
	}
	next := localNext(sess.Next)
	if !p.start(w, r, auth.Session{User: user.Name, Factor: "passkey", Codes: codes, Next: next}) {
		return
	}
	p.event(r, telemetry.Login, "passkey", user.Name)
	if len(codes) > 0 {
		next = RecoveryPath
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": next})
}

// serveRecovery shows the recovery codes a passkey enrolment made, once.
func (p *Portal) serveRecovery(w http.ResponseWriter, r *http.Request) {
	sess, err := p.session(r)
	if err != nil || sess.Stage != auth.StageDone || len(sess.Codes) == 0 {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	codes := sess.Codes
	sess.Codes = nil
	if err := p.sessions.Save(r.Context(), sess); err != nil {
		p.fail(w, r, storeFailed.With(err.Error()))
		return
	}
	p.page(w, r, http.StatusOK, "recovery.html", pages.PortalData{Title: "Save your recovery codes", User: sess.User, Codes: codes, Next: localNext(sess.Next)})
}

// A passkey alone signs in: it is a key on the user's device, unlocked
// there by a fingerprint, face or PIN (user verification is required), so
// it is both factors and cannot be guessed. That is why it is not held
// back by the password lockouts (auth.Lockout): a guesser who locks an
// account's password from many addresses does not keep its owner out, on
// any browser their passkey reaches. The address's login rate still
// applies, and a failed assertion is logged.

var errNoSuchPasskey = errors.New("no account has this passkey")

// signinCeremony admits a passkey sign-in request: a same-origin POST,
// on a host passkeys work on, within the address's login rate.
func (p *Portal) signinCeremony(w http.ResponseWriter, r *http.Request) (*webauthn.WebAuthn, bool) {
	if r.Method != http.MethodPost || p.origin.Check(r) != nil {
		jsonError(w, http.StatusForbidden, "This request was refused.")
		return nil, false
	}
	rp, err := relyingParty(r)
	if err != nil || !passkeysFor(r) {
		jsonError(w, http.StatusBadRequest, "Passkeys cannot be used on this address.")
		return nil, false
	}
	if d, err := p.store.Allow(r.Context(), "loginflood:"+clientKey(r), p.flood); err == nil && !d.Allowed {
		jsonError(w, http.StatusTooManyRequests, tooManyLogins.Message)
		return nil, false
	}
	return rp, true
}

func (p *Portal) servePasskeySigninBegin(w http.ResponseWriter, r *http.Request) {
	rp, ok := p.signinCeremony(w, r)
	if !ok {
		return
	}
	options, data, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		jsonError(w, http.StatusBadRequest, "Passkeys cannot be used on this address.")
		return
	}
	ceremony, err := json.Marshal(data)
	if err != nil || !p.start(w, r, auth.Session{Stage: auth.StagePasskey, Ceremony: ceremony, Next: localNext(r.URL.Query().Get("next"))}) {
		if err != nil {
			jsonError(w, http.StatusServiceUnavailable, storeFailed.Message)
		}
		return
	}
	writeJSON(w, http.StatusOK, options)
}

func (p *Portal) servePasskeySigninFinish(w http.ResponseWriter, r *http.Request) {
	rp, ok := p.signinCeremony(w, r)
	if !ok {
		return
	}
	sess, err := p.session(r)
	if errors.Is(err, auth.ErrNoSession) || err == nil && (sess.Stage != auth.StagePasskey || sess.Ceremony == nil) {
		jsonError(w, http.StatusUnauthorized, msgExpired)
		return
	}
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, storeFailed.Message)
		return
	}
	var data webauthn.SessionData
	err = json.Unmarshal(sess.Ceremony, &data)
	_ = p.sessions.End(r.Context(), sess) // one answer per challenge, whatever it is
	var user auth.User
	var cred *webauthn.Credential
	if err == nil {
		cred, err = rp.FinishDiscoverableLogin(func(_, handle []byte) (webauthn.User, error) {
			u, ok := p.users.Find(func(u auth.User) bool { return bytes.Equal(newWebUser(u).WebAuthnID(), handle) })
			if !ok {
				return nil, errNoSuchPasskey
			}
			user = u
			return newWebUser(u), nil
		}, data, r)
	}
	if err != nil || cred == nil || user.Name == "" {
		p.event(r, telemetry.LoginFailed, "wrong_passkey", notAccount)
		jsonError(w, http.StatusUnauthorized, "The passkey did not work. Try again, or sign in with your password.")
		return
	}
	if _, ok := p.savePasskey(user.Name, cred, false); !ok {
		jsonError(w, http.StatusServiceUnavailable, storeFailed.Message)
		return
	}
	if !p.start(w, r, auth.Session{User: user.Name, Factor: "passkey"}) {
		return
	}
	p.event(r, telemetry.Login, "passkey", user.Name)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": localNext(sess.Next)})
}

// savePasskey stores a passkey's new signature count, or an enrolled one
// (with recovery codes for a user who has none, returned to be shown
// once).
func (p *Portal) savePasskey(user string, cred *webauthn.Credential, enrol bool) (codes []string, ok bool) {
	encoded, _ := json.Marshal(cred)
	err := p.users.Change(user, func(u *auth.User) error {
		for i, pk := range u.Passkeys {
			var c webauthn.Credential
			if json.Unmarshal([]byte(pk.Credential), &c) == nil && bytes.Equal(c.ID, cred.ID) {
				u.Passkeys[i].Credential = string(encoded) // the new signature count
				return nil
			}
		}
		if !enrol {
			return errPasskey
		}
		u.Passkeys = append(u.Passkeys, auth.Passkey{Name: "passkey added " + time.Now().UTC().Format("2006-01-02"), Credential: string(encoded)})
		if len(u.Recovery) == 0 {
			var hashes []string
			codes, hashes = auth.NewRecoveryCodes()
			u.Recovery = hashes
		}
		return nil
	})
	if err != nil {
		p.log.Error("passkey not saved", "kind", "users_file_error", "user", user, "error", err.Error())
		return nil, false
	}
	return codes, true
}
