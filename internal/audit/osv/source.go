package osv

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// maxRecord bounds one record read from the API or an export.
const maxRecord = 8 << 20

// DefaultAPI is OSV's public API.
const DefaultAPI = "https://api.osv.dev"

// API is OSV's query API at base (DefaultAPI, or a mirror in its shape):
// one querybatch call per 1,000 packages names the advisories, then each
// advisory is fetched whole from /v1/vulns/ID.
func API(base string, client *http.Client) Source {
	return &api{base: strings.TrimSuffix(base, "/"), client: client}
}

type api struct {
	base   string
	client *http.Client
}

func (a *api) String() string { return "the OSV API at " + a.base }

type query struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Version   string `json:"version"`
	PageToken string `json:"page_token,omitempty"`
}

type batchAnswer struct {
	Results []struct {
		Vulns []struct {
			ID string `json:"id"`
		} `json:"vulns"`
		NextPageToken string `json:"next_page_token"`
	} `json:"results"`
}

// maxPages bounds the pages one package's answer may run to.
const maxPages = 20

func (a *api) Records(ctx context.Context, pkgs []Package) ([][]Record, error) {
	ids := make([][]string, len(pkgs))
	for start := 0; start < len(pkgs); start += 1000 {
		chunk := pkgs[start:min(start+1000, len(pkgs))]
		qs, at := make([]query, len(chunk)), make([]int, len(chunk)) // at: the package each query asks for
		for i, p := range chunk {
			qs[i].Package.Ecosystem, qs[i].Package.Name, qs[i].Version = p.Ecosystem, p.Name, p.Version
			at[i] = start + i
		}
		for page := 0; len(qs) > 0; page++ {
			if page == maxPages {
				return nil, fmt.Errorf("%s: answers ran past %d pages", a, maxPages)
			}
			var ans batchAnswer
			if err := a.call(ctx, http.MethodPost, "/v1/querybatch", map[string]any{"queries": qs}, &ans); err != nil {
				return nil, err
			}
			if len(ans.Results) != len(qs) {
				return nil, fmt.Errorf("%s answered %d queries with %d results", a, len(qs), len(ans.Results))
			}
			var more []query
			var moreAt []int
			for i, r := range ans.Results {
				for _, v := range r.Vulns {
					ids[at[i]] = append(ids[at[i]], v.ID)
				}
				if r.NextPageToken != "" {
					q := qs[i]
					q.PageToken = r.NextPageToken
					more, moreAt = append(more, q), append(moreAt, at[i])
				}
			}
			qs, at = more, moreAt
		}
	}
	records, err := a.fetch(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([][]Record, len(pkgs))
	for i, list := range ids {
		for _, id := range list {
			out[i] = append(out[i], records[id])
		}
	}
	return out, nil
}

// fetch reads each advisory once, eight at a time.
func (a *api) fetch(ctx context.Context, ids [][]string) (map[string]Record, error) {
	records := map[string]Record{}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	seen := map[string]bool{}
	for _, list := range ids {
		for _, id := range list {
			if seen[id] {
				continue
			}
			seen[id] = true
			g.Go(func() error {
				var r Record
				if err := a.call(ctx, http.MethodGet, "/v1/vulns/"+url.PathEscape(id), nil, &r); err != nil {
					return err
				}
				mu.Lock()
				records[id] = r
				mu.Unlock()
				return nil
			})
		}
	}
	return records, g.Wait()
}

func (a *api) call(ctx context.Context, method, path string, body any, into any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", a, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s to %s %s", a, resp.Status, method, path)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRecord)).Decode(into); err != nil {
		return fmt.Errorf("%s: %s %s: %w", a, method, path, err)
	}
	return nil
}

// Dir is a directory of OSV's exports, laid out as OSV's bucket is
// (gsutil cp -r gs://osv-vulnerabilities/PyPI DIR): for each ecosystem,
// DIR/ECOSYSTEM/all.zip or the records as DIR/ECOSYSTEM/*.json. An
// ecosystem with a release, such as Debian:12, is also looked for under
// its name alone (DIR/Debian).
func Dir(path string) Source { return dir(path) }

type dir string

func (d dir) String() string { return "the OSV export in " + string(d) }

// ErrNoExport is returned when the directory holds no export of an
// ecosystem asked for.
var ErrNoExport = errors.New("no OSV export")

func (d dir) Records(ctx context.Context, pkgs []Package) ([][]Record, error) {
	out := make([][]Record, len(pkgs))
	byEco := map[string]map[string][]int{} // ecosystem → normalised name → package indexes
	for i, p := range pkgs {
		if byEco[p.Ecosystem] == nil {
			byEco[p.Ecosystem] = map[string][]int{}
		}
		n := Normalize(p.Ecosystem, p.Name)
		byEco[p.Ecosystem][n] = append(byEco[p.Ecosystem][n], i)
	}
	for eco, names := range byEco {
		err := d.each(ctx, eco, func(r Record) {
			took := map[int]bool{}
			for _, a := range r.Affected {
				if a.Package.Ecosystem != eco {
					continue
				}
				for _, i := range names[Normalize(eco, a.Package.Name)] {
					if !took[i] {
						took[i] = true
						out[i] = append(out[i], r)
					}
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// each calls visit with every record of an ecosystem's export.
func (d dir) each(ctx context.Context, eco string, visit func(Record)) error {
	for _, name := range []string{eco, strings.SplitN(eco, ":", 2)[0]} {
		base := filepath.Join(string(d), name)
		if zr, err := zip.OpenReader(filepath.Join(base, "all.zip")); err == nil {
			defer zr.Close()
			for _, f := range zr.File {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !strings.HasSuffix(f.Name, ".json") {
					continue
				}
				if err := decodeFile(f.Open, f.Name, visit); err != nil {
					return err
				}
			}
			return nil
		}
		files, _ := filepath.Glob(filepath.Join(base, "*.json"))
		if len(files) == 0 {
			continue
		}
		for _, f := range files {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := decodeFile(func() (io.ReadCloser, error) { return os.Open(f) }, f, visit); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w of %s in %s (want %s/all.zip or %s/*.json)", ErrNoExport, eco, string(d), eco, eco)
}

func decodeFile(open func() (io.ReadCloser, error), name string, visit func(Record)) error {
	rc, err := open()
	if err != nil {
		if _, named := err.(*fs.PathError); named {
			return err // os.Open's error names the file already
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	var r Record
	if err := json.NewDecoder(io.LimitReader(rc, maxRecord)).Decode(&r); err != nil {
		return fmt.Errorf("%s is not an OSV record: %w", name, err)
	}
	visit(r)
	return nil
}
