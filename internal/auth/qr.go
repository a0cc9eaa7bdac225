package auth

import (
	"fmt"
	"strings"

	"github.com/boombuler/barcode/qr"
)

// qrQuiet is the light margin around a QR code, in modules (the
// standard asks for 4).
const qrQuiet = 4

// qrModules encodes text as a QR code (error correction M), margin
// included: dark[y][x].
func qrModules(text string) ([][]bool, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	n := code.Bounds().Dx()
	dark := make([][]bool, n+2*qrQuiet)
	for y := range dark {
		dark[y] = make([]bool, n+2*qrQuiet)
	}
	for y := range n {
		for x := range n {
			r, _, _, _ := code.At(x, y).RGBA()
			dark[y+qrQuiet][x+qrQuiet] = r == 0
		}
	}
	return dark, nil
}

// QRText draws text as a QR code for a terminal: two modules per
// character cell, black on white whatever the terminal's colours.
func QRText(text string) (string, error) {
	dark, err := qrModules(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for y := 0; y < len(dark); y += 2 {
		b.WriteString("\x1b[30;47m")
		for x := range dark[y] {
			top, bottom := dark[y][x], y+1 < len(dark) && dark[y+1][x]
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\x1b[0m\n")
	}
	return b.String(), nil
}

// QRSVG draws text as a QR code in SVG, for inline use in a page: no
// image request, nothing for the CSP to allow.
func QRSVG(text string) (string, error) {
	dark, err := qrModules(text)
	if err != nil {
		return "", err
	}
	n := len(dark)
	var path strings.Builder
	for y := range dark {
		for x := range dark[y] {
			if dark[y][x] {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="QR code" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`,
		n, n, n, n, path.String()), nil
}
