package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("5s", "2m").
type Duration time.Duration

// UnmarshalYAML accepts "5s", "1m30s" and the like.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return typeError(n, "%q is not a duration such as 5s or 2m", n.Value)
	}
	if v <= 0 {
		return typeError(n, "duration %q must be positive", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// ByteSize is a size in bytes, written as "16MiB", "512KiB", "1GiB", "100KB"
// or a plain number of bytes.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseByteSize parses "16MiB" and its kin, in any case: KiB, MiB and GiB
// (and K, M, G, as nginx writes them) are powers of 1024; KB, MB and GB
// powers of 1000; B or no unit is bytes.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(s)
	for _, u := range sizeUnits {
		// Any case: 16MiB, 16mib, 16 MB, 16m.
		if num, ok := strings.CutSuffix(lower, strings.ToLower(u.suffix)); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size")
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML accepts "16MiB", "512KiB", "100KB" or a number of bytes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return typeError(n, "%q is not a size such as 16MiB or 512KiB", n.Value)
	}
	*b = v
	return nil
}

// String formats the size the way it is written in a config.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(b) >= u.mult && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalYAML writes the size back as a string.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// typeError is how a field's decoder reports a bad value: yaml.v3 collects
// TypeErrors and goes on, so one run reports every bad value.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}
