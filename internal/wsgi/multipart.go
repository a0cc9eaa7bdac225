package wsgi

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// A multipart/form-data body is read here as Werkzeug 3 reads it: its
// MultipartDecoder (sansio/multipart.py) fed by MultiPartParser
// (formparser.py) in reads of 64 KiB. Go's mime/multipart reads another
// language: it takes no CR-only line breaks, wants a line break before
// the first boundary, and folds no header lines, so a form written for
// the difference carries a file Go never sees past a guard. The port
// keeps Werkzeug's states, regular expressions and search positions;
// TestMultipartAgainstWerkzeug feeds the same bodies to both.

// Werkzeug's line break is CRLF, LF or CR alone; its horizontal space is
// [^\S\n\r] over bytes, which is space, tab, form feed and vertical tab
// (RE2's \s lacks \v, so it is spelled out).
const (
	lineBreak = `(?:\r\n|\n|\r)`
	hspace    = `[ \t\f\v]`
	// searchExtra is SEARCH_EXTRA_LENGTH: how far back a search starts
	// again, for a line break and boundary cut by a read.
	searchExtra = 8
	// formChunk is the size of MultiPartParser's reads.
	formChunk = 64 << 10
)

var (
	blankLineRE          = regexp.MustCompile(`(?:\r\n\r\n|\r\r|\n\n)`)
	lineBreakRE          = regexp.MustCompile(`^` + lineBreak)
	headerContinuationRE = regexp.MustCompile(lineBreak + `[ \t]`)
)

// ErrMultipart is a body Werkzeug gives up on (a ValueError in its
// decoder). Flask then hands the app an empty request.form and
// request.files: no part of such a body reaches the app.
var ErrMultipart = errors.New("not a form Werkzeug can read")

// PartHeader is what Werkzeug makes of one part's header block.
type PartHeader struct {
	// Name is the Content-Disposition's name option ("" when absent).
	Name string
	// Filename is its filename option, and IsFile whether there was
	// one: only a part with a filename is a file (request.files), even
	// an empty one.
	Filename string
	IsFile   bool
	// Header holds the header lines in order, names as sent.
	Header [][2]string
}

// Get is the first value of the header name, in any case, as Werkzeug's
// Headers.get returns it; "" when absent.
func (h *PartHeader) Get(name string) string {
	for _, kv := range h.Header {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

type mpState int

const (
	statePreamble mpState = iota
	statePart
	stateDataStart
	stateData
	stateEpilogue
)

// MultipartReader reads the parts of a multipart/form-data body in
// order. Next returns each part's header, and Read its data.
type MultipartReader struct {
	r          io.Reader
	boundary   []byte
	dashed     []byte // "--" and the boundary, as the data is searched for it
	preambleRE *regexp.Regexp
	boundaryRE *regexp.Regexp
	buf        []byte
	base       int64 // the body offset of buf[0]
	state      mpState
	complete   bool
	searchPos  int
	chunk      []byte

	// pending is the current part's data not yet read; inPart whether
	// the part has more to come.
	pending []byte
	inPart  bool
	// The current part's header lines and data, as body offsets.
	headerStart, headerEnd, dataStart int64
}

// HeaderSpan is where the current part's header lines are in the body:
// from the first byte after the boundary's line to the line break that
// ends the last one (the blank line follows).
func (m *MultipartReader) HeaderSpan() (start, end int64) { return m.headerStart, m.headerEnd }

// DataOffset is where the current part's data starts in the body, once
// Read has returned its first bytes (or io.EOF); a part's data is one
// run of bytes.
func (m *MultipartReader) DataOffset() int64 { return m.dataStart }

// drop removes the first n bytes of the buffer.
func (m *MultipartReader) drop(n int) {
	m.buf = m.buf[n:]
	m.base += int64(n)
}

// NewMultipartReader reads r, a body whose Content-Type named boundary
// (as OptionsHeader reads it). An empty boundary, or one that is not
// ASCII, is ErrMultipart from the first Next, as in Werkzeug.
func NewMultipartReader(r io.Reader, boundary string) *MultipartReader {
	m := &MultipartReader{r: r, boundary: []byte(boundary), dashed: []byte("--" + boundary)}
	if boundary == "" || !isASCII(boundary) {
		return m
	}
	b := regexp.QuoteMeta(boundary)
	m.preambleRE = regexp.MustCompile(lineBreak + `?--` + b + `(--` + hspace + `*` + lineBreak + `?|` + hspace + `*` + lineBreak + `)`)
	m.boundaryRE = regexp.MustCompile(lineBreak + `--` + b + `(--` + hspace + `*` + lineBreak + `?|` + hspace + `*` + lineBreak + `)`)
	return m
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Next skips what is left of the current part and returns the next
// part's header; io.EOF at the closing boundary (what follows it is
// Werkzeug's epilogue, never read). Any other error means Werkzeug
// would read no part of the body (ErrMultipart), or the body could not
// be read.
func (m *MultipartReader) Next() (*PartHeader, error) {
	if m.preambleRE == nil {
		return nil, ErrMultipart
	}
	m.pending = nil
	for m.inPart {
		if _, err := m.nextData(); err != nil {
			return nil, err
		}
	}
	for {
		switch m.state {
		case statePreamble:
			loc := m.preambleRE.FindSubmatchIndex(m.buf[m.searchPos:])
			if loc == nil {
				m.searchPos = max(0, len(m.buf)-len(m.boundary)-searchExtra)
				break
			}
			if bytes.HasPrefix(m.buf[m.searchPos+loc[2]:], []byte("--")) {
				m.state = stateEpilogue
			} else {
				m.state = statePart
			}
			m.drop(m.searchPos + loc[1])
			m.searchPos = 0
			continue
		case statePart:
			loc := blankLineRE.FindIndex(m.buf[m.searchPos:])
			if loc == nil {
				m.searchPos = max(0, len(m.buf)-searchExtra)
				break
			}
			start, end := m.searchPos+loc[0], m.searchPos+loc[1]
			h, err := partHeader(m.buf[:start])
			if err != nil {
				return nil, err
			}
			m.headerStart, m.headerEnd = m.base, m.base+int64(start)
			// The last header line ends with one line break; the body
			// starts with the other half of the blank line.
			m.drop((start + end) / 2)
			m.state, m.searchPos, m.inPart = stateDataStart, 0, true
			return h, nil
		case stateEpilogue:
			return nil, io.EOF
		}
		if err := m.fill(); err != nil {
			return nil, err
		}
	}
}

// fill receives the next read of the body into the buffer. Past the end
// of the body, a state that needs more data is the ValueError Werkzeug
// raises.
func (m *MultipartReader) fill() error {
	if m.complete {
		return ErrMultipart
	}
	if m.chunk == nil {
		m.chunk = make([]byte, formChunk)
	}
	n, err := io.ReadFull(m.r, m.chunk)
	m.buf = append(m.buf, m.chunk[:n]...)
	if n == 0 && err == io.EOF {
		m.complete = true
		return nil
	}
	if err == io.ErrUnexpectedEOF {
		return nil
	}
	return err
}

// Read reads the current part's data, as Werkzeug's Data events carry
// it; io.EOF at the part's end.
func (m *MultipartReader) Read(p []byte) (int, error) {
	for len(m.pending) == 0 {
		if !m.inPart {
			return 0, io.EOF
		}
		data, err := m.nextData()
		if err != nil {
			return 0, err
		}
		m.pending = data
	}
	n := copy(p, m.pending)
	m.pending = m.pending[n:]
	return n, nil
}

// nextData is the current part's next Data event, reading the body as it
// needs; the part ends (inPart false) with the event that has no more.
func (m *MultipartReader) nextData() ([]byte, error) {
	for {
		start := m.state == stateDataStart
		data, del, more, ok := m.parseData(start)
		if ok {
			if start {
				// The data follows the line break that parseData skipped.
				m.dataStart = m.base + int64(lineBreakRE.FindIndex(m.buf)[1])
				if more {
					m.state = stateData
				}
			}
			m.drop(del)
			m.inPart = more
			return data, nil
		}
		if err := m.fill(); err != nil {
			return nil, err
		}
	}
}

// parseData is _parse_data: the data of the buffer up to the next
// boundary or a partial one at its end, where to cut the buffer, and
// whether the part has more data. ok is false where Werkzeug returns
// NEED_DATA instead of an event (DATA with nothing to give).
func (m *MultipartReader) parseData(start bool) (data []byte, del int, more, ok bool) {
	buf := m.buf
	dataStart := 0
	if start {
		// The header parse always leaves a line break here.
		dataStart = lineBreakRE.FindIndex(buf)[1]
	}
	var dataEnd int
	if !bytes.Contains(buf, m.dashed) {
		dataEnd = m.lastPartialBoundary(buf[dataStart:]) + dataStart
		del, more = dataEnd, true
	} else if loc := m.boundaryRE.FindSubmatchIndex(buf); loc != nil {
		if bytes.HasPrefix(buf[loc[2]:], []byte("--")) {
			m.state = stateEpilogue
		} else {
			m.state = statePart
		}
		dataEnd, del, more = loc[0], loc[1], false
	} else {
		dataEnd = m.lastPartialBoundary(buf[dataStart:]) + dataStart
		del, more = dataEnd, true
	}
	// Werkzeug slices data[data_start:data_end], empty when the end
	// comes first.
	if dataEnd < dataStart {
		dataEnd = dataStart
	}
	data = buf[dataStart:dataEnd]
	if !start && len(data) == 0 && more {
		return nil, 0, true, false
	}
	return data, del, more, true
}

// lastPartialBoundary is _last_partial_boundary_index: where a boundary
// cut by the end of the buffer could start.
//
// Only a line break within a boundary's length of the end counts, so
// only that tail is searched (LastIndexByte is a plain loop: over a
// whole 64 KiB read it was most of reading a large form).
func (m *MultipartReader) lastPartialBoundary(data []byte) int {
	from := max(0, len(data)-len("\r\n--")-len(m.boundary))
	tail := data[from:]
	at := len(data)
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		at = from + i
	}
	if i := bytes.LastIndexByte(tail, '\r'); i >= 0 {
		at = min(at, from+i)
	}
	return at
}

// partHeader is _parse_headers and the part's name and filename: folded
// lines joined, one header per line, trimmed; a header block that is not
// UTF-8, or has no Content-Disposition, is a ValueError.
func partHeader(block []byte) (*PartHeader, error) {
	block = headerContinuationRE.ReplaceAll(block, []byte(" "))
	h := &PartHeader{}
	for _, line := range splitLines(block) {
		line = bytes.Trim(line, " \t\n\r\v\f")
		if len(line) == 0 {
			continue
		}
		if !utf8.Valid(line) {
			return nil, ErrMultipart
		}
		name, value, _ := strings.Cut(string(line), ":")
		h.Header = append(h.Header, [2]string{pyStrip(name), pyStrip(value)})
	}
	cd, found := "", false
	for _, kv := range h.Header {
		if strings.EqualFold(kv[0], "Content-Disposition") {
			cd, found = kv[1], true
			break
		}
	}
	if !found {
		return nil, ErrMultipart
	}
	_, opts := OptionsHeader(cd)
	h.Name = opts["name"]
	h.Filename, h.IsFile = opts["filename"]
	return h, nil
}

// splitLines is bytes.splitlines: lines end at \r\n, \n or \r.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i])
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		b = b[i+1:]
	}
	return lines
}

// pyStrip is str.strip(): Unicode whitespace off both ends.
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

// isPySpace is str.isspace for one rune: Unicode's whitespace, and the
// ASCII separators \x1c to \x1f that Python counts too.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}
