package scan

import (
	"bytes"
	"context"
	"regexp"
	"strings"

	"golang.org/x/net/html"
)

// DefaultMaxPages is how many pages a crawl fetches unless told.
const DefaultMaxPages = 20

// MaxMaxPages bounds --max-pages.
const MaxMaxPages = 500

// avoid are links a crawler must not follow with a GET: they change
// state on sites that (wrongly) allow it.
var avoid = regexp.MustCompile(`(?i)log-?out|sign-?out|delete|remove|unsubscribe`)

// Crawl fetches pages of the target's origin breadth-first from / and
// /login, following links and form actions, up to Opts.MaxPages, and
// returns the paths it reached, in order. Every page is fetched through
// Get, so the checks that read them share the fetches; the crawl runs
// once per target, whoever asks first.
func (t *Target) Crawl(ctx context.Context) []string {
	t.crawlOnce.Do(func() { t.crawled = t.crawl(ctx) })
	return t.crawled
}

func (t *Target) crawl(ctx context.Context) []string {
	limit := t.Opts.MaxPages
	if limit <= 0 {
		limit = DefaultMaxPages
	}
	queue := []string{"/", "/login"}
	seen := map[string]bool{"/": true, "/login": true}
	var reached []string
	for len(queue) > 0 && len(reached) < limit && ctx.Err() == nil {
		p := queue[0]
		queue = queue[1:]
		page, err := t.Get(ctx, p)
		if err != nil {
			continue
		}
		reached = append(reached, p)
		for _, link := range Links(page) {
			if len(seen) >= 4*limit {
				break // enough candidates
			}
			if !seen[link] && !avoid.MatchString(link) {
				seen[link] = true
				queue = append(queue, link)
			}
		}
	}
	return reached
}

// CrawledHTML returns the HTML pages of the crawl, each with its path.
func (t *Target) CrawledHTML(ctx context.Context) (paths []string, pages []*Page) {
	for _, p := range t.Crawl(ctx) {
		if page, err := t.Get(ctx, p); err == nil && page.IsHTML() {
			paths, pages = append(paths, p), append(pages, page)
		}
	}
	return paths, pages
}

// IsHTML reports whether the page is an HTML document.
func (p *Page) IsHTML() bool {
	return strings.Contains(strings.ToLower(p.Header.Get("Content-Type")), "html")
}

// Links returns the same-origin links and form actions of an HTML page
// (and a same-origin redirect's target) as request paths, fragments
// dropped.
func Links(p *Page) []string {
	var out []string
	add := func(ref string) {
		if path, ok := p.SameOrigin(ref); ok {
			out = append(out, path)
		}
	}
	if loc := p.Header.Get("Location"); p.Status >= 300 && p.Status < 400 && loc != "" {
		add(loc)
	}
	if !p.IsHTML() {
		return out
	}
	for _, tag := range Tags(p, "a", "form") {
		if ref := tag.Attr["href"] + tag.Attr["action"]; ref != "" {
			add(ref)
		}
	}
	return out
}

// SameOrigin is ref, resolved against the page's URL, as a request path
// without its fragment; false when it leads to another origin.
func (p *Page) SameOrigin(ref string) (string, bool) {
	u, err := p.URL.Parse(strings.TrimSpace(ref))
	if err != nil || u.Scheme != p.URL.Scheme || !strings.EqualFold(u.Host, p.URL.Host) {
		return "", false
	}
	u.Fragment = ""
	return u.RequestURI(), true
}

// Tag is one start tag of a page: its name and attributes, lower case.
type Tag struct {
	Name string
	Attr map[string]string
}

// Tags returns the start tags of an HTML page with one of names.
func Tags(p *Page, names ...string) []Tag {
	var out []Tag
	z := html.NewTokenizer(bytes.NewReader(p.Body))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, hasAttr := z.TagName()
		want := false
		for _, n := range names {
			want = want || string(name) == n
		}
		if !want {
			continue
		}
		tag := Tag{Name: string(name), Attr: map[string]string{}}
		for hasAttr {
			var k, v []byte
			k, v, hasAttr = z.TagAttr()
			tag.Attr[string(k)] = string(v)
		}
		out = append(out, tag)
	}
}
