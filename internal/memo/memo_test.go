package memo

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCallersOfOnePeriodShareOneCall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	release := make(chan struct{})
	f := New(time.Hour, func(context.Context) (int64, error) {
		<-release
		return calls.Add(1), nil
	})
	var wg sync.WaitGroup
	results := make([]int64, 50)
	for i := range results {
		wg.Go(func() {
			v, err := f.Get(t.Context())
			if err != nil {
				t.Error(err)
			}
			results[i] = v
		})
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	wg.Wait()
	if v, _ := f.Get(t.Context()); v != 1 {
		t.Errorf("a later caller got %d, want the shared 1", v)
	}
	for i, v := range results {
		if v != 1 {
			t.Errorf("caller %d got %d, want the shared 1", i, v)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("calls = %d, want 1", got)
	}
}

func TestAnErrorIsSharedAndAnExpiredResultCalledAgain(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	down := errors.New("down")
	f := New(20*time.Millisecond, func(context.Context) (int64, error) {
		return calls.Add(1), down
	})
	for range 3 {
		if _, err := f.Get(t.Context()); !errors.Is(err, down) {
			t.Fatalf("err = %v, want %v", err, down)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("calls = %d within one period, want 1", got)
	}
	time.Sleep(30 * time.Millisecond)
	if v, _ := f.Get(t.Context()); v != 2 {
		t.Errorf("after the period got %d, want a new call's 2", v)
	}
}

func TestAWaiterLeavesWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	f := New(time.Hour, func(context.Context) (int, error) {
		<-release
		return 1, nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := f.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
}
