package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkKeys walks a parsed YAML document against the Config type and
// reports, with the key path and line a person wrote, every key the
// schema does not have (with the nearest known key, when one is close)
// and every key given twice in one mapping. yaml.v3's own messages for
// these name Go types ("field htp not found in Listen") and, for a
// duplicate, drop the whole mapping it is in, so that validation would
// then report what is merely missing.
func checkKeys(n *yaml.Node, t reflect.Type, path string, ps *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) && (n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct) {
		return // a value with its own syntax (a duration, a size, auth: off)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkKeys(c, t, path, ps)
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for i, c := range n.Content {
				checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps)
			}
		}
	case yaml.MappingNode:
		var fields map[string]reflect.Type
		switch t.Kind() {
		case reflect.Struct:
			fields = yamlFields(t)
		case reflect.Map:
		default:
			return // the decoder reports the wrong kind of value
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if first, dup := seen[k.Value]; dup {
				*ps = append(*ps, Problem{Line: k.Line, Path: p, Msg: fmt.Sprintf("given twice (first on line %d): remove one", first), duplicate: true})
				continue
			}
			seen[k.Value] = k.Line
			if t.Kind() == reflect.Map {
				checkKeys(v, t.Elem(), p, ps)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				msg := "unknown key"
				if near := nearest(k.Value, fields); near != "" {
					msg += fmt.Sprintf("; did you mean %s?", near)
				}
				*ps = append(*ps, Problem{Line: k.Line, Path: p, Msg: msg})
				continue
			}
			checkKeys(v, ft, p, ps)
		}
	}
}

// yamlFields maps the YAML keys of a struct to their types, with the
// fields of inlined structs.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline"):
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
		case name != "":
			out[name] = f.Type
		default:
			out[strings.ToLower(f.Name)] = f.Type
		}
	}
	return out
}

// nearest returns the known key closest to key, if it is close enough to
// be a typo: at most a third of its letters off, and at least one.
func nearest(key string, known map[string]reflect.Type) string {
	best, bestDist := "", max(1, len(key)/3)+1 // no farther than that
	for k := range known {
		if d := distance(strings.ToLower(key), k); d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
