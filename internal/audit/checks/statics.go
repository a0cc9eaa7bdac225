package checks

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// The two nginx exposures that live off /, under the prefixes a site
// serves its files from.
var statics = []scan.Check{
	{
		ID: "exposure.alias_traversal", Title: "Static prefixes that reach the directory above (nginx alias off by a slash)", Severity: scan.High, Reference: refAliasTraversal,
		Fix: "End the location and the alias alike: location /static/ { alias /srv/app/static/; }. Without the location's slash, /static../app.py is /srv/app/static/../app.py. Behind Rampart, let the app (or a location that ends in a slash) serve the files.",
		Run: checkAliasTraversal,
	},
	{
		ID: "exposure.autoindex", Title: "Directory listings", Severity: scan.Medium, Reference: refExposure,
		Fix: "Turn listings off (nginx autoindex off, the default; Apache Options -Indexes): a listing shows every file, backups and uploads included.",
		Run: checkAutoindex,
	},
}

const refAliasTraversal = "https://github.com/yandex/gixy/blob/master/docs/en/plugins/aliastraversal.md"

// listing is what the directory listings of nginx (autoindex), Apache
// (mod_autoindex) and Python's http.server look like.
var listing = regexp.MustCompile(`(?i)<title>\s*(Index of /|Directory listing for /)`)

func looksLikeListing(b []byte) bool { return listing.Match(b) }

// maxPrefixes bounds how many static prefixes are probed.
const maxPrefixes = 8

// staticPrefix is a first path segment a site serves files under, and
// the first file seen there ("" when none was).
type staticPrefix struct{ dir, sample string }

// staticPrefixes returns the prefixes of the files the crawled pages load
// or link to (/static/site.css gives /static), Flask's /static first
// whether seen or not, at most maxPrefixes.
func staticPrefixes(ctx context.Context, t *scan.Target) []staticPrefix {
	// Both checks ask; the pages are parsed once.
	return t.Memo("statics.prefixes", func() any { return findPrefixes(ctx, t) }).([]staticPrefix)
}

func findPrefixes(ctx context.Context, t *scan.Target) []staticPrefix {
	out := []staticPrefix{{dir: "/static"}}
	index := map[string]int{"/static": 0}
	_, pages := t.CrawledHTML(ctx)
	for _, page := range pages {
		for _, tag := range scan.Tags(page, "script", "link", "img", "source", "video", "audio", "a") {
			ref := tag.Attr["src"]
			if tag.Name == "link" || tag.Name == "a" {
				ref = tag.Attr["href"]
			}
			u, err := page.URL.Parse(strings.TrimSpace(ref))
			if ref == "" || err != nil || u.Scheme != page.URL.Scheme || !strings.EqualFold(u.Host, page.URL.Host) || u.RawQuery != "" {
				continue
			}
			dir, rest, ok := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
			if !ok || dir == "" || strings.Contains(dir, "..") || rest == "" || strings.HasSuffix(rest, "/") {
				continue
			}
			if tag.Name == "a" && !strings.Contains(rest[strings.LastIndex(rest, "/")+1:], ".") {
				continue // a page, not a file
			}
			dir = "/" + dir
			i, seen := index[dir]
			switch {
			case !seen && len(out) < maxPrefixes:
				index[dir] = len(out)
				out = append(out, staticPrefix{dir, dir + "/" + rest})
			case seen && out[i].sample == "":
				out[i].sample = dir + "/" + rest
			}
		}
	}
	return out
}

// aliasFiles are what sits next to a static directory in a Flask project.
var aliasFiles = []struct {
	name, what string
	looks      func([]byte) bool
}{
	{"app.py", "Python source", looksLikePython}, {"wsgi.py", "Python source", looksLikePython},
	{"config.py", "Python source", looksLikePython}, {".env", "a .env", looksLikeDotenv},
	{".git/HEAD", "a .git", looksLikeGit}, {"", "a listing", looksLikeListing},
}

func checkAliasTraversal(ctx context.Context, t *scan.Target) (scan.Status, string) {
	base := baseline(ctx, t)
	prefixes := staticPrefixes(ctx, t)
	var probes []probe
	var dirs []string
	for _, p := range prefixes {
		dirs = append(dirs, p.dir)
		for _, f := range aliasFiles {
			probes = append(probes, probe{name: f.what + " from the directory above " + p.dir + "/", path: p.dir + "../" + f.name, looks: f.looks})
		}
		// A file known to be there, reached the long way round: the same
		// bytes prove the traversal whatever the project's files are.
		if p.sample == "" {
			continue
		}
		orig, err := t.Get(ctx, p.sample)
		if err != nil || orig.Status != 200 || len(orig.Body) == 0 || sameAs(orig, base) {
			continue
		}
		probes = append(probes, probe{name: p.sample, path: p.dir + "../" + p.sample[1:], looks: func(b []byte) bool { return bytes.Equal(b, orig.Body) }})
	}
	served, missed, why := fetchAll(ctx, t, base, probes)
	if len(served) > 0 {
		var found []string
		for _, hit := range served {
			found = append(found, fmt.Sprintf("%s serves %s", hit.path, hit.name))
		}
		return scan.Fail, strings.Join(found, "; ")
	}
	if len(missed) > 0 {
		return couldNotJudge(missed, why)
	}
	return scan.Pass, fmt.Sprintf("%d probes under %s: none reaches the directory above", len(probes), strings.Join(dirs, ", "))
}

func checkAutoindex(ctx context.Context, t *scan.Target) (scan.Status, string) {
	base := baseline(ctx, t)
	probes := []probe{{name: "/", path: "/", looks: looksLikeListing}}
	for _, p := range staticPrefixes(ctx, t) {
		probes = append(probes, probe{name: p.dir + "/", path: p.dir + "/", looks: looksLikeListing})
	}
	served, missed, why := fetchAll(ctx, t, base, probes)
	if len(served) > 0 {
		var found []string
		for _, hit := range served {
			found = append(found, hit.path)
		}
		return scan.Fail, "a directory listing at " + strings.Join(found, ", ")
	}
	if len(missed) > 0 {
		return couldNotJudge(missed, why)
	}
	var paths []string
	for _, p := range probes {
		paths = append(paths, p.path)
	}
	return scan.Pass, "no directory listing at " + strings.Join(paths, ", ")
}
