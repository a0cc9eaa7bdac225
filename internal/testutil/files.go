package testutil

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
)

// PNGHeader is a PNG's signature and IHDR chunk, declaring width ×
// height (8-bit RGB), with its checksum: all that reading an image's
// header reads, and enough for any sniffer to call it a PNG.
func PNGHeader(width, height uint32) string {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 2
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	_ = binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.String()
}

// Zip is a zip archive of entries (name → content, deflated), in the
// order of their names.
func Zip(entries map[string]string) string {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f, _ := w.Create(name)
		_, _ = f.Write([]byte(entries[name]))
	}
	_ = w.Close()
	return b.String()
}

// Zeros is n zero bytes: content that deflates about a thousand to one.
func Zeros(n int) string { return strings.Repeat("\x00", n) }
