// Package configwatch notices when a configuration file's content changes.
//
// It polls: every interval it reads the file (through any symlinks) and
// compares a SHA-256 of its bytes with the last one seen. Polling needs no
// inotify and sees what an event watcher can miss: a Kubernetes ConfigMap
// update swaps a symlinked directory instead of writing the file, an editor
// replaces the file by renaming a new one over it, and a network volume
// sends no events at all. A configuration file is small, so reading it
// every few seconds costs nothing.
package configwatch

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// Start watches the file at path: every interval, until ctx is done, it
// calls changed if the content differs from the content it last saw. The
// content when Start is called is the reference (Start reads it before it
// returns), so an unchanged file never calls changed; neither does a touch
// without new bytes. While the file cannot be read (between the removal
// and the creation of a replacement, say) the last content seen stays the
// reference, and changed is called once the file reads with other bytes.
// The returned channel is closed when watching has stopped.
func Start(ctx context.Context, path string, interval time.Duration, changed func()) <-chan struct{} {
	w := newWatcher(path)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if w.poll() {
				changed()
			}
		}
	}()
	return done
}

// watcher remembers the digest of the content last seen.
type watcher struct {
	path string
	last [sha256.Size]byte
	seen bool // last is set
}

func newWatcher(path string) *watcher {
	w := &watcher{path: path}
	w.last, w.seen = digest(path)
	return w
}

// poll reads the file once and reports whether its content changed.
func (w *watcher) poll() bool {
	cur, ok := digest(w.path)
	if !ok || (w.seen && cur == w.last) {
		return false
	}
	w.last, w.seen = cur, true
	return true
}

func digest(path string) ([sha256.Size]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(b), true
}
