package configwatch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// poll reports a change exactly when the bytes differ from the last ones
// seen, whatever way they were replaced.
func TestPoll(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.yaml")
	write(t, path, "routes: []\n")
	w := newWatcher(path)
	step := func(what string, want bool) {
		t.Helper()
		if got := w.poll(); got != want {
			t.Fatalf("%s: poll() = %v, want %v", what, got, want)
		}
	}
	step("nothing done", false)
	write(t, path, "routes: []\n")
	now := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, now, now); err != nil {
		t.Fatal(err)
	}
	step("same bytes written again and touched", false)
	write(t, path, "routes: [a]\n")
	step("new bytes", true)
	step("nothing done since", false)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	step("file removed", false)
	write(t, path, "routes: [a]\n")
	step("recreated with the same bytes", false)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	step("removed again", false)
	write(t, path, "routes: [b]\n")
	step("recreated with new bytes", true)

	// An editor's save: a new file renamed over the old one.
	tmp := filepath.Join(dir, ".portcullis.yaml.swp")
	write(t, tmp, "routes: [c]\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	step("renamed over", true)
}

// A Kubernetes ConfigMap volume: the file is a symlink through ..data,
// and an update points ..data at a new directory.
func TestPollConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "portcullis.yaml"), content)
	}
	swap := func(name string) {
		t.Helper()
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mkVersion("..2026_11_23_1", "routes: [v1]\n")
	swap("..2026_11_23_1")
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.Symlink(filepath.Join("..data", "portcullis.yaml"), path); err != nil {
		t.Fatal(err)
	}
	w := newWatcher(path)
	if w.poll() {
		t.Fatal("a change before any update")
	}
	mkVersion("..2026_11_23_2", "routes: [v2]\n")
	swap("..2026_11_23_2")
	if !w.poll() {
		t.Fatal("the ConfigMap update was not seen")
	}
	if w.poll() {
		t.Fatal("one update seen twice")
	}
}

// Start calls changed for a change and stops when its context ends.
func TestStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	write(t, path, "routes: []\n")
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 16)
	done := Start(ctx, path, 5*time.Millisecond, func() { changed <- struct{}{} })
	write(t, path, "routes: [a]\n")
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the change was not reported")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("watching did not stop after its context ended")
	}
}
