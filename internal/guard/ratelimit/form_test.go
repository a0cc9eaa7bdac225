package ratelimit

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/store"
)

// withBody gives r a buffered, replayable body, as bodylimit.Buffer does.
func withBody(r *http.Request, contentType, body string) *http.Request {
	rd := strings.NewReader(body)
	r.Body = io.NopCloser(rd)
	r.GetBody = func() (io.ReadCloser, error) {
		_, err := rd.Seek(0, io.SeekStart)
		return io.NopCloser(rd), err
	}
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Type", contentType)
	return r
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("password", "x")
	_ = w.WriteField("email", "Bob@Example.test")
	w.Close()
	odd := "--B\r\nContent-Disposition: form-data; name=\"user\"; name=\"username\"\r\n\r\nmallory\r\n--B--\r\n"
	for _, tt := range []struct {
		name, target, ct, body string
		want                   []string
		known                  bool
	}{
		{"form", "/login", "application/x-www-form-urlencoded", "username=alice&password=x", []string{"alice"}, true},
		{"form, encoded as Werkzeug reads it", "/login", "application/x-www-form-urlencoded", "user%6Eame=al%69ce+b&password=x", []string{"alice b"}, true},
		{"form, the first of two", "/login", "application/x-www-form-urlencoded", "username=a1&username=a2", []string{"a1"}, true},
		{"a decoy in another field", "/login", "application/x-www-form-urlencoded", "username=decoy7&email=alice", []string{"decoy7", "alice"}, true},
		{"in the query (request.values)", "/login?username=Alice", "application/x-www-form-urlencoded", "password=x", []string{"alice"}, true},
		{"query and body", "/login?username=decoy", "application/x-www-form-urlencoded", "username=alice", []string{"decoy", "alice"}, true},
		{"a repeated Content-Type option", "/login", "application/x-www-form-urlencoded; charset=utf-8; charset=latin1", "username=alice", []string{"alice"}, true},
		{"an odd option", "/login", "Application/X-WWW-Form-URLEncoded ; foo; =bar", "username=alice", []string{"alice"}, true},
		{"multipart", "/login", w.FormDataContentType(), mp.String(), []string{"bob@example.test"}, true},
		{"multipart, a boundary given twice", "/login", "multipart/form-data; boundary=X; boundary=B", odd, []string{"mallory"}, true},
		{"JSON", "/login", "application/json", `{"login": "carol", "password": "x"}`, []string{"carol"}, true},
		{"application/*+json", "/login", "application/vnd.api+json", `{"username": "carol"}`, []string{"carol"}, true},
		{"JSON with a BOM", "/login", "application/json", "\xef\xbb\xbf{\"username\": \"carol\"}", []string{"carol"}, true},
		{"JSON with 1e999", "/login", "application/json", `{"n": 1e999, "username": "carol"}`, []string{"carol"}, true},
		{"JSON, a key twice", "/login", "application/json", `{"username": "decoy", "username": "carol"}`, []string{"decoy", "carol"}, true},
		{"JSON Go cannot read", "/login", "application/json", `{"username": "carol", "n": NaN}`, []string{"carol"}, false},
		{"JSON in UTF-16", "/login", "application/json", "\xff\xfe{\x00}\x00", nil, false},
		{"JSON sent as text, for get_json(force=True)", "/login", "text/plain", `{"username": "carol"}`, []string{"carol"}, true},
		{"JSON, not a string", "/login", "application/json", `{"username": 7}`, nil, true},
		{"no such field", "/login", "application/x-www-form-urlencoded", "name=dave", nil, true},
		{"not a form", "/login", "text/plain", "username=eve", nil, true},
		{"a cut-off multipart form", "/login", "multipart/form-data; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice", nil, false},
		{"two media types", "/login", "application/x-www-form-urlencoded, text/plain", "username=alice", nil, true},
		{"padded past what is read", "/login", "application/x-www-form-urlencoded", "username=alice&pad=" + strings.Repeat("x", formLimit), nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := withBody(request("POST", tt.target, "192.0.2.1"), tt.ct, tt.body)
			got, known := accounts(r, config.LoginFields)
			if !slices.Equal(got, tt.want) || known != tt.known {
				t.Errorf("got %q, known %v; want %q, %v", got, known, tt.want, tt.known)
			}
			if b, _ := io.ReadAll(r.Body); string(b) != tt.body {
				t.Errorf("the upstream would get %d bytes, not the whole body", len(b))
			}
		})
	}
}

// TestLoginLimitsSpareAnOffice: with the default rules, one address may
// log in many different accounts at once (an office behind NAT), while
// guesses at one account are held to the small per-account burst, however
// the name is cased.
func TestLoginLimitsSpareAnOffice(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	login := func(user string) bool {
		r := withBody(request("POST", "/login", "192.0.2.1"), "application/x-www-form-urlencoded", "username="+user+"&password=pw")
		return p.Check(r) == nil && p.CheckBody(r) == nil
	}
	office := 0
	for i := range 50 {
		if login("user" + string(rune('a'+i%26)) + string(rune('a'+i/26))) {
			office++
		}
	}
	guesses := 0
	for i := range 30 {
		if login([]string{"Alice", "alice", " ALICE"}[i%3]) {
			guesses++
		}
	}
	if office != 50 || guesses > 6 {
		t.Errorf("50 people logging in at once: %d admitted; 30 guesses at one account: %d admitted (want 50, at most 5 or 6)", office, guesses)
	}
}

// TestAccountLimitAcrossAddresses: a form: rule counts the account from
// every address together, where ip+form: gives each address its own.
func TestAccountLimitAcrossAddresses(t *testing.T) {
	t.Parallel()
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rules := []config.RateLimit{
		{Match: "/login", Rate: "5/m", Burst: 5, Key: "ip+form:username"},
		{Match: "/login", Rate: "30/h", Burst: 10, Key: "form:username"},
	}
	p, err := New("s", rules, st, false)
	if err != nil {
		t.Fatal(err)
	}
	admitted := map[string]int{}
	for i := range 300 {
		for _, user := range []string{"alice", "bob"} {
			r := withBody(request("POST", "/login", fmt.Sprintf("2001:db8:%x::1", i)), "application/x-www-form-urlencoded", "username="+user)
			if p.CheckBody(r) == nil {
				admitted[user]++
			}
		}
	}
	if admitted["alice"] != 10 || admitted["bob"] != 10 {
		t.Errorf("300 guesses per account from 300 addresses: %v admitted, want 10 each", admitted)
	}
}

// TestUnknownAccountsShareABucket: a body that cannot be read as the app
// reads it gets no fresh bucket per spelling: it is counted as one
// unknown account, per address and across addresses.
func TestUnknownAccountsShareABucket(t *testing.T) {
	t.Parallel()
	p := defaultPolicy(t)
	admitted := 0
	for i := range 300 {
		body := fmt.Sprintf(`{"username": "alice", "n": NaN, "pad%d": 1}`, i)
		r := withBody(request("POST", "/login", fmt.Sprintf("2001:db8:%x::1", i%30)), "application/json", body)
		if p.CheckBody(r) == nil {
			admitted++
		}
	}
	// The account rule's 10 at once, shared; the per-address rule's 5
	// are never the tighter one here.
	if admitted != 10 {
		t.Errorf("300 unreadable logins from 30 addresses: %d admitted, want 10", admitted)
	}
}

// defaultPolicy is the default rate limits on an embedded store of the
// test's own.
func defaultPolicy(t *testing.T) *Policy {
	t.Helper()
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := New("s", config.DefaultRateLimits, st, false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
