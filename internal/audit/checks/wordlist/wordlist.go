// Package wordlist is flask-unsign's wordlist of Flask SECRET_KEYs seen
// in public code (GitHub, Stack Overflow, GitLab, searchcode, Stack
// Exchange), by Luke Paris (Paradoxis), MIT licensed (LICENSE.md):
// https://github.com/Paradoxis/Flask-Unsign-Wordlist, release v2024.01
// (commit a8a00d0), wordlists/all.txt.
//
// The file here is that list, each line (a Python string literal) read
// as Python reads it (ast.literal_eval), the duplicates and the 21 lines
// that are no literal left out, joined by NUL bytes and gzipped:
// 52,775 secrets. Made with:
//
//	python3 -c 'import ast,gzip,sys; s=[];seen=set()
//	for l in open("all.txt"):
//	    try: v=ast.literal_eval(l)
//	    except Exception: continue
//	    if isinstance(v,str) and "\0" not in v and v not in seen: seen.add(v); s.append(v)
//	gzip.GzipFile("flask-unsign-all.bin.gz","wb",9,mtime=0).write("\0".join(s).encode())'
package wordlist

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"
	"strings"
	"sync"
)

//go:embed flask-unsign-all.bin.gz
var compressed []byte

// Secrets returns the list, decompressed on first use (about 1.7 MB).
var Secrets = sync.OnceValue(func() []string {
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		panic("wordlist: " + err.Error()) // embedded: a build that got it wrong
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		panic("wordlist: " + err.Error())
	}
	return strings.Split(string(b), "\x00")
})
