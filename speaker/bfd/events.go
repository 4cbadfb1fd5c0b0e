package bfd

import "sync"

// broadcaster hands every Event to every subscriber without ever blocking the publisher: each
// subscriber has an unbounded queue and a goroutine that feeds its channel. A subscriber that
// reads slowly only grows its own queue; a BGP session that must come down is never stuck
// behind it.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch     chan Event
	wake   chan struct{} // capacity 1: the queue has something, or closing was set
	done   chan struct{} // closed by cancel
	exited chan struct{} // closed by the pump when it returns

	mu      sync.Mutex
	queue   []Event
	closing bool // the Manager stopped: deliver what is queued, then close ch
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[*subscriber]struct{}{}}
}

// subscribe registers a subscriber; after close it returns an already closed channel.
func (b *broadcaster) subscribe() (<-chan Event, func()) {
	s := &subscriber{
		ch:     make(chan Event),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.pump()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.done)
			<-s.exited
		})
	}
}

func (b *broadcaster) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.mu.Lock()
		s.queue = append(s.queue, e)
		s.mu.Unlock()
		s.poke()
	}
}

// close lets every subscriber drain its queue and then closes its channel; later subscribers
// get a closed channel at once.
func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.poke()
	}
}

func (s *subscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump feeds the channel from the queue until cancel, or until the Manager stopped and the queue
// is empty. It closes the channel when it returns, so a reader ranging over it ends.
func (s *subscriber) pump() {
	defer close(s.exited)
	defer close(s.ch)
	for {
		s.mu.Lock()
		q, closing := s.queue, s.closing
		s.queue = nil
		s.mu.Unlock()
		for _, e := range q {
			select {
			case s.ch <- e:
			case <-s.done:
				return
			}
		}
		if len(q) == 0 && closing {
			return
		}
		if len(q) > 0 {
			continue // more may have arrived meanwhile
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}
