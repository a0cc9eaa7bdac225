package ratelimit

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
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

func TestFormFields(t *testing.T) {
	t.Parallel()
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	_ = w.WriteField("password", "x")
	_ = w.WriteField("email", "Bob@Example.test")
	w.Close()
	for _, tt := range []struct {
		name, ct, body, want string
	}{
		{"form", "application/x-www-form-urlencoded", "username=alice&password=x", "alice"},
		{"form, encoded as Werkzeug reads it", "application/x-www-form-urlencoded", "user%6Eame=al%69ce+b&password=x", "alice b"},
		{"form, the first of two", "application/x-www-form-urlencoded", "username=a1&username=a2", "a1"},
		{"multipart", w.FormDataContentType(), mp.String(), "Bob@Example.test"},
		{"JSON", "application/json", `{"login": "carol", "password": "x"}`, "carol"},
		{"JSON, not a string", "application/json", `{"username": 7}`, ""},
		{"no such field", "application/x-www-form-urlencoded", "name=dave", ""},
		{"not a form", "text/plain", "username=eve", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := withBody(request("POST", "/login", "192.0.2.1"), tt.ct, tt.body)
			got := firstField(formFields(r, config.LoginFields), config.LoginFields)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if b, _ := io.ReadAll(r.Body); string(b) != tt.body {
				t.Errorf("the upstream would get %q, not the whole body", b)
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
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := New("s", config.DefaultRateLimits, st, false)
	if err != nil {
		t.Fatal(err)
	}
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
