package csp

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sync"
)

// rewriter replaces every placeholder in a stream with the nonce. It holds
// back at most len(placeholder)-1 bytes, the most a placeholder split
// across two reads can have shown so far, so nothing is buffered whole.
type rewriter struct {
	src         io.Reader
	placeholder []byte
	nonce       []byte
	data        []byte // read from src, not yet rewritten
	out         []byte // rewritten; out[off:] is not handed out yet
	off         int
	eof         bool
	err         error
	bufs        *buffers // from pool; returned at the end of the stream
}

// buffers are a rewriter's working memory, recycled between responses.
type buffers struct{ chunk, data, out []byte }

var pool = sync.Pool{New: func() any { return &buffers{chunk: make([]byte, 32<<10)} }}

// NewRewriter returns a Reader of src with every placeholder replaced by
// nonce.
func NewRewriter(src io.Reader, placeholder, nonce string) io.Reader {
	return &rewriter{src: src, placeholder: []byte(placeholder), nonce: []byte(nonce)}
}

func (r *rewriter) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.eof {
			if r.bufs != nil {
				r.bufs.data, r.bufs.out = r.data[:0], r.out[:0]
				pool.Put(r.bufs)
				r.bufs, r.data, r.out, r.off = nil, nil, nil, 0
			}
			if r.err != nil {
				return 0, r.err
			}
			return 0, io.EOF
		}
		if r.bufs == nil {
			r.bufs = pool.Get().(*buffers)
			r.data, r.out = r.bufs.data[:0], r.bufs.out[:0]
		}
		n, err := r.src.Read(r.bufs.chunk)
		r.data = append(r.data, r.bufs.chunk[:n]...)
		if err != nil {
			r.eof = true
			if err != io.EOF {
				r.err = err
			}
		}
		r.rewrite()
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// rewrite moves what is certain from data to out, which has been handed
// out whole, so its buffer is reused.
func (r *rewriter) rewrite() {
	d := r.data
	out := r.out[:0]
	r.off = 0
	for {
		j := bytes.Index(d, r.placeholder)
		if j < 0 {
			end := len(d)
			if !r.eof {
				end -= partialSuffix(d, r.placeholder)
			}
			out = append(out, d[:end]...)
			d = d[end:]
			break
		}
		out = append(out, d[:j]...)
		out = append(out, r.nonce...)
		d = d[j+len(r.placeholder):]
	}
	r.out = out
	r.data = append(r.data[:0], d...)
}

// RewriteWhole replaces every placeholder in a body held in memory, in
// place when the nonce is no longer than the placeholder (the body only
// shrinks, so no write overtakes the reading), returning body itself when
// there is none.
func RewriteWhole(body []byte, placeholder, nonce string) []byte {
	if !bytes.Contains(body, []byte(placeholder)) {
		return body
	}
	if len(nonce) > len(placeholder) {
		return bytes.ReplaceAll(body, []byte(placeholder), []byte(nonce))
	}
	out := body[:0]
	for {
		i := bytes.Index(body, []byte(placeholder))
		if i < 0 {
			return append(out, body...)
		}
		out = append(append(out, body[:i]...), nonce...)
		body = body[i+len(placeholder):]
	}
}

// partialSuffix is the length of the longest end of b that is a proper
// start of placeholder.
func partialSuffix(b, placeholder []byte) int {
	for k := min(len(placeholder)-1, len(b)); k > 0; k-- {
		if bytes.HasSuffix(b, placeholder[:k]) {
			return k
		}
	}
	return 0
}

// RewriteBody wraps an upstream response body so that placeholders are
// replaced, decoding and re-encoding gzip on the fly. Other encodings are
// refused: the proxy asks upstreams for gzip or identity only on routes
// with a placeholder, so one arriving anyway is an error for the caller
// (passing it on would show the secret placeholder).
func RewriteBody(body io.ReadCloser, contentEncoding, placeholder, nonce string) (io.ReadCloser, error) {
	switch contentEncoding {
	case "", "identity":
		return readCloser{NewRewriter(body, placeholder, nonce), body}, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		pr, pw := io.Pipe()
		go func() {
			zw := gzip.NewWriter(pw)
			_, err := io.Copy(zw, NewRewriter(zr, placeholder, nonce))
			if err == nil {
				err = zw.Close()
			}
			pw.CloseWithError(err)
		}()
		return readCloser{pr, closers{pr, body}}, nil
	default:
		return nil, fmt.Errorf("cannot rewrite a body encoded as %q", contentEncoding)
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

type closers []io.Closer

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
