package authn

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// FileSource re-reads a file when its modification time or size changes,
// checking at most once per second, so secrets and keys rotate without a
// restart. It fails closed: a file that disappears, cannot be read, or no
// longer parses (an empty file included) means "no credentials" until it is
// fixed — removing a leaked secret from the file revokes it at once. Each
// change of state is reported to onChange (nil error: usable again).
type FileSource[T any] struct {
	path     string
	parse    func([]byte) (T, error)
	onChange func(path string, err error)

	mu      sync.Mutex
	checked time.Time
	mod     time.Time
	size    int64
	val     T
	err     error
}

// NewFileSource reads path once (an error if it cannot be read or parsed) and
// re-reads it as Get is called; onChange hears of every later change of state.
func NewFileSource[T any](path string, parse func([]byte) (T, error), onChange func(string, error)) (*FileSource[T], error) {
	f := &FileSource[T]{path: path, parse: parse, onChange: onChange}
	if _, err := f.Get(time.Now(), true); err != nil {
		return nil, err
	}
	return f, nil
}

// Get returns the file's current value (re-read when it changed, checked
// at most once per second unless force), or the error that makes it unusable.
func (f *FileSource[T]) Get(now time.Time, force bool) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !force && now.Sub(f.checked) < time.Second {
		return f.val, f.err
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err == nil && !force && f.err == nil && st.ModTime().Equal(f.mod) && st.Size() == f.size {
		return f.val, nil
	}
	var v T
	if err == nil {
		var data []byte
		if data, err = os.ReadFile(f.path); err == nil {
			v, err = f.parse(data)
		}
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", f.path, err)
		var zero T
		v = zero
	}
	changed := (err == nil) != (f.err == nil) || (err != nil && err.Error() != f.err.Error())
	f.val, f.err = v, err
	if st != nil {
		f.mod, f.size = st.ModTime(), st.Size()
	}
	if changed && !force && f.onChange != nil {
		f.onChange(f.path, err)
	}
	return f.val, f.err
}
