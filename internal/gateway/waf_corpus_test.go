package gateway

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// ordinary is one request of the false-positive corpus: what a Flask
// app's users send every day.
type ordinary struct {
	name        string
	method      string
	target      string
	contentType string
	body        []byte
	// want is what the app must have parsed: a form field, a JSON key or
	// an uploaded file's name, with its value (a file's SHA-256).
	want map[string]string
}

var searches = []string{
	`O'Reilly books`, `"exact phrase" search`, `rock 'n' roll`, `don't stop believin'`,
	`C++ vs C# performance`, `50% off & free shipping`, `1/2 cup sugar; 2 eggs`,
	`"Harry Potter" AND "Goblet of Fire"`, `L'Oréal crème`, `Müller-Lüdenscheidt Straße`,
	`café -starbucks`, `mother's day gifts under $50`, `best way to select items from a list in python`,
	`東京 ラーメン`, `北京烤鸭`, `Москва театр`, `مطاعم في دبي`, `हिंदी समाचार`, `😀 emoji meaning`,
	`jane.doe+news@example.com`, `who's on first?`, `5'11" height in cm`, `AT&T vs T-Mobile`,
	`how to update node from 18 to 20`, `drop shipping business ideas`, `what is 2+2*3`,
}

var comments = []string{
	`I've been using this for 3 years -- it's "great", though the lid's a bit loose.`,
	`C'est l'été ! J'ai adoré « le spectacle » — merci à l'équipe.`,
	`Grüße aus Köln! Die Größe passt; Lieferung war schnell (2 Tage).`,
	`¿Cuándo llega? ¡Gracias! Pedido n.º 12345.`,
	`Produto ótimo, chegou antes do prazo. Recomendo!`,
	`Ottimo prodotto, l'ho già consigliato a un'amica.`,
	`Świetny produkt, polecam! Dostawa w 2 dni.`,
	`Ürün çok güzel, teşekkürler. Kargo hızlıydı.`,
	`Sản phẩm rất tốt, giao hàng nhanh.`,
	`Εξαιρετικό προϊόν, ευχαριστώ!`,
	`とても良い商品でした。また買います！`,
	`质量很好，物流很快。五星好评！`,
	`배송이 빨라요. 추천합니다!`,
	`منتج رائع، شكراً لكم!`,
	`מוצר מעולה, תודה!`,
	`Отличный товар, рекомендую! Цена/качество — 10/10.`,
	`बहुत अच्छा उत्पाद है।`,
	`Love it 😍👍 #happy`,
	"Line one\r\nLine two\r\n\r\n- first item\r\n- second item",
	`**bold** and _italic_, see [the docs](https://example.com/docs?id=1#setup)`,
	`The function returns null when the list is empty; maybe check len(items) == 0 first?`,
	`Mix 2 cups flour & 1 tsp salt; bake at 180°C (350°F) for 25–30 min.`,
	`Please update my order #4521 - change the quantity from 2 to 3.`,
	`Drop me a line when you're back in town.`,
	`My username is admin and I forgot my password, can you help?`,
	`Where can I find the terms & conditions?`,
	`I'd like to delete my account, please. Thanks!`,
	`Meeting notes: Q3 revenue +12%, costs -3%; next review on 12/01 at 10:30.`,
}

var jsonBodies = []string{
	`{"title":"Buy milk","done":false,"due":"2026-12-01T09:00:00Z","tags":["home","errand"]}`,
	`{"name":"Zoë O'Neil","bio":"Café owner in Zürich — \"coffee first\".","age":34}`,
	`{"items":[{"sku":"A-100","qty":2,"price":9.99}],"coupon":"WINTER-25%","note":"Leave it at the door, it's fine"}`,
	`{"message":"Hello, how are you? 👋","lang":"en"}`,
	`{"content":"<p>Hello <strong>world</strong>, see <a href=\"https://example.com/about\">this page</a>.</p>"}`,
	`{"email":"new@example.com","settings":{"theme":"dark","notifications":{"email":true,"sms":null}}}`,
	`{"text":"caf\u00e9 cr\u00e8me br\u00fbl\u00e9e","rating":4.5}`,
	`[1,2,3,5,8,13]`,
	`{"address":{"line1":"12 St. Mary's Rd.","city":"Dún Laoghaire","postcode":"A96 X2Y3"},"phone":"+353 1 234 5678"}`,
	`{"comment":"Let's select a date from the calendar and update everyone."}`,
}

// corpus is the whole false-positive corpus.
func corpus(t *testing.T) []ordinary {
	t.Helper()
	var c []ordinary
	for i, q := range searches {
		c = append(c, ordinary{name: fmt.Sprintf("search %d", i), method: "GET",
			target: "/search?q=" + url.QueryEscape(q) + "&page=2", want: map[string]string{"q": q}})
	}
	for _, target := range []string{
		"/?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday_2026&fbclid=IwAR3xYz_0aB-9cD",
		"/products/42?ref=search&variant=blue&size=M",
		"/blog/2026/11/my-first-post",
		"/assets/css/main.3f9a2b.css",
		"/api/items?fields=id,name,price&limit=50&offset=100&sort=-created_at",
		"/products?min=10&max=99.95&tags=red&tags=blue&from=2026-11-01&to=2026-11-30",
	} {
		c = append(c, ordinary{name: "page " + target, method: "GET", target: target})
	}
	for i, text := range comments {
		form := url.Values{"comment": {text}, "rating": {"5"}, "name": {"Seán O'Connor"}}
		c = append(c, ordinary{name: fmt.Sprintf("comment %d", i), method: "POST", target: "/comments",
			contentType: "application/x-www-form-urlencoded", body: []byte(form.Encode()), want: map[string]string{"comment": text}})
	}
	for _, form := range []url.Values{
		{"name": {"Seán O'Connor"}, "street": {"12 St. Mary's Rd."}, "city": {"Dún Laoghaire"}, "zip": {"A96 X2Y3"}, "phone": {"+353 1 234 5678"}},
		{"username": {"jane_doe"}, "email": {"jane@example.com"}, "password": {`Tr0ub4dor&3!'"`}, "confirm": {`Tr0ub4dor&3!'"`}},
		{"username": {"o'brien"}, "password": {"correct horse battery staple"}, "remember": {"on"}},
		{"website": {"https://www.example.org/about-us?ref=footer"}, "message": {"Hi! Could we talk about a partnership?"}},
	} {
		c = append(c, ordinary{name: "form " + strings.Join(slices.Sorted(maps.Keys(form)), ","), method: "POST", target: "/account",
			contentType: "application/x-www-form-urlencoded", body: []byte(form.Encode()), want: map[string]string{}})
	}
	for i, body := range jsonBodies {
		method := "POST"
		if i%3 == 1 {
			method = "PATCH"
		}
		c = append(c, ordinary{name: fmt.Sprintf("json %d", i), method: method, target: fmt.Sprintf("/api/items/%d", i),
			contentType: "application/json", body: []byte(body), want: map[string]string{}})
	}
	// GraphQL's query language is the corpus's one false positive at
	// paranoia 1: 942190 reads "query GetUser($id: ID!) {" as MSSQL. The
	// test's site excludes that rule on /graphql, as docs/waf.md says to.
	c = append(c, ordinary{name: "graphql", method: "POST", target: "/graphql", contentType: "application/json",
		body: []byte(`{"query":"query GetUser($id: ID!) { user(id: $id) { name email } }","variables":{"id":"42"}}`), want: map[string]string{}})
	c = append(c, uploadCorpus(t)...)
	return c
}

// uploads are multipart posts of real files: a PNG, a zip (as a .docx
// is), a CSV with quotes, a PDF header, text in French, a name with
// spaces and accents.
func uploadCorpus(t *testing.T) []ordinary {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 37)
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var pngBytes bytes.Buffer
	if err := png.Encode(&pngBytes, img); err != nil {
		t.Fatal(err)
	}
	var zipBytes bytes.Buffer
	zw := zip.NewWriter(&zipBytes)
	w, _ := zw.Create("word/document.xml")
	_, _ = io.WriteString(w, `<?xml version="1.0"?><w:document><w:body><w:p><w:t>Quarterly report</w:t></w:p></w:body></w:document>`)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	files := []struct{ field, name, ctype string }{
		{"photo", "holiday.png", "image/png"},
		{"document", "Résumé 2026.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"data", "contacts.csv", "text/csv"},
		{"report", "report.pdf", "application/pdf"},
		{"notes", "notes.txt", "text/plain"},
	}
	contents := [][]byte{pngBytes.Bytes(), zipBytes.Bytes(),
		[]byte("name,email,comment\r\nJane,jane@example.com,\"It's great, really\"\r\nJoão,joao@example.com,Ótimo\r\n"),
		[]byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
		[]byte("Souvenirs de l'Île-de-France : c'était magnifique.\nÀ bientôt !\n")}
	var out []ordinary
	for i, f := range files {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("description", "Holiday photos from l'Île-de-France — day 2")
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name=%q; filename=%q`, f.field, f.name)}
		h["Content-Type"] = []string{f.ctype}
		pw, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(contents[i])
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(contents[i])
		out = append(out, ordinary{name: "upload " + f.name, method: "POST", target: "/upload",
			contentType: mw.FormDataContentType(), body: body.Bytes(),
			want: map[string]string{"file:" + f.field: hex.EncodeToString(sum[:])}})
	}
	return out
}

// browser sets the headers Chrome sends from a page of the site itself.
func browser(r *http.Request) {
	r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8")
	r.Header.Set("Accept-Language", "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7")
	r.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	r.Header.Set("Cookie", "session=eyJ1c2VyX2lkIjo0Mn0.Z0Dk3A.h1l8YqL2n0sXc9-TuBJxwKfR0aE; theme=dark; consent=analytics%3Dno")
	r.Header.Set("Referer", "https://localhost/products?page=2")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "document")
	r.Header.Set("Sec-Ch-Ua", `"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"`)
	r.Header.Set("Sec-Ch-Ua-Platform", `"Windows"`)
	if r.Method != "GET" {
		r.Header.Set("Origin", "https://localhost")
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		r.Header.Set("Accept", "application/json")
		r.Header.Set("Sec-Fetch-Mode", "cors")
		r.Header.Set("Sec-Fetch-Dest", "empty")
		r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.qxE1_7bP0bI8m3ZtOuTQ2dCgWcSgZz3VwQ1yXkzjv8s")
	}
}

// TestWAFOrdinaryTraffic sends the false-positive corpus (searches with
// quotes and apostrophes, comments in many languages, forms, JSON APIs,
// file uploads, with Chrome's headers) through Rampart to a real Flask app
// under gunicorn: in block mode at paranoia 1 every request reaches the
// app, and the app parsed exactly what was sent. It then counts the
// matches at paranoia 1 and 2 (detect mode) and the requests paranoia 2
// would have blocked.
func TestWAFOrdinaryTraffic(t *testing.T) {
	t.Parallel()
	app := startGunicornApp(t, "ordinary:app")
	traffic := corpus(t)
	run := func(mode string, paranoia int) (*testGateway, map[string]string) {
		site := siteFor(app.upstream())
		site.WAF = config.WAF{Mode: mode, Paranoia: paranoia}
		site.Routes = []config.Route{{Match: "/graphql", WAF: &config.WAF{Exclusions: []string{"942190"}}}}
		tg := startGateway(t, config.Config{Sites: []config.Site{site}})
		c := tg.client(true)
		ids := map[string]string{} // request ID → corpus entry
		for _, o := range traffic {
			r, err := http.NewRequest(o.method, "https://localhost"+o.target, bytes.NewReader(o.body))
			if err != nil {
				t.Fatal(err)
			}
			browser(r)
			if o.contentType != "" {
				r.Header.Set("Content-Type", o.contentType)
			}
			resp, err := c.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ids[resp.Header.Get("X-Request-Id")] = o.name
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s, paranoia %d %s: %d %.300s", o.name, paranoia, mode, resp.StatusCode, body)
				continue
			}
			checkParsed(t, o, body)
		}
		return tg, ids
	}
	block1, ids1 := run("block", 1)
	detect2, ids2 := run("detect", 2)
	m1, _ := wafEvents(block1, ids1)
	m2, blocked2 := wafEvents(detect2, ids2)
	if len(m2) == 0 {
		t.Error("paranoia 2 matched nothing in the corpus: are the events read?")
	}
	t.Logf("false-positive corpus, %d requests: paranoia 1 blocks none, %d match a rule (%s); paranoia 2 would block %d (%s), %d match a rule",
		len(traffic), len(m1), ruleList(m1), len(blocked2), ruleList(blocked2), len(m2))
}

// checkParsed checks the app parsed o as sent: the JSON body, the wanted
// query or form field, the uploaded file's digest.
func checkParsed(t *testing.T, o ordinary, body []byte) {
	t.Helper()
	var got struct {
		Path  string
		Args  map[string][]string
		Form  map[string][]string
		JSON  any
		Files map[string]struct{ Filename, Sha256 string }
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Errorf("%s: the app answered %.200q", o.name, body)
		return
	}
	if o.contentType == "application/json" {
		var sent any
		_ = json.Unmarshal(o.body, &sent)
		if fmt.Sprint(sent) != fmt.Sprint(got.JSON) {
			t.Errorf("%s: the app parsed %v, not %v", o.name, got.JSON, sent)
		}
	}
	for k, v := range o.want {
		var have string
		switch {
		case strings.HasPrefix(k, "file:"):
			have = got.Files[strings.TrimPrefix(k, "file:")].Sha256
		case o.method == "GET":
			have = strings.Join(got.Args[k], ",")
		default:
			have = strings.Join(got.Form[k], ",")
		}
		if have != v {
			t.Errorf("%s: the app got %s=%q, want %q", o.name, k, have, v)
		}
	}
}

// wafEvents reads a gateway's waf_match events: per corpus entry the rules
// that matched, and the entries the CRS's blocking evaluation (949110)
// would have stopped.
func wafEvents(tg *testGateway, ids map[string]string) (matched, blocked map[string][]string) {
	matched, blocked = map[string][]string{}, map[string][]string{}
	for line := range strings.Lines(tg.logs.String()) {
		var e struct {
			Kind, Reason string
			RequestID    string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Kind != "waf_match" {
			continue
		}
		name := ids[e.RequestID]
		if e.Reason == "949110" {
			blocked[name] = matched[name]
			continue
		}
		matched[name] = append(matched[name], e.Reason)
	}
	return matched, blocked
}

func ruleList(m map[string][]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, name+": "+strings.Join(m[name], " "))
	}
	return strings.Join(parts, "; ")
}

// TestWAFJudgesTheForwardedRequest: the firewall judges the request the
// app will get. Rampart answers Expect: 100-continue itself and forwards
// the body whole without it, so the CRS must not hold it against the
// client, while a header that does reach the app still counts.
func TestWAFJudgesTheForwardedRequest(t *testing.T) {
	t.Parallel()
	app := startGunicornApp(t, "ordinary:app")
	site := siteFor(app.upstream())
	site.WAF = config.WAF{Mode: "block", Paranoia: 1}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	c := tg.client(false)
	c.Transport.(*http.Transport).ExpectContinueTimeout = testutil.WaitTimeout // wait for the 100, as curl does
	post := func(header ...string) (int, string) {
		r, err := http.NewRequest("POST", "https://localhost/comments", strings.NewReader("comment=Looks+good+to+me"))
		if err != nil {
			t.Fatal(err)
		}
		browser(r)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post("Expect", "100-continue"); code != http.StatusOK || !strings.Contains(body, "Looks good to me") {
		t.Errorf("a form posted with Expect: 100-continue: %d %.300s", code, body)
	}
	if code, _ := post("X-HTTP-Method-Override", "DELETE"); code != http.StatusOK {
		t.Errorf("a header Rampart drops before the app still counted: %d", code)
	}
	if code, _ := post("Content-Encoding", "gzip"); code != http.StatusForbidden {
		t.Errorf("a restricted header that does reach the app was not held against it: %d", code)
	}
}
