// Package layout holds no code: its test keeps the dependency rules of
// docs/design.md ("Who imports whom") true, reading each package's own
// imports from its files.
package layout
