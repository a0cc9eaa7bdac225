package config

import (
	"fmt"
	"strings"
	"time"
)

// Uploads declares a route where files are expected, and what it takes.
// Every upload, expected or not, is judged for what makes a file
// dangerous to the app or its visitors: a name that is a path or unsafe
// to save under, content disguised as another type (HTML offered as an
// image), an SVG with script, an image whose header declares more
// pixels than MaxPixels, an archive that escapes its folder or
// decompresses beyond its bounds. A route's uploads adds its own limits
// and types; a file sent where no route expects one is an unexpected
// upload (Guards.UnexpectedUploads).
type Uploads struct {
	// MaxFiles is how many files one request may carry. Default 10.
	MaxFiles int `yaml:"max_files"`
	// MaxFileSize caps each file. Default: the site's max_body.
	MaxFileSize ByteSize `yaml:"max_file_size"`
	// Types are the media types accepted (image/png, application/pdf)
	// or families of them (image/*), judged by the file's content, not
	// by the Content-Type or the extension it was sent with. Default:
	// any type.
	Types []string `yaml:"types"`
	// Filenames says what becomes of a file name unsafe to save under:
	// refuse (default, 400) or sanitise, which rewrites it to a safe
	// name (as Werkzeug's secure_filename would) and hands the app the
	// name as sent, percent-encoded, in the part's X-Original-Filename
	// header.
	Filenames string `yaml:"filenames"`
	// MaxPixels caps an image's width × height, as its header declares
	// them. Default 89478485, Pillow's MAX_IMAGE_PIXELS: the size past
	// which the app's own image library warns of a decompression bomb.
	MaxPixels int64 `yaml:"max_pixels"`
	// Archives bounds zip files and the formats built on zip (docx,
	// xlsx, odt, jar, apk).
	Archives Archives `yaml:"archives"`
	// Scan: off (default), or clamd, which has the ClamAV daemon of
	// Config.Clamd scan each file; one it finds malware in gets 422.
	Scan string `yaml:"scan"`
}

// Clamd is the ClamAV daemon uploads are scanned with.
type Clamd struct {
	// Address is unix:/run/clamav/clamd.ctl or tcp://127.0.0.1:3310.
	// Default: none; a route with scan: clamd needs one.
	Address string `yaml:"address"`
	// ScanTimeout bounds the scan of each file. Default 30s.
	ScanTimeout Duration `yaml:"scan_timeout"`
	// OnError is what becomes of a file clamd gives no verdict on
	// (unreachable, slower than scan_timeout, over its StreamMaxLength):
	// refuse (default: 503, Retry-After) or pass (unscanned, with an
	// upload_not_scanned event). Either way clamd_down is an incident for
	// the alerts, and clamd_up its end.
	OnError string `yaml:"on_error"`
}

// Archives bounds what a zip-based upload unpacks to.
type Archives struct {
	// MaxRatio caps the archive's unpacked size over its packed size.
	// Default 100.
	MaxRatio int `yaml:"max_ratio"`
	// MaxEntries caps the files an archive holds. Default 1000.
	MaxEntries int `yaml:"max_entries"`
}

// Upload defaults, and what is judged of an upload no route expects.
const (
	DefaultMaxFiles     = 10
	DefaultMaxPixels    = 89478485
	DefaultMaxRatio     = 100
	DefaultMaxEntries   = 1000
	FilenamesRefuse     = "refuse"
	FilenamesSanitise   = "sanitise"
	UnexpectedLog       = "log"
	UnexpectedRefuse    = "refuse"
	ScanOff             = "off"
	ScanClamd           = "clamd"
	OnErrorRefuse       = "refuse"
	OnErrorPass         = "pass"
	DefaultScanTimeout  = 30 * time.Second
	maxUploadFiles      = 10000
	maxArchiveEntries   = 1 << 20
	maxArchiveRatio     = 1 << 16
	maxImagePixelsBound = 1 << 40
)

// UploadDefaults are the bounds every upload is held to where no route
// declares its own: those of a route with uploads: {} but for the number
// of files and the types, which only a route that expects files bounds.
func UploadDefaults(maxBody ByteSize) Uploads {
	u := Uploads{}
	u.applyDefaults(maxBody)
	u.MaxFiles = 0
	return u
}

func (u *Uploads) applyDefaults(maxBody ByteSize) {
	if u.MaxFiles == 0 {
		u.MaxFiles = DefaultMaxFiles
	}
	if u.MaxFileSize == 0 {
		u.MaxFileSize = maxBody
	}
	if u.Filenames == "" {
		u.Filenames = FilenamesRefuse
	}
	if u.Scan == "" {
		u.Scan = ScanOff
	}
	if u.MaxPixels == 0 {
		u.MaxPixels = DefaultMaxPixels
	}
	if u.Archives.MaxRatio == 0 {
		u.Archives.MaxRatio = DefaultMaxRatio
	}
	if u.Archives.MaxEntries == 0 {
		u.Archives.MaxEntries = DefaultMaxEntries
	}
}

// validateUploads checks a route's uploads; the types' names are checked
// by the upload guard, which knows the types it can recognise.
func (c *Config) validateUploads(at string, u *Uploads, maxBody ByteSize, bad func(path, format string, args ...any)) {
	if u == nil {
		return
	}
	switch {
	case u.Scan != ScanOff && u.Scan != ScanClamd:
		bad(at+".scan", "%q: off or clamd", u.Scan)
	case u.Scan == ScanClamd && c.Clamd.Address == "":
		bad(at+".scan", "clamd needs clamd.address, such as unix:/run/clamav/clamd.ctl (Debian's clamav-daemon)")
	}
	switch {
	case u.MaxFiles < 1 || u.MaxFiles > maxUploadFiles:
		bad(at+".max_files", "must be between 1 and %d", maxUploadFiles)
	}
	switch {
	case u.MaxFileSize < 0:
		bad(at+".max_file_size", "must not be negative")
	case u.MaxFileSize > maxBody:
		bad(at+".max_file_size", "%s is over the site's max_body (%s), which refuses such a body first: raise max_body too", u.MaxFileSize, maxBody)
	}
	if u.Filenames != FilenamesRefuse && u.Filenames != FilenamesSanitise {
		bad(at+".filenames", "%q: refuse or sanitise", u.Filenames)
	}
	if u.MaxPixels < 1 || u.MaxPixels > maxImagePixelsBound {
		bad(at+".max_pixels", "must be between 1 and %d", int64(maxImagePixelsBound))
	}
	if r := u.Archives.MaxRatio; r < 1 || r > maxArchiveRatio {
		bad(at+".archives.max_ratio", "must be between 1 and %d", maxArchiveRatio)
	}
	if n := u.Archives.MaxEntries; n < 1 || n > maxArchiveEntries {
		bad(at+".archives.max_entries", "must be between 1 and %d", maxArchiveEntries)
	}
	for i, t := range u.Types {
		if t != strings.ToLower(t) || strings.Count(t, "/") != 1 || strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") {
			bad(fmt.Sprintf("%s.types[%d]", at, i), "%q is not a media type such as image/png, or a family such as image/*", t)
		}
	}
}

func (c *Config) applyClamdDefaults() {
	setDuration(&c.Clamd.ScanTimeout, DefaultScanTimeout)
	if c.Clamd.OnError == "" {
		c.Clamd.OnError = OnErrorRefuse
	}
}

// validateClamd checks the scanner's settings; its address's form is
// checked by the upload guard, which dials it.
func (c *Config) validateClamd(bad func(path, format string, args ...any)) {
	if c.Clamd.ScanTimeout <= 0 {
		bad("clamd.scan_timeout", "must be positive")
	}
	if o := c.Clamd.OnError; o != OnErrorRefuse && o != OnErrorPass {
		bad("clamd.on_error", "%q: refuse (503) or pass (unscanned, with an event)", o)
	}
}
