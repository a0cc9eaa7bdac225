// Package osvtest serves OSV records in the shape of OSV's API
// (https://google.github.io/osv.dev/api/): POST /v1/querybatch and
// GET /v1/vulns/ID. It answers a query by the package's name and
// ecosystem alone, one advisory per page, as a coarse mirror might, so
// that the client's paging and its own judging of versions are both
// exercised.
package osvtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a running OSV API.
type Server struct {
	*httptest.Server
	Queries atomic.Int64 // querybatch calls answered
}

// New serves every *.json record under dirs (searched one level deep).
func New(t testing.TB, dirs ...string) *Server {
	t.Helper()
	raw := map[string][]byte{}
	type rec struct {
		ID       string `json:"id"`
		Affected []struct {
			Package struct{ Ecosystem, Name string } `json:"package"`
		} `json:"affected"`
	}
	byPkg := map[string][]string{}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.json"))
		more, _ := filepath.Glob(filepath.Join(d, "*", "*.json"))
		for _, f := range append(files, more...) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var r rec
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			raw[r.ID] = b
			for _, a := range r.Affected {
				k := key(a.Package.Ecosystem, a.Package.Name)
				if l := byPkg[k]; len(l) == 0 || l[len(l)-1] != r.ID {
					byPkg[k] = append(byPkg[k], r.ID)
				}
			}
		}
	}
	s := &Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/querybatch", func(w http.ResponseWriter, r *http.Request) {
		s.Queries.Add(1)
		var in struct {
			Queries []struct {
				Package   struct{ Ecosystem, Name string } `json:"package"`
				Version   string                           `json:"version"`
				PageToken string                           `json:"page_token"`
			} `json:"queries"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type result struct {
			Vulns []map[string]string `json:"vulns,omitempty"`
			Next  string              `json:"next_page_token,omitempty"`
		}
		out := struct {
			Results []result `json:"results"`
		}{Results: []result{}}
		for _, q := range in.Queries {
			ids := byPkg[key(q.Package.Ecosystem, q.Package.Name)]
			page, _ := strconv.Atoi(q.PageToken)
			var res result
			if page < len(ids) {
				res.Vulns = []map[string]string{{"id": ids[page]}}
				if page+1 < len(ids) {
					res.Next = strconv.Itoa(page + 1)
				}
			}
			out.Results = append(out.Results, res)
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /v1/vulns/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := raw[r.PathValue("id")]
		if !ok {
			http.Error(w, `{"code":5,"message":"Bug not found."}`, http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

var pep503 = regexp.MustCompile(`[-_.]+`)

func key(eco, name string) string {
	if eco == "PyPI" {
		name = strings.ToLower(pep503.ReplaceAllString(name, "-"))
	}
	return eco + "\x00" + name
}
