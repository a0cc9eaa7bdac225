// Package atomicfile writes files whole or not at all: into a temporary
// file beside the target, with its mode set before anything is written
// (a key is never, even briefly, readable by others), synced, and then
// renamed over the target (or linked, to refuse an existing one), so
// readers never see half a file and a crash leaves the old one.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// File is a file being written; nothing is at its path until Commit.
type File struct {
	*os.File
	path string
}

// Create starts writing path with mode.
func Create(path string, mode os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs and closes the file and puts it at its path, replacing
// what is there.
func (f *File) Commit() error { return f.commit(os.Rename) }

// CommitNew is Commit that refuses to replace a file that exists (one
// that appeared since the caller looked, too).
func (f *File) CommitNew() error { return f.commit(os.Link) }

func (f *File) commit(place func(from, to string) error) error {
	defer f.Abort()
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return place(f.Name(), f.path)
}

// Abort drops the temporary name: the file itself, if it was not
// committed; nothing after Commit (renamed away) or CommitNew (the file
// stays at its path). It is safe to defer.
func (f *File) Abort() {
	_ = f.Close()
	os.Remove(f.Name())
}

// Write writes data to path with mode, whole or not at all.
func Write(path string, data []byte, mode os.FileMode) error {
	f, err := Create(path, mode)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
